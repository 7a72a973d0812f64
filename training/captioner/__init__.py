"""The captioner's mapper: its caption data, trainer, eval suite and model card. Must not import
the service, the index or the CLI.
"""
