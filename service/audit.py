"""The audit log: one JSON line per write (create, drop, put, delete, ingest, classifier fit) in
DATA_DIR/audit.jsonl, with the time, the key's name (never the key), the route, the collection
and the item count. Appends are serialised by a lock and flushed before the request answers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, key: str, route: str, collection: str | None, items: int) -> None:
        rec = {"time": round(time.time(), 3), "key": key, "route": route,
               "collection": collection, "items": items}  # fmt: skip
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(line)
