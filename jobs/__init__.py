"""Batch embedding jobs: a folder, WebDataset tar shards or a table of paths in, parquet shards of
vectors out (resumable), on this machine's worker processes or on Ray Data; and ingesting the
output into a collection.

Imports the encoders and the index; must not import anything of HTTP (service/, FastAPI) or cli/.
"""

from jobs.errors import JobError
from jobs.ingest import ingest
from jobs.run import RUNNERS, JobOptions, Started, embed_job
from jobs.sources import TableColumns
from jobs.video import VideoOptions

__all__ = [
    "RUNNERS",
    "JobError",
    "JobOptions",
    "Started",
    "TableColumns",
    "VideoOptions",
    "embed_job",
    "ingest",
]
