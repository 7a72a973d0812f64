"""service/inputs.to_input, the one place an input's modality is decided: every route's schema
family maps to the same typed inputs, named in errors as the routes name them."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from encoders import InputError
from runtime import inputs as I
from service import schemas as S
from service.inputs import to_input


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 0, 0)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((250, 0, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=500)
    return buf.getvalue()


@pytest.mark.parametrize(
    "given",
    [
        lambda png: S.ImageInput(type="image", image=png),
        lambda png: S.ImageQuery(image=png),
        lambda png: S.ImageItem(id="a", image=png),
        lambda png: ("image", png),
    ],
)
def test_every_family_of_image_input_is_one_typed_image(given):
    x = to_input(given(_png_b64()), "input 0")
    assert isinstance(x, I.Image) and x.modality == "image" and x.name == "input 0"
    assert x.data.startswith(b"\x89PNG")


def test_kinds_of_every_route():
    png = _png_b64()
    assert to_input("a dress", "input 0") == I.Text("a dress")
    assert to_input(S.TextItem(id="a", text="a bag"), "item 'a'") == I.Text("a bag")
    assert to_input(S.VectorQuery(vector=[0.5, 0.5]), "query") == I.Vector([0.5, 0.5],
                                                                           "query vector")  # fmt: skip
    assert to_input(S.IdQuery(id="x"), "query") == I.ItemRef("x")
    seg = S.VideoSegments(interval=2.0)
    video = to_input(S.VideoItem(id="v", video=base64.b64encode(_gif()).decode(), segments=seg),
                     "item 'v'")  # fmt: skip
    assert isinstance(video, I.Video) and video.cut == I.Cut(interval=2.0)
    multi = to_input(S.MultiQuery(text="red", image=png, weights={"text": 2}), "query")
    assert isinstance(multi, I.Multi) and multi.weights == {"text": 2}
    assert multi.parts["text"] == I.Text("red") and multi.parts["image"].name == "query image"


def test_queries_name_their_kind_and_uploads_are_told_by_their_bytes():
    assert to_input(S.ImageQuery(image=_png_b64()), "query", by_kind=True).name == "query image"
    assert to_input(("file", _gif()), "clip.gif").modality == "image"  # a GIF upload is a picture
    with pytest.raises(InputError, match=r"notes\.txt: not a supported image"):
        to_input(("file", b"just some text"), "notes.txt")
    with pytest.raises(InputError, match="query image: not valid base64"):
        to_input(S.ImageQuery(image="%%%"), "query", by_kind=True)
