"""Speech recognition's eval suites: spoken queries read as words, moments found by what is said,
and the recogniser's word error rate. Must not import the service, the index or the CLI.
"""
