"""Print the OpenAPI document the service serves with default settings (the house model, no keys),
as `make openapi` commits it: `python -m service.openapi_doc > openapi.json`."""

from __future__ import annotations

import json
import tempfile

from fastapi.testclient import TestClient

from runtime.settings import Settings
from service.app import create_app


def served_document(**overrides) -> dict:
    """The document of an app started with default settings (plus `overrides`), as served."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load({}, data_dir=tmp, demo=False, **overrides)
        with TestClient(create_app(settings)) as client:
            return client.get("/openapi.json").json()


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(served_document()), end="")
