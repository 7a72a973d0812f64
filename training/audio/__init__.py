"""The house audio tower: its clips (stamp sounds and synthetic speech), trainer, eval suites and
model card. Must not import the service, the index or the CLI.
"""
