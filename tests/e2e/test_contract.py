"""The API contract: the served OpenAPI document equals the committed one, declares what routes
really send, and a client generated from it works; the framework's own errors (unknown route,
wrong method, unparsable or oversized bodies) come out in the one error shape."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from runtime.settings import Settings
from service.app import create_app
from service.openapi_doc import render, served_document

ROOT = Path(__file__).resolve().parents[2]
ERROR_REF = "#/components/schemas/ErrorResponse"


def err(res, status: int, type_: str, message: str | None = None) -> None:
    assert res.status_code == status, res.text
    assert res.json()["error"]["type"] == type_ and res.json()["error"]["code"] == status
    if message is not None:
        assert res.json()["error"]["message"] == message


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


@pytest.fixture(scope="module")
def document() -> dict:
    return served_document()


def test_served_document_equals_the_committed_one(document):
    committed = (ROOT / "openapi.json").read_text()
    assert render(document) == committed, "the API changed: run `make openapi` and commit it"


def test_every_route_is_declared(document):
    ops = {(m, p): op for m, p, op in operations(document)}
    assert {op["operationId"] for op in ops.values()} == {
        "create_embeddings", "embed", "create_collection", "list_collections", "get_collection",
        "drop_collection", "upsert_items", "get_item", "delete_item", "search_collection",
        "classify", "create_classifier", "list_classifiers", "get_classifier",
        "delete_classifier", "health", "metrics", "list_models", "list_models_openai", "page",
        "get_media", "create_caption", "generate", "list_fusion_heads", "get_fusion_head",
        "delete_fusion_head", "transcribe",
    }  # fmt: skip
    for (method, path), op in ops.items():
        assert op["tags"], (method, path)
        for code, resp in op["responses"].items():
            if code.startswith(("4", "5")):
                schema = resp["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, code)
    assert sorted(ops[("GET", "/health")]["responses"]) == ["200", "503"]
    assert sorted(ops[("GET", "/metrics")]["responses"]) == ["200"]
    assert sorted(ops[("POST", "/collections")]["responses"]) == [
        "201",
        "400",
        "404",
        "409",
        "413",
        "422",
        "503",
        "507",
    ]
    assert sorted(ops[("GET", "/collections")]["responses"]) == ["200", "503"]
    assert "401" not in json.dumps(document["paths"])  # no keys configured: no 401 declared


def test_limits_of_the_settings_are_in_the_schema(document):
    schemas = document["components"]["schemas"]
    embed = document["paths"]["/embed"]["post"]["requestBody"]["content"]
    texts = embed["application/json"]["schema"]["properties"]["texts"]
    assert (texts["maxItems"], texts["items"]["maxLength"]) == (256, 20000)
    one, many = embed["multipart/form-data"]["schema"]["properties"]["texts"]["anyOf"]
    assert (one["maxLength"], many["maxItems"], many["items"]["maxLength"]) == (20000, 256, 20000)
    vec = schemas["VectorQuery"]["properties"]["vector"]
    assert (vec["minItems"], vec["maxItems"]) == (256, 256)  # the house model's dimension
    query = schemas["SearchRequest"]["properties"]["query"]
    assert [s["$ref"].rsplit("/", 1)[1] for s in query["oneOf"]] == [
        "TextQuery", "ImageQuery", "AudioQuery", "VectorQuery", "IdQuery", "MultiQuery"]  # fmt: skip
    audios = embed["application/json"]["schema"]["properties"]["audios"]
    assert audios["maxItems"] == 256
    assert schemas["CollectionCreate"]["properties"]["name"]["pattern"] == (
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    )
    assert "x-limit" not in json.dumps(document)
    small = served_document(max_items=8, max_text_chars=100)
    body = small["paths"]["/embed"]["post"]["requestBody"]["content"]["application/json"]
    texts = body["schema"]["properties"]["texts"]
    assert (texts["maxItems"], texts["items"]["maxLength"]) == (8, 100)


def test_with_keys_guarded_routes_declare_401_and_403():
    doc = served_document(api_keys=["k" * 20])
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for method, path, op in operations(doc):
        open_route = path in ("/health", "/metrics", "/")
        assert ("401" in op["responses"]) != open_route, (method, path)
        assert ("security" in op) != open_route, (method, path)


def test_framework_errors_have_the_one_shape(client):
    err(client.get("/nowhere"), 404, "not_found", "no route /nowhere")
    r = client.delete("/collections")
    err(r, 405, "method_not_allowed", "method DELETE is not allowed here; allowed: GET, POST")
    assert r.headers["allow"] == "GET, POST"
    r = client.post("/collections/shop")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    r = client.patch("/collections/shop/items/x")
    assert r.headers["allow"] == "DELETE, GET"
    r = client.post("/v1/embeddings", content=b"\xff\xfe not json",
                    headers={"content-type": "application/json"})  # fmt: skip
    err(r, 422, "invalid_request")
    err(client.get("/collections/bad%09name"), 422, "invalid_request")


def test_multipart_field_types_hold(client):
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), (9, 9, 9)).save(png, "PNG")
    cases = [
        ({"texts": "{}"}, None, "texts 0: '{}' is JSON, not plain text; send it with the JSON form of /embed"),
        ({"texts": "12"}, None, "texts 0: '12' is JSON, not plain text; send it with the JSON form of /embed"),
        ({"texts": "a cat", "truncate": "maybe"}, None, "truncate: give it once, as true or false"),
        ({"texts": "a cat", "colour": "red"}, None, "unknown form field(s): colour"),
        (None, [("texts", ("t.txt", b"a cat", "text/plain"))], "texts 0: a text field, not a file"),
        ({"files": "not a file"}, None, "files 0: a file upload, not a text field"),
    ]  # fmt: skip
    for data, files, message in cases:
        if files is None:
            files = [("files", ("x.png", png.getvalue(), "image/png"))]
        err(client.post("/embed", data=data, files=files), 422, "invalid_input", message)
    ok = client.post("/embed", data={"texts": ["a cat", '"quoted"']}, files=[("files", ("x.png", png.getvalue(), "image/png"))])  # fmt: skip
    assert ok.status_code == 200 and len(ok.json()["embeddings"]) == 3


def test_chunked_body_over_the_limit_is_413_and_reading_stops(tmp_path, tiny_clip_dir):
    """No Content-Length: the cap applies while the body streams in, and the rest is not read."""
    settings = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                             max_body_bytes=4096)  # fmt: skip
    app = create_app(settings)
    chunk = b'{"input": ["' + b"a" * 989  # 1,000 bytes
    for path in ("/v1/embeddings", "/embed"):
        pulled, sent = 0, []

        async def receive():
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": chunk, "more_body": pulled < 20}

        async def send(msg, sent=sent):
            sent.append(msg)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "server": ("t", 80), "client": ("c", 1),
                 "headers": [(b"content-type", b"application/json"),
                             (b"transfer-encoding", b"chunked")]}  # fmt: skip
        with TestClient(app):  # the lifespan loads the engine
            asyncio.run(app(scope, receive, send))
        assert pulled == 5, path  # 5 x 1,000 bytes pass 4,096: nothing after that chunk is read
        assert sent[0]["status"] == 413
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert json.loads(sent[1]["body"]) == {"error": {
            "type": "payload_too_large", "message": "request body over 4096 bytes", "code": 413}}  # fmt: skip


def test_a_generated_client_works_and_parses_errors(client, tmp_path):
    """openapi-python-client generates a client from the served document; through it: create a
    collection, create it again (409 parsed), put items, search, get a missing item (404)."""
    (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    gen = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run([str(gen), "generate", "--path", "openapi.json", "--meta", "none",
                    "--output-path", "jsclient"], cwd=tmp_path, check=True,
                   capture_output=True)  # fmt: skip
    sys.path.insert(0, str(tmp_path))
    try:
        from jsclient import Client
        from jsclient.api.collections import create_collection, get_item, upsert_items
        from jsclient.api.search import search_collection
        from jsclient.models import (
            CollectionCreate,
            CollectionInfo,
            ErrorResponse,
            SearchRequest,
            TextItem,
            TextQuery,
            UpsertRequest,
            VectorItem,
        )  # fmt: skip

        api = Client(base_url="http://testserver")
        api.set_httpx_client(client)
        info = create_collection.sync(client=api, body=CollectionCreate(name="gen"))
        assert isinstance(info, CollectionInfo) and (info.name, info.dim) == ("gen", 24)
        again = create_collection.sync(client=api, body=CollectionCreate(name="gen"))
        assert isinstance(again, ErrorResponse)
        assert (again.error.type_, again.error.code) == ("conflict", 409)
        assert again.error.message == "collection 'gen' already exists"
        items = [
            TextItem(id="a", text="a red dress"),
            VectorItem(id="b", vector=[1.0] + [0.0] * 23),
        ]
        put = upsert_items.sync(name="gen", client=api, body=UpsertRequest(items=items))
        assert put.upserted == 2
        found = search_collection.sync(
            name="gen", client=api, body=SearchRequest(query=TextQuery(text="a red dress"), k=2)
        )
        assert found.hits[0].id == "a"
        missing = get_item.sync(name="gen", item_id="nope", client=api)
        assert isinstance(missing, ErrorResponse) and missing.error.code == 404
        assert missing.error.message == "no item 'nope' in collection 'gen'"
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m == "jsclient" or m.startswith("jsclient.")]:
            del sys.modules[mod]


def _refs(node, where: str = "#"):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield where, node["$ref"]
        for k, v in node.items():
            yield from _refs(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _refs(v, f"{where}/{i}")


def _resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), f"{ref} is not a reference into the document"
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part] if isinstance(node, dict) else node[int(part)]
    return node


def test_every_reference_resolves(document):
    """A generated client and schemathesis can follow every `$ref` from the document's root."""
    refs = list(_refs(document))
    assert refs
    broken = []
    for where, ref in refs:
        try:
            _resolve(document, ref)
        except (KeyError, IndexError, ValueError, AssertionError):
            broken.append(f"{where}: {ref}")
    assert broken == []
