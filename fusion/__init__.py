"""Fusion over joint-space vectors: composed queries, multi-modal fusion, zero-shot and trained
classifiers.

Will own pure functions and small trained heads over arrays. Must not import FAISS or HTTP.
"""
