"""Durable FAISS collections: upsert, delete, metadata filters, snapshots and a write-ahead log.

Will own vector storage and search: numpy in, numpy out. Must not import torch, the encoders, or
anything of HTTP.
"""
