"""Training of the models of the joint space, one subpackage per thing trained: towers (the house
text and image towers), audio (the audio tower), temporal (the video head), captioner, decoder
(the image decoder and its prior) and fusion (the fusion suites and labelled examples), each with
its data, trainer (train), eval suites (eval) and model card (card) where it has them.

Shared at this level: the losses (which know nothing of models), the trainer core, the one
checkpoint helper, the one card writer, the eval-suite registry and the runner of `jointspace eval`.
May import encoders/, fusion/, generation/ and housedata/; must not import index/, service/,
runtime/ or cli/.
"""
