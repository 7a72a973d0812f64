"""Batch embedding jobs over folders, tar shards and parquet, locally or on Ray Data.

Will own reading media sets, embedding them in batches and writing vectors or collections. May
import encoders/ and index/; must not import service/.
"""
