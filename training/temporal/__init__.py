"""The temporal head of the video path: its clips and order-dependent captions, trainer, eval
suites (video-order, video-moments) and model card. Must not import the service, the index or the
CLI.
"""
