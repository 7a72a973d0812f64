"""The image decoder and its prior: their data, trainer, eval suite (generation) and model card.
Must not import the service, the index or the CLI.
"""
