"""Pair datasets: caption folders and tar shards."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from PIL import Image

from training.towers.data import CaptionFolder, TarShards


def png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buf, "PNG")
    return buf.getvalue()


def test_caption_folder_csv_and_jsonl(tmp_path):
    (tmp_path / "a.png").write_bytes(png("red"))
    (tmp_path / "b.png").write_bytes(png("blue"))
    (tmp_path / "captions.csv").write_text('image,caption\na.png,a red box\nb.png,"a blue, box"\n')
    ds = CaptionFolder(tmp_path)
    assert [ds[i].caption for i in range(len(ds))] == ["a red box", "a blue, box"]
    assert ds[0].image.getpixel((0, 0)) == (255, 0, 0)
    (tmp_path / "captions.csv").unlink()
    rows = [{"image": "b.png", "caption": "blue"}, {"image": "a.png", "caption": "red"}]
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [p.caption for p in CaptionFolder(tmp_path)] == ["blue", "red"]


def test_caption_folder_without_captions(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no captions\.csv or captions\.jsonl"):
        CaptionFolder(tmp_path)


def test_tar_shards(tmp_path):
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for key, colour, caption in [("k1", "red", "red one"), ("k2", "green", "green one")]:
            for name, data in [(f"{key}.png", png(colour)), (f"{key}.txt", caption.encode())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("k3.txt")  # a caption without an image is skipped
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    ds = TarShards([shard])
    assert [p.caption for p in ds] == ["red one", "green one"]
    assert ds[1].image.getpixel((0, 0)) == (0, 128, 0)
