"""Safe decoding: allow-listed formats only, pixel cap from the header, EXIF, first frame, RGB."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from encoders import InputError, decode_image
from encoders.decode import sniff_format


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny IDAT: decoding it would be huge."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_allowed_formats_decode_to_rgb(fmt):
    img = Image.new("RGB", (30, 20), (200, 10, 10))
    out = decode_image(encode(img, fmt))
    assert out.mode == "RGB"
    assert out.size == (30, 20)


def test_tiff_is_refused_even_though_pillow_reads_it():
    data = encode(Image.new("RGB", (8, 8)), "TIFF")
    with pytest.raises(InputError) as e:
        decode_image(data, name="x.tiff")
    assert (
        str(e.value) == "x.tiff: not a supported image format (allowed: JPEG, PNG, WEBP, GIF, BMP)"
    )


def test_pixel_cap_is_checked_from_the_header_before_decoding():
    data = png_header_only(20000, 20000)
    with pytest.raises(InputError) as e:
        decode_image(data, name="bomb.png")
    assert str(e.value) == "bomb.png: 20000x20000 is 400.0 megapixels, over the limit of 40"


def test_pixel_cap_is_configurable():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(
        InputError, match=r"^img: 100x100 is 0.0 megapixels, over the limit of 0.005$"
    ):
        decode_image(data, name="img", max_pixels=5000)
    assert decode_image(data, max_pixels=10_000).size == (100, 100)


def test_truncated_jpeg():
    img = Image.effect_noise((256, 256), 60).convert("RGB")
    data = encode(img, "JPEG", quality=90)
    with pytest.raises(InputError) as e:
        decode_image(data[: len(data) // 2], name="cut.jpg")
    assert str(e.value) == "cut.jpg: truncated or corrupt JPEG data"


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(InputError) as e:
        decode_image(p)
    assert str(e.value) == f"{p}: not a supported image format (allowed: JPEG, PNG, WEBP, GIF, BMP)"


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match=r"nope.png: no such file$"):
        decode_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.png: empty file$"):
        decode_image(tmp_path / "empty.png")


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_image(buf.getvalue())
    assert out.getpixel((5, 5)) == (255, 0, 0)


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = decode_image(encode(img, "PNG"))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_corrupt_png_header():
    data = png_header_only(10, 10)
    data = data[:16] + b"\x00" * 4 + data[20:]  # zero the IHDR length field
    with pytest.raises(InputError, match=r"^x.png: corrupt PNG header$"):
        decode_image(data, name="x.png")


def test_sniffing():
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"RIFF\x00\x00\x00\x00AVI LIST") is None
    assert sniff_format(b"GIF89a") == "GIF"
    assert sniff_format(b"") is None
