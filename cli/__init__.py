"""The `jointspace` command line: one module per command group (serve, embed, models, train,
eval, keys), each parsing its options and calling the same library code the service uses.

Sits at the top beside service/: it may import every package; nothing imports it.
"""
