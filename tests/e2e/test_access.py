"""Access control through the real app: every route for every role (no key, a wrong key, read,
write and admin keys scoped to one collection, and an admin on all), signed media URLs, per-key
rate limits, the audit log, and the thumbnail that once answered anyone who guessed an item id."""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from runtime.media import media_stem
from runtime.settings import Settings, SettingsError
from service.app import create_app

TOKENS = {"read": "r" * 32, "write": "w" * 32, "admin": "a" * 32, "root": "x" * 32}
ENTRIES = [
    {"name": "dash", "role": "read", "collections": ["shop"]},
    {"name": "ingest", "role": "write", "collections": ["shop"]},
    {"name": "shop-admin", "role": "admin", "collections": ["shop", "new-shop"]},
    {"name": "root", "role": "admin", "collections": ["*"]},
]
WHO = ["none", "wrong", "read", "write", "admin", "root"]


def keys_file(path, entries=ENTRIES, tokens=TOKENS):
    keys = []
    for e, tok in zip(entries, tokens.values(), strict=True):
        keys.append({**e, "sha256": hashlib.sha256(tok.encode()).hexdigest()})
    path.write_text(json.dumps({"keys": keys}))
    return path


def headers(who: str) -> dict:
    if who == "none":
        return {}
    return {"authorization": "Bearer " + ("bad" * 8 if who == "wrong" else TOKENS[who])}


@pytest.fixture
def keyed(tmp_path, tiny_clip_dir, png):
    def make(**kw) -> TestClient:
        s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path / "data", demo=False,
                          keys_file=keys_file(tmp_path / "keys.json"), max_wait_ms=1, **kw)  # fmt: skip
        return TestClient(create_app(s))

    return make


def seed(c: TestClient, png) -> str:
    """shop (one image item, one text item), other, and drop-me; returns the image's media URL."""
    root = headers("root")
    for name in ("shop", "other", "drop-me"):
        assert c.post("/collections", json={"name": name}, headers=root).status_code == 201
    items = [{"id": "img", "image": png()}, {"id": "a", "text": "a red dress"}]
    for name in ("shop", "other"):
        assert (
            c.put(f"/collections/{name}/items", json={"items": items}, headers=root).status_code
            == 200
        )
    return c.get("/collections/shop/items/img", headers=root).json()["media"]


MEDIA = "/media/shop/" + media_stem("img") + ".png"
# (method, path, body, expected status for: none, wrong, read, write, admin, root)
TABLE = [
    ("GET", "/health", None, [200, 200, 200, 200, 200, 200]),
    ("GET", "/metrics", None, [200, 200, 200, 200, 200, 200]),
    ("GET", "/", None, [200, 200, 200, 200, 200, 200]),
    ("GET", "/models", None, [401, 401, 200, 200, 200, 200]),
    ("GET", "/v1/models", None, [401, 401, 200, 200, 200, 200]),
    ("POST", "/v1/embeddings", {"input": "a cat"}, [401, 401, 200, 200, 200, 200]),
    ("POST", "/embed", {"texts": ["a cat"]}, [401, 401, 200, 200, 200, 200]),
    ("POST", "/classify", {"input": {"text": "a cat"}, "labels": ["cat", "dog"]}, [401, 401, 200, 200, 200, 200]),
    ("POST", "/generate", {"prompt": "a cat"}, [401, 401, 422, 422, 422, 422]),  # no decoder
    ("POST", "/generate", {"id": "a", "collection": "other"}, [401, 401, 403, 403, 403, 422]),
    ("GET", "/classifiers/nope", None, [401, 401, 404, 404, 404, 404]),  # not a collection
    ("GET", "/fusion-heads", None, [401, 401, 200, 200, 200, 200]),
    ("GET", "/fusion-heads/nope", None, [401, 401, 404, 404, 404, 404]),
    ("DELETE", "/fusion-heads/nope", None, [401, 401, 403, 403, 404, 404]),
    ("GET", "/collections", None, [401, 401, 200, 200, 200, 200]),
    ("GET", "/collections/shop", None, [401, 401, 200, 200, 200, 200]),
    ("GET", "/collections/other", None, [401, 401, 403, 403, 403, 200]),
    ("GET", "/collections/shop/items/a", None, [401, 401, 200, 200, 200, 200]),
    ("GET", "/collections/other/items/a", None, [401, 401, 403, 403, 403, 200]),
    ("POST", "/collections/shop/search", {"query": {"text": "a cat"}}, [401, 401, 200, 200, 200, 200]),
    ("POST", "/collections/other/search", {"query": {"text": "a cat"}}, [401, 401, 403, 403, 403, 200]),
    ("GET", MEDIA, None, [401, 401, 200, 200, 200, 200]),
    ("GET", MEDIA.replace("/shop/", "/other/"), None, [401, 401, 403, 403, 403, 200]),
    ("PUT", "/collections/shop/items", {"items": [{"id": "b", "text": "a hat"}]}, [401, 401, 403, 200, 200, 200]),
    ("PUT", "/collections/other/items", {"items": [{"id": "b", "text": "a hat"}]}, [401, 401, 403, 403, 403, 200]),
    ("DELETE", "/collections/shop/items/b", None, [401, 401, 403, 200, 200, 200]),
    ("DELETE", "/collections/other/items/b", None, [401, 401, 403, 403, 403, 200]),
    ("POST", "/collections", {"name": "new-shop"}, [401, 401, 403, 403, 201, 201]),
    ("POST", "/collections", {"name": "elsewhere"}, [401, 401, 403, 403, 403, 201]),
    ("DELETE", "/collections/new-shop", None, [401, 401, 403, 403, 200, 200]),
    ("DELETE", "/collections/drop-me", None, [401, 401, 403, 403, 403, 200]),
]  # fmt: skip


@pytest.mark.parametrize("who", WHO)
def test_every_route_for_every_role(keyed, png, who):
    with keyed() as c:
        seed(c, png)
        got = []
        for method, path, body, _ in TABLE:
            r = c.request(method, path, json=body, headers=headers(who))
            got.append((method, path, r.status_code))
            if r.status_code >= 400:
                assert r.json()["error"]["code"] == r.status_code
        assert got == [(m, p, want[WHO.index(who)]) for m, p, _, want in TABLE]


def test_refusals_name_what_is_missing(keyed, png):
    with keyed() as c:
        seed(c, png)
        r = c.delete("/collections/shop", headers=headers("read"))
        assert r.json()["error"] == {"type": "forbidden", "code": 403,
                                     "message": "key 'dash' has the read role; this needs admin"}  # fmt: skip
        r = c.get("/collections/other", headers=headers("write"))
        assert r.json()["error"]["message"] == "key 'ingest' has no access to collection 'other'"
        r = c.get("/collections", headers=headers("wrong"))
        assert r.json()["error"]["message"] == "invalid bearer token"
        assert r.headers["www-authenticate"] == "Bearer"
        listed = c.get("/collections", headers=headers("read")).json()
        assert [x["name"] for x in listed] == ["shop"]  # only what the key may see


def test_signed_media_urls(keyed, png):
    with keyed(media_url_ttl=600) as c:
        url = seed(c, png)
        path, _, query = url.partition("?")
        assert path == MEDIA and re.fullmatch(r"exp=\d+&sig=[0-9a-f]{64}", query)
        assert c.get(url).status_code == 200  # no key needed with a valid signature
        assert c.get(url).headers["content-type"] == "image/png"
        assert 590 <= int(query[4:14]) - time.time() <= 600
        r = c.get(path)
        assert (r.status_code, r.json()["error"]["message"]) == (
            401, "media needs a bearer token or a signed URL (exp and sig)")  # fmt: skip
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        r = c.get(tampered)
        assert (r.status_code, r.json()["error"]["message"]) == (
            403, "the media URL's signature is not valid")  # fmt: skip
        other = url.replace("/shop/", "/other/")  # a valid signature, for another path
        assert c.get(other).status_code == 403
        expired = c.app.state.signer.sign(path, now=time.time() - 700)
        r = c.get(expired)
        assert (r.status_code, r.json()["error"]["message"]) == (403, "the media URL has expired")
        hits = c.post("/collections/shop/search", json={"query": {"text": "a"}},
                      headers=headers("read")).json()["hits"]  # fmt: skip
        signed = [h["media"] for h in hits if h["media"]]
        assert signed and all(c.get(u).status_code == 200 for u in signed)


def test_thumbnail_is_not_reachable_without_a_key(tmp_path, tiny_clip_dir, png):
    """The regression: with keys set, an image item's thumbnail by its guessable name."""
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      api_keys=["k" * 24])  # fmt: skip
    key = {"authorization": "Bearer " + "k" * 24}
    with TestClient(create_app(s)) as c:
        c.post("/collections", json={"name": "private"}, headers=key)
        item = {"id": "passport-scan-42", "image": png()}
        assert (
            c.put("/collections/private/items", json={"items": [item]}, headers=key).status_code
            == 200
        )
        guessed = f"/media/private/{hashlib.sha1(b'passport-scan-42').hexdigest()[:20]}.png"
        assert c.get(guessed).status_code == 401
        assert c.get(guessed, headers=key).status_code == 200


def test_media_stays_open_without_keys(client, png):
    client.post("/collections", json={"name": "pub"})
    client.put("/collections/pub/items", json={"items": [{"id": "i", "image": png()}]})
    media = client.get("/collections/pub/items/i").json()["media"]
    assert (
        media == "/media/pub/" + media_stem("i") + ".png" and client.get(media).status_code == 200
    )


def test_per_key_rate_limit(tmp_path, tiny_clip_dir):
    entries = [{"name": "slow", "role": "read", "rate": 2}, {"name": "fast", "role": "read"}]
    tokens = {"slow": "s" * 32, "fast": "f" * 32}
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      keys_file=keys_file(tmp_path / "k.json", entries, tokens))  # fmt: skip
    with TestClient(create_app(s)) as c:
        slow = {"authorization": "Bearer " + "s" * 32}
        fast = {"authorization": "Bearer " + "f" * 32}
        codes = [c.get("/models", headers=slow).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/models", headers=slow)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert (
            r.json()["error"]["message"] == "key 'slow' is over its rate of 2 requests per second"
        )
        assert [c.get("/models", headers=fast).status_code for _ in range(10)] == [200] * 10
        time.sleep(0.6)
        assert c.get("/models", headers=slow).status_code == 200  # refilled
        text = c.get("/metrics").text
        assert 'jointspace_key_requests_total{key="fast"} 10.0' in text
        assert 'jointspace_auth_refused_total{route="/models",status="429"} 2.0' in text


def test_audit_log_records_writes_by_key_name(keyed, png, tmp_path):
    with keyed() as c:
        seed(c, png)
        c.put("/collections/shop/items", json={"items": [{"id": "z", "text": "a"}]},
              headers=headers("write"))  # fmt: skip
        c.delete("/collections/shop/items/z", headers=headers("write"))
        c.delete("/collections/drop-me", headers=headers("root"))
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [(r["key"], r["route"], r["collection"], r["items"]) for r in recs] == [
        ("root", "POST /collections", "shop", 0),
        ("root", "POST /collections", "other", 0),
        ("root", "POST /collections", "drop-me", 0),
        ("root", "PUT /collections/{name}/items", "shop", 2),
        ("root", "PUT /collections/{name}/items", "other", 2),
        ("ingest", "PUT /collections/{name}/items", "shop", 1),
        ("ingest", "DELETE /collections/{name}/items/{item_id}", "shop", 1),
        ("root", "DELETE /collections/{name}", "drop-me", 0),
    ]
    assert all(abs(r["time"] - time.time()) < 120 for r in recs)
    text = "\n".join(lines)
    assert not any(tok in text for tok in TOKENS.values())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"keys": [{"name": "a", "sha256": "' + "0" * 64 + '", "role": "owner"}]}',
         "entry 0 ('a'): unknown role 'owner' (roles: read, write, admin)"),
        ('{"keys": [{"name": "a", "sha256": "abc", "role": "read"}]}',
         "entry 0 ('a'): 'sha256' must be 64 hex digits"),
        ('{"keys": [{"name": "a", "sha256": "' + "0" * 64 + '", "role": "read"}, '
         '{"name": "a", "sha256": "' + "1" * 64 + '", "role": "read"}]}',
         "entry 1: duplicate name 'a'"),
        ('{"keys": [{"name": "a", "sha256": "' + "0" * 64 + '", "role": "read", "rate": -1}]}',
         "entry 0 ('a'): 'rate' must be a positive number of requests per second"),
    ],
)  # fmt: skip
def test_a_bad_keys_file_stops_start_up(tmp_path, content, message):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(SettingsError) as e:
        create_app(Settings.load({}, data_dir=tmp_path, demo=False, keys_file=path))
    assert str(e.value).startswith(f"keys file {path}: ")
    assert message in str(e.value)


def test_keys_scoped_to_models(tmp_path, tiny_clip_dir, tiny_siglip_dir):
    """A read key for one model: it embeds, lists and searches with that model only."""
    clip, siglip = f"hf:{tiny_clip_dir}", f"hf:{tiny_siglip_dir}"
    entries = [{"name": "clip-reader", "role": "read", "models": [clip]},
               {"name": "root", "role": "admin"}]  # fmt: skip
    tokens = {"clip": "c" * 32, "root": "x" * 32}
    s = Settings.load({}, models=[clip, siglip], data_dir=tmp_path / "data", demo=False,
                      keys_file=keys_file(tmp_path / "k.json", entries, tokens))  # fmt: skip
    reader, root = ({"authorization": f"Bearer {t}"} for t in tokens.values())
    with TestClient(create_app(s)) as c:
        for name, model in (("a", clip), ("b", siglip)):
            c.post("/collections", json={"name": name, "model": model}, headers=root)
            c.put(f"/collections/{name}/items", json={"items": [{"id": "x", "text": "a cat"}]},
                  headers=root)  # fmt: skip
        table = [
            ("POST", "/v1/embeddings", {"input": "a cat"}, 200),
            ("POST", "/v1/embeddings", {"input": "a cat", "model": siglip}, 403),
            ("POST", "/embed", {"texts": ["a cat"], "model": siglip}, 403),
            ("POST", "/classify", {"input": {"text": "a cat"}, "labels": ["cat"],
                                   "model": siglip}, 403),
            ("POST", "/collections/a/search", {"query": {"text": "a cat"}}, 200),
            ("POST", "/collections/b/search", {"query": {"text": "a cat"}}, 403),
            ("GET", "/collections/b/items/x", None, 403),
            ("GET", "/collections/a/items/x", None, 200),
        ]  # fmt: skip
        got = [(m, p, c.request(m, p, json=b, headers=reader).status_code)
               for m, p, b, _ in table]  # fmt: skip
        assert got == [(m, p, want) for m, p, _, want in table]
        r = c.post("/v1/embeddings", json={"input": "a cat", "model": siglip}, headers=reader)
        assert r.json()["error"] == {"type": "forbidden", "code": 403,
                                     "message": f"key 'clip-reader' has no access to model "
                                                f"'{siglip}'"}  # fmt: skip
        listed = c.get("/v1/models", headers=reader).json()["data"]
        assert [m["id"] for m in listed] == [clip]
        assert [m["id"] for m in c.get("/v1/models", headers=root).json()["data"]] == [clip, siglip]


def test_a_bad_models_scope_stops_start_up(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"name": "a", "sha256": "' + "0" * 64 + '", "role": "read", '
                    '"models": "house"}]}')  # fmt: skip
    with pytest.raises(SettingsError) as e:
        create_app(Settings.load({}, data_dir=tmp_path, demo=False, keys_file=path))
    assert str(e.value) == (f"keys file {path}: entry 0 ('a'): 'models' must be a list of model "
                            'names, or ["*"]')  # fmt: skip
