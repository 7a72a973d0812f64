"""A truncated or corrupted snapshot is detected, named, and skipped for the previous one; with no
valid snapshot the index is rebuilt from the store: never an empty collection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index import Catalog, SnapshotError
from index.snapshot import list_snapshots, read_snapshot

DIM = 8


@pytest.fixture
def two_snapshots(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(150, DIM)).astype(np.float32)
    cat = Catalog(tmp_path, auto_maintain=False)
    col = cat.create("c", DIM)
    col.upsert([f"i{i}" for i in range(100)], v[:100])
    first = col.snapshot()
    col.upsert([f"i{i}" for i in range(100, 150)], v[100:])
    second = col.snapshot()
    cat.close()
    assert list_snapshots(tmp_path / "c" / "snapshots") == [second, first]
    return tmp_path, v, first, second


def reopen(root):
    cat = Catalog(root, auto_maintain=False)
    return cat, cat.get("c")


def assert_all_present(col, v):
    assert col.count == 150
    for i in (0, 99, 100, 149):
        assert col.search(v[i], k=1)[0][0].id == f"i{i}"


def test_truncated_snapshot_falls_back_to_the_previous(two_snapshots):
    root, v, _, second = two_snapshots
    bad = second / "index.faiss"
    size = bad.stat().st_size
    bad.write_bytes(bad.read_bytes()[: size // 2])
    cat, col = reopen(root)
    assert col.recovery_errors == [
        f"{bad}: truncated or padded ({size // 2} bytes, manifest says {size})"
    ]
    assert_all_present(col, v)
    cat.close()


def test_flipped_byte_is_detected(two_snapshots):
    root, v, _, second = two_snapshots
    bad = second / "index.faiss"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotError) as e:
        read_snapshot(second, {"dim": DIM})
    assert str(e.value) == f"{bad}: checksum mismatch (corrupt file)"
    cat, col = reopen(root)
    assert col.recovery_errors == [f"{bad}: checksum mismatch (corrupt file)"]
    assert_all_present(col, v)
    cat.close()  # writes a fresh snapshot in place of the corrupt one
    assert read_snapshot(second, {"dim": DIM}).manifest["count"] == 150


def test_no_valid_snapshot_rebuilds_from_the_store(two_snapshots):
    root, v, first, second = two_snapshots
    (first / "manifest.json").write_text("{not json")
    (second / "dead.npy").unlink()
    cat, col = reopen(root)
    assert len(col.recovery_errors) == 2
    assert col.recovery_errors[0] == f"{second / 'dead.npy'}: missing"
    assert col.recovery_errors[1].startswith(f"{first / 'manifest.json'}: unreadable manifest")
    assert_all_present(col, v)
    cat.close()


def test_snapshot_for_other_settings_is_refused(two_snapshots):
    root, v, _, second = two_snapshots
    m = json.loads((second / "manifest.json").read_text())
    m["dim"] = 16
    (second / "manifest.json").write_text(json.dumps(m))
    cat, col = reopen(root)
    assert col.recovery_errors == [f"{second / 'manifest.json'}: dim is 16, expected 8"]
    assert_all_present(col, v)
    cat.close()


def test_manifest_records_what_it_promises(two_snapshots):
    import faiss

    second = two_snapshots[3]
    m = json.loads((second / "manifest.json").read_text())
    assert {k: m[k] for k in ("format", "name", "count", "ntotal", "dim", "metric", "model")} == {
        "format": 1,
        "name": "c",
        "count": 150,
        "ntotal": 150,
        "dim": 8,
        "metric": "cosine",
        "model": None,
    }
    assert m["faiss_version"] == faiss.__version__
    assert set(m["files"]) == {"index.faiss", "dead.npy"}
    assert len(m["files"]["index.faiss"]["sha256"]) == 64


def test_only_the_newest_two_are_kept_and_stray_temporaries_go(tmp_path):
    rng = np.random.default_rng(1)
    cat = Catalog(tmp_path, auto_maintain=False)
    col = cat.create("c", DIM)
    snaps = tmp_path / "c" / "snapshots"
    snaps.mkdir(parents=True)
    (snaps / ".tmp-snap-00000000000000000001-999999").mkdir()  # left by a killed writer
    made = []
    for i in range(4):
        col.upsert([f"i{i}"], rng.normal(size=(1, DIM)).astype(np.float32))
        made.append(col.snapshot())
    assert list_snapshots(snaps) == [made[3], made[2]]
    assert sorted(p.name for p in snaps.iterdir()) == sorted([made[2].name, made[3].name])
    cat.close()
