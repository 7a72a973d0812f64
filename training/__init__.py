"""Training of the towers: contrastive losses (InfoNCE and sigmoid), trainer, pair datasets, eval.

Owns the losses (which know nothing of models), the trainer, the pair datasets and the evaluation;
the trainer writes the checkpoints the encoders load. May import encoders/ and fusion/; must not
import index/, service/ or cli/.
"""
