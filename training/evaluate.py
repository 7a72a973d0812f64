"""`jointspace eval`: runs any encoder through the registered eval suites on the held-out splits.

The suites live with the model each measures and register themselves with training.suites:
- towers: fashion-zero-shot, fashion-tinted, fashion-composed, tuxpaint, emoji;
- audio (models with an audio tower): audio-speech, audio-sounds, video-sound-moments;
- fusion: fusion-tuxpaint, fusion-fashion, fusion-head (the last needs an audio tower);
- temporal (models with an image tower): video-order, video-moments;
- captioner (models with a captioner): captioning; decoder (models with one): generation;
- speech (where the packaged recogniser is installed): speech-queries, speech-moments, speech-wer.
This module imports the suite modules (so that they register) and none of them imports another;
suites registered from the layers above (the CLI's hybrid-search, which needs the collections)
join them once their module is imported. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

from encoders.base import Encoder
from training.audio import eval as audio_eval
from training.captioner import eval as captioner_eval
from training.decoder import eval as decoder_eval
from training.fusion import eval as fusion_eval
from training.speech import eval as speech_eval
from training.suites import REGISTRY, ordered
from training.temporal import eval as temporal_eval
from training.towers import eval as towers_eval

#: the suite modules, in the order their suites are listed and run
MODULES = (towers_eval, audio_eval, fusion_eval, temporal_eval, captioner_eval, decoder_eval,
           speech_eval)  # fmt: skip
SUITES = ordered(m.__name__ for m in MODULES)
AUDIO_SUITES = tuple(s for s in SUITES if REGISTRY[s].needs_audio)  # need an audio tower


def known_suites() -> tuple[str, ...]:
    """The suites of the modules above, then any registered by a higher layer."""
    return SUITES + tuple(n for n in REGISTRY if n not in SUITES)


def default_suites(enc: Encoder) -> tuple[str, ...]:
    """Every suite the model's towers (and decoders) can run."""
    return tuple(s for s in known_suites() if REGISTRY[s].can_run(enc))


def evaluate(
    enc: Encoder, suites: tuple[str, ...] | None = None, limit: int | None = None, seed: int = 0
) -> dict:
    """{"model", "seed", "suites": {suite: figures}} for the suites asked (default: all it can)."""
    suites = suites or default_suites(enc)
    known = known_suites()
    unknown = [s for s in suites if s not in known]
    if unknown:
        raise ValueError(f"unknown eval suite(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if any(REGISTRY[s].needs_audio and not REGISTRY[s].can_run(enc) for s in suites):
        raise ValueError(
            f"model '{enc.name}' has no audio tower for the {', '.join(AUDIO_SUITES)} suites"
        )
    return {
        "model": enc.name,
        "seed": seed,
        "suites": {s: REGISTRY[s].run(enc, limit=limit, seed=seed) for s in suites},
    }
