"""Sound-caption pairs for the house audio tower, all from offline, installable data.

Sources: the Tux Paint stamps' sound effects (`<stamp>.ogg`, paired with the stamp's caption and
image) and English spoken descriptions (`<stamp>_desc.ogg`), and speech synthesised with Debian's
espeak-ng: Fashion-MNIST item and colour phrases, stamp captions and emoji names, in many voices,
speeds and pitches. Held-out splits: stamps and emoji by the same key hashing as the image data
(`housedata.sets.in_split`), and a fixed set of voice variants (`HELD_OUT_VARIANTS`) that training
never hears. The non-English spoken descriptions are not used: their words do not match the
English captions the text tower reads. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.audio import decode_audio
from housedata.sets import (
    COLOURS,
    FASHION_SYNONYMS,
    TUXPAINT_DIR,
    MissingData,
    NotoEmoji,
    TuxPaintStamps,
    in_split,
    require,
)

RATE = 16_000
ESPEAK_LANGS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd", "en-us-nyc"]  # fmt: skip
TRAIN_VARIANTS = ["m1", "m2", "m4", "m5", "m6", "m7", "f1", "f2", "f4", "f5", "klatt",
                  "klatt2", "klatt3", "croak", "Andy", "Annie", "Denis", "Michael", "belinda",
                  "john"]  # fmt: skip
HELD_OUT_VARIANTS = ["m3", "f3", "klatt4", "Alex"]
SPOKEN_TEMPLATES = ["{}", "a {}", "the {}", "a photo of a {}", "show me a {}", "I want a {}"]


@dataclass(frozen=True)
class Voice:
    lang: str
    variant: str
    speed: int = 160
    pitch: int = 50

    @property
    def name(self) -> str:
        return f"{self.lang}+{self.variant}"


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingData("espeak-ng not found: install the Debian package espeak-ng")
    return exe


def speak(text: str, voice: Voice) -> np.ndarray:
    """`text` spoken by espeak-ng in `voice`, as mono float32 at 16 kHz."""
    cmd = [espeak_binary(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
           "--stdout", text]  # fmt: skip
    wav = subprocess.run(cmd, capture_output=True, check=True, timeout=30).stdout
    return decode_audio(wav, RATE, name=f"espeak {voice.name}").samples


def random_voice(rng: np.random.Generator, variants: list[str]) -> Voice:
    return Voice(
        ESPEAK_LANGS[rng.integers(len(ESPEAK_LANGS))],
        variants[rng.integers(len(variants))],
        int(rng.integers(120, 200)),
        int(rng.integers(25, 80)),
    )


def fashion_phrases() -> list[str]:
    """Item and colour phrases, the way a shopper would say them."""
    out = []
    for names in FASHION_SYNONYMS:
        for name in names:
            for colour in [None, *COLOURS]:
                thing = f"{colour} {name}" if colour else name
                out += [t.format(thing) for t in SPOKEN_TEMPLATES[:3]]
    return list(dict.fromkeys(out))


@dataclass
class Stamp:
    key: str
    caption: str
    png: Path
    sound: Path | None
    description: Path | None


def stamps(root: Path = TUXPAINT_DIR) -> list[Stamp]:
    """Every captioned stamp, with its sound effect and English spoken description if it has one."""
    require(root, "tuxpaint")
    out = []
    for png, caption in TuxPaintStamps(None, root=root).items:
        sound, desc = png.with_suffix(".ogg"), png.with_name(f"{png.stem}_desc.ogg")
        out.append(
            Stamp(
                str(png.relative_to(root)),
                caption.strip().rstrip(".").strip(),
                png,
                sound if sound.is_file() else None,
                desc if desc.is_file() else None,
            )
        )
    return out


def foreign_descriptions(stamp: Stamp) -> list[Path]:
    """The stamp's spoken descriptions in languages other than English (`<stamp>_desc_<lang>.ogg`):
    never used in training, words the English-reading towers do not know."""
    return sorted(stamp.png.parent.glob(f"{stamp.png.stem}_desc_*.ogg"))


def emoji_names(split: str, seed: int = 0) -> list[str]:
    return [unicodedata.name(ch).lower() for ch in NotoEmoji(split, seed).chars]


@dataclass
class Clips:
    """Utterances as one int16 buffer with offsets; each has a caption, and maybe an image."""

    audio: np.ndarray  # int16, all clips back to back
    offsets: np.ndarray  # (n + 1,)
    caption: np.ndarray  # (n,) index into `captions`
    image: np.ndarray  # (n,) index into the stamp list, -1 for none
    kind: np.ndarray  # (n,) index into KINDS
    captions: list[str]

    def __len__(self) -> int:
        return len(self.caption)

    def clip(self, i: int) -> np.ndarray:
        return self.audio[self.offsets[i] : self.offsets[i + 1]].astype(np.float32) / 32767.0


KINDS = ("sound", "description", "speech")


def _items(split: str, seed: int, voices_per: dict[str, int]) -> Iterator[tuple]:
    """(how to get the audio, caption, image index, kind) for every utterance of a split."""
    rng = np.random.default_rng([seed, 11])
    variants = TRAIN_VARIANTS if split == "train" else HELD_OUT_VARIANTS
    all_stamps = stamps()
    for i, st in enumerate(all_stamps):
        if not in_split(st.key, split, seed):
            continue
        if st.sound:
            yield ("file", st.sound), st.caption, i, 0
        if st.description:
            yield ("file", st.description), st.caption, i, 1
        for _ in range(voices_per["stamp"]):
            yield ("speak", st.caption, random_voice(rng, variants)), st.caption, i, 2
    for phrase in fashion_phrases():
        for _ in range(voices_per["fashion"]):
            yield ("speak", phrase, random_voice(rng, variants)), phrase, -1, 2
    for name in emoji_names(split, seed):
        for _ in range(voices_per["emoji"]):
            yield ("speak", name, random_voice(rng, variants)), name, -1, 2


def build_clips(
    split: str = "train",
    seed: int = 0,
    voices_per: dict[str, int] | None = None,
    max_seconds: float = 8.0,
    cache_dir: str | os.PathLike = "~/.cache/jointspace",
    progress=None,
    limit: int | None = None,
) -> Clips:
    """Decode and synthesise every utterance of a split, or its first `limit` (cached on disk by
    its recipe)."""
    voices_per = voices_per or {"stamp": 3, "fashion": 4, "emoji": 2}
    recipe = f"{split}:{seed}:{sorted(voices_per.items())}:{max_seconds}:{HELD_OUT_VARIANTS}:v1"
    if limit is not None:
        recipe += f":{limit}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"audio-clips-{key}.npz"
    items = list(_items(split, seed, voices_per))[:limit]
    captions = list(dict.fromkeys(c for _, c, _, _ in items))
    if path.is_file():
        z = np.load(path)
        return Clips(z["audio"], z["offsets"], z["caption"], z["image"], z["kind"], captions)
    cap_index = {c: i for i, c in enumerate(captions)}
    parts, lengths, cap, img, kind = [], [], [], [], []
    for n, (how, caption, image, k) in enumerate(items):
        wave = (decode_audio(how[1], RATE).samples if how[0] == "file" else speak(how[1], how[2]))[
            : int(max_seconds * RATE)
        ]
        parts.append((np.clip(wave, -1, 1) * 32767).astype(np.int16))
        lengths.append(len(wave))
        cap.append(cap_index[caption])
        img.append(image)
        kind.append(k)
        if progress:
            progress(n + 1, len(items))
    clips = Clips(
        np.concatenate(parts),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        np.array(cap, np.int64),
        np.array(img, np.int64),
        np.array(kind, np.int64),
        captions,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, audio=clips.audio, offsets=clips.offsets, caption=clips.caption,
             image=clips.image, kind=clips.kind)  # fmt: skip
    os.replace(tmp, path)
    return clips
