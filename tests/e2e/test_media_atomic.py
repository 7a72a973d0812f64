"""Media and the items that show them: a new item's medium is on disk before the transaction that
makes the item visible, a refused write leaves no new medium behind and the old items' media as
they were, and media no item refers to (what a crash between the two leaves) are collected when
the service starts."""

from __future__ import annotations

from pathlib import Path

from index.collection import Collection
from index.errors import StorageFull
from runtime.media import media_stem


def media_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "media" / "shop"


def test_medium_is_written_before_the_item_is_visible(client, png, tmp_path, monkeypatch):
    client.post("/collections", json={"name": "shop"}).raise_for_status()
    seen = []
    real = Collection.upsert

    def upsert(self, ids, *a, **kw):
        seen.append(sorted(p.name for p in media_dir(tmp_path).glob("*.png")))
        return real(self, ids, *a, **kw)

    monkeypatch.setattr(Collection, "upsert", upsert)
    r = client.put("/collections/shop/items", json={"items": [{"id": "a", "image": png()}]})
    assert r.status_code == 200
    assert seen == [[media_stem("a") + ".png"]]
    assert client.get("/collections/shop/items/a").json()["media"] == (
        f"/media/shop/{media_stem('a')}.png"
    )


def test_a_refused_write_leaves_no_medium(client, png, tmp_path, monkeypatch):
    client.post("/collections", json={"name": "shop"}).raise_for_status()
    client.put("/collections/shop/items", json={"items": [{"id": "old", "image": png()}]})
    kept = (media_dir(tmp_path) / (media_stem("old") + ".png")).read_bytes()

    def refuse(self, *a, **kw):
        raise StorageFull("no room for the write")

    monkeypatch.setattr(Collection, "upsert", refuse)
    items = [{"id": "new", "image": png()}, {"id": "old", "image": png((0, 0, 200))}]
    r = client.put("/collections/shop/items", json={"items": items})
    assert r.status_code == 507
    assert sorted(p.name for p in media_dir(tmp_path).iterdir()) == [media_stem("old") + ".png"]
    assert (media_dir(tmp_path) / (media_stem("old") + ".png")).read_bytes() == kept


def test_media_no_item_refers_to_are_collected_at_start(make_client, tiny_clip_dir, png, tmp_path):
    with make_client(f"hf:{tiny_clip_dir}") as c:
        c.post("/collections", json={"name": "shop"}).raise_for_status()
        c.put("/collections/shop/items", json={"items": [{"id": "kept", "image": png()}]})
    d = media_dir(tmp_path)
    (d / (media_stem("crashed") + ".png")).write_bytes(b"a write that never committed")
    (d / f".{media_stem('crashed')}.png.tmp").write_bytes(b"half")
    with make_client(f"hf:{tiny_clip_dir}") as c:
        c.portal.call(c.app.state.runtime.wait_for_media)
        assert sorted(p.name for p in d.iterdir()) == [media_stem("kept") + ".png"]
        url = c.get("/collections/shop/items/kept").json()["media"]
        assert c.get(url).status_code == 200
