"""Errors of the index layer, each a problem the caller can act on.

Imports nothing from the project: the index must stay usable without torch or the encoders.
"""


class CollectionError(ValueError):
    """Bad input to a collection: wrong dimension or model, bad id, bad filter."""


class DataDirBusy(CollectionError):
    """Another process has the data directory's collections open."""


class CollectionNotFound(KeyError):
    """No collection of that name in the data directory."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else "collection not found"


class CollectionExists(ValueError):
    """A collection of that name already exists with other settings."""


class SnapshotError(RuntimeError):
    """A snapshot file that is truncated, corrupt or written for other settings."""


class StorageFull(RuntimeError):
    """The data directory has no room for a write (the disk is full, or free space is below the
    floor kept for recovery). Nothing of the write was applied; reads still work."""

    def __init__(self, message: str, reason: str = "full") -> None:
        super().__init__(message)
        self.reason = reason  # "full": the disk refused; "floor": refused before reaching it


class IndexUnavailable(RuntimeError):
    """The vector database behind the collections cannot be reached or refused an operation it
    should have taken (a Milvus server down, restarting or out of resources). Retry later."""


class StorageFailed(RuntimeError):
    """The disk failed under a write (an I/O error, not a full disk). The write was not
    acknowledged, and the collection refuses writes until the service restarts and recovers it
    from its log: after a failed fsync the kernel may have dropped the data, so retrying as if
    nothing happened would acknowledge writes that are not on disk. Reads still work."""


class Unsupported(CollectionError):
    """A setting or search mode the collection's backend lacks (answered 422 by the service)."""


class KeywordQueryError(CollectionError):
    """A keyword query that is not valid FTS5 query syntax (answered 422 by the service)."""


class TowersChanged(CollectionError):
    """The collection's vectors were made by towers its model no longer has (the model directory
    was fine-tuned since, under the same name): searching them with, or writing into them, the
    new towers' vectors is refused (answered 409) until the collection is embedded again."""
