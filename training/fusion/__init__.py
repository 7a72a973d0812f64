"""Fusion classifiers and the fusion head as measured here: the fusion eval suites and reading
labelled examples. Must not import the service, the index or the CLI.
"""
