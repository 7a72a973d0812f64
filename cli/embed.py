"""`jointspace embed`: vectors of texts, images and audio files, to the terminal, .npy or
.parquet; and of videos, one JSON line per segment (or those rows in .npy or .parquet)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from cli.common import Fps, Pooling, Shots, err, friendly, out, progress
from encoders import decode_audio, decode_image, load_encoder
from encoders.base import AUDIO, IMAGE, batches, check_texts
from encoders.video import decode_video
from runtime.limits import Limits


@friendly
def embed(
    model: Annotated[
        str, typer.Option(help="Model spec, e.g. open_clip:ViT-B-32@laion2b_s34b_b79k")
    ],
    text: Annotated[list[str] | None, typer.Option(help="A text to embed (repeatable).")] = None,
    image: Annotated[list[Path] | None, typer.Option(help="An image file (repeatable).")] = None,
    audio: Annotated[
        list[Path] | None,
        typer.Option(help="An audio file: WAV, FLAC, Ogg, MP3, M4A (repeatable)."),
    ] = None,
    video: Annotated[
        list[Path] | None,
        typer.Option(
            help="A video file: MP4, WebM, GIF (repeatable); prints a JSON line per "
            "segment and one for the whole video."
        ),
    ] = None,
    interval: Annotated[
        float | None, typer.Option(min=0.1, help="Video segment length, seconds (default 4).")
    ] = None,
    shots: Shots = False,
    fps: Fps = 1.0,
    pooling: Pooling = "auto",
    window: Annotated[
        float | None,
        typer.Option(min=0.1, help="Audio window in seconds (default: the model's, 10 s)."),
    ] = None,
    max_seconds: Annotated[
        float, typer.Option(min=0.1, help="Longest audio or video accepted.")
    ] = 600.0,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write vectors to .npy or .parquet.")
    ] = None,
    similarity: Annotated[bool, typer.Option(help="Print the cosine similarity matrix.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inputs per forward pass.")] = 32,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Largest image (default: the service's limit).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: auto).")] = None,
) -> None:
    """Embed texts, images and audio; texts come first in the output, then images, then audio
    (one pooled vector per clip), each group in the order given. Videos are embedded alone, as
    segments with their times."""
    if out_path is not None and out_path.suffix not in (".npy", ".parquet"):
        raise typer.BadParameter(f"--out must end in .npy or .parquet, not '{out_path.suffix}'")
    if video:
        if text or image or audio:
            raise typer.BadParameter("--video is embedded alone: give it without --text, "
                                     "--image or --audio")  # fmt: skip
        if shots and interval is not None:
            raise typer.BadParameter("give --interval or --shots, not both")
        embed_videos(model, video, interval, shots, fps, max_seconds, out_path, device, pooling)
        return
    texts, paths, sounds = list(text or []), list(image or []), list(audio or [])
    if not texts and not paths and not sounds:
        raise typer.BadParameter("give at least one --text, --image or --audio")
    # Validate every input before the model loads, so a bad one fails in milliseconds.
    check_texts(texts)
    service = Limits.defaults()  # the limits `jointspace serve` applies, --max-* flags aside
    max_pixels = max_pixels or service.max_pixels
    for p in paths:
        decode_image(p, max_pixels=max_pixels)
    limits = dataclasses.replace(service.audio, max_seconds=max_seconds)
    for p in sounds:
        decode_audio(p, limits=limits)
    enc = load_encoder(model, device=device)
    if sounds:
        enc.require(AUDIO)
    matrix, truncated = embed_inputs(
        enc, texts, paths, sounds, batch_size, lambda p: decode_image(p, max_pixels=max_pixels),
        lambda p: decode_audio(p, enc.audio_rate, limits=limits), window,
    )  # fmt: skip
    emit(texts, paths, sounds, matrix, truncated, enc.context_length, out_path, similarity)


def emit(
    texts: list[str], paths: list[Path], sounds: list[Path], matrix: np.ndarray,
    truncated: list[bool], context: int, out_path: Path | None, similarity: bool,
) -> None:  # fmt: skip
    """Warn of truncated texts, then write the vectors to --out, print the similarity matrix, or
    print the vectors."""
    for i, cut in enumerate(truncated[: len(texts)]):
        if cut:
            err.print(
                f"warning: text {i} was longer than the model's {context}-token context and "
                "was truncated",
                markup=False,
            )
    ids = [f"text-{i}" for i in range(len(texts))] + [str(p) for p in paths + sounds]
    modalities = ["text"] * len(texts) + ["image"] * len(paths) + ["audio"] * len(sounds)
    if out_path is not None:
        write_vectors(out_path, ids, modalities, matrix, truncated)
        err.print(
            f"wrote {matrix.shape[0]} x {matrix.shape[1]} vectors to {out_path}", markup=False
        )
    if similarity:
        print_similarity(ids, texts, paths + sounds, matrix)
    if out_path is None and not similarity:
        np.savetxt(sys.stdout, matrix, fmt="%.6f")


def embed_inputs(
    enc, texts: list[str], paths: list[Path], sounds: list[Path], batch_size: int,
    read_image: Callable, read_audio: Callable, window: float | None,
) -> tuple[np.ndarray, list[bool]]:  # fmt: skip
    """Texts, then images, then audio clips through their towers in batches under a progress
    bar: the (n, dim) vectors in that order, and per input whether it was truncated."""
    vectors, truncated = [], []
    total = len(texts) + len(paths) + len(sounds)
    with progress(total) as bar:
        task = bar.add_task("embedding", total=total)
        for chunk in batches(texts, batch_size):
            res = enc.encode_text(chunk)
            vectors.append(res.vectors)
            truncated.extend(res.truncated)
            bar.advance(task, len(chunk))
        for chunk in batches(paths, batch_size):
            vectors.append(enc.embed_images([read_image(p) for p in chunk]))
            truncated.extend([False] * len(chunk))
            bar.advance(task, len(chunk))
        for chunk in batches(sounds, batch_size):
            vectors.append(enc.embed_audio([read_audio(p) for p in chunk], window))
            truncated.extend([False] * len(chunk))
            bar.advance(task, len(chunk))
    return np.concatenate(vectors), truncated


def embed_videos(
    model: str, paths: list[Path], interval: float | None, shots: bool, fps: float,
    max_seconds: float, out_path: Path | None, device: str | None, pooling: str = "auto",
) -> None:  # fmt: skip
    """Each video decoded and checked before the model loads, then per video a JSON line per
    segment and one for the whole video (`"whole": true`), or those rows written to --out with
    ids `FILE#t=START,END`."""
    limits = dataclasses.replace(Limits.defaults().video, max_seconds=max_seconds)
    for p in paths:  # a bad file fails before the model loads; decoded again one at a time
        decode_video(p, fps=fps, shots=shots, limits=limits)
    enc = load_encoder(model, device=device)
    enc.require(IMAGE)
    if pooling == "auto":
        pooling = "temporal" if enc.temporal_head is not None else "mean"
    enc.pooling_head(pooling)  # an unknown name or a missing head fails before any decoding
    ids, rows = [], []
    with progress(len(paths)) as bar:
        task = bar.add_task("embedding videos", total=len(paths))
        for p in paths:
            v = decode_video(p, fps=fps, shots=shots, limits=limits)
            res = enc.encode_video([v], interval or 4.0, shots=shots, pooling=pooling)[0]
            spans = [(s.start, s.end, vec, False)
                     for s, vec in zip(res.segments, res.segment_vectors, strict=True)]  # fmt: skip
            for a, b, vec, whole in [*spans, (0.0, round(v.duration, 3), res.vector, True)]:
                ids.append(f"{p}#t={a:g},{b:g}")
                rows.append(vec)
                if out_path is None:
                    line = {"file": str(p), "start": a, "end": b, "whole": whole,
                            "vector": [round(float(x), 6) for x in vec]}  # fmt: skip
                    out.print(json.dumps(line), markup=False, soft_wrap=True, highlight=False)
            bar.advance(task)
    if out_path is not None:
        matrix = np.stack(rows)
        write_vectors(out_path, ids, ["video"] * len(ids), matrix, [False] * len(ids))
        err.print(f"wrote {matrix.shape[0]} x {matrix.shape[1]} vectors to {out_path}",
                  markup=False)  # fmt: skip


def write_vectors(
    path: Path, ids: list[str], modalities: list[str], matrix: np.ndarray, truncated: list[bool]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, matrix)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(matrix.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "modality": pa.array(modalities, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]),
            "truncated": pa.array(truncated, pa.bool_()),
        }
    )
    pq.write_table(table, path)


def print_similarity(ids: list[str], texts: list[str], paths: list[Path], m: np.ndarray) -> None:
    """Texts against media files when both are given, otherwise everything against everything."""
    if texts and paths:
        rows, cols = list(range(len(texts))), list(range(len(texts), len(ids)))
        row_names, col_names = texts, [p.name for p in paths]
    else:
        rows = cols = list(range(len(ids)))
        row_names = col_names = texts or [p.name for p in paths]
    sims = m[rows] @ m[cols].T
    table = Table(title="cosine similarity", show_lines=False)
    table.add_column("")
    for name in col_names:
        table.add_column(name, justify="right")
    for name, row in zip(row_names, sims, strict=True):
        best = int(row.argmax())
        cells = [f"[bold]{v:.3f}[/bold]" if j == best else f"{v:.3f}" for j, v in enumerate(row)]
        table.add_row(name, *cells)
    out.print(table)
