"""Decoders over joint-space vectors: the captioner (a mapper from one vector to a prefix of a
frozen small language model, ClipCap style) and the language model it writes with.

Imports torch, transformers and the encoders' error base. Must not import the index, the
service, the CLI or training.
"""
