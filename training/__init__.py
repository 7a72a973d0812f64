"""Training of the towers: contrastive losses (InfoNCE and sigmoid), trainer, pair datasets, eval.

Will own the losses (which know nothing of models), the trainer, the pair datasets and the
evaluation that writes checkpoints the encoders load. May import encoders/; must not import index/,
service/ or jobs/.
"""
