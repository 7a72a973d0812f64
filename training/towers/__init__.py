"""The house text and image towers: their pair data and mixture, the contrastive trainer, the eval
suites, the loss comparison table and the model card. Must not import the service, the index or
the CLI.
"""
