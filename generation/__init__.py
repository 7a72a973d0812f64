"""Decoders conditioned on joint-space vectors: captioning and other generation.

Will own the decoders. May import encoders/; must not import service/ or index/ internals.
"""
