"""The offline data builders that training, the demo collection and the benchmarks share.

- housedata.sets: the Debian-packaged data sets (Fashion-MNIST with tints, Tux Paint stamps, Noto
  colour emoji), their class names, tints and prompt wordings, and the fixed held-out splits;
- housedata.clips: clips rendered from Fashion-MNIST garments (moving, zooming, changing colour)
  and several-shot clips written as real video files;
- housedata.writer: RGB frames (and a mono track) written as MP4, WebM or GIF.

The bottom layer for its users: it may import encoders.decode (stamps are decoded by the rules any
image passes) and must not import training, the service, the runtime, the CLI, the index, fusion
or generation.
"""
