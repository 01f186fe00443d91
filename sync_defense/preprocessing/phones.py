"""Phones with their times from the upload's speech, offline: pocketsphinx's en-US acoustic model and phone bigram.

The phoneme-viseme check (``inference.evidence``) needs to know when the speech says M, B or P,
which are made with the lips shut. The ``pocketsphinx`` wheel carries a US-English acoustic model
and a phone bigram (``en-us-phone.lm.bin``), so phones are decoded without a word vocabulary and
without a download. Only the audio of frames whose lips are measured, near speech, is decoded, each
sample once: 0.4-0.5 s of one core per 10 s of speech here. The decoder is not thread-safe, so each
thread builds its own (0.13 s, once). It holds the GIL while it decodes, so the server runs it as a
model of its own (``contract.PHONES``, through ``use``), beside the rest of the upload's preprocessing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pocketsphinx

from .config import PreprocessConfig
from .crops import spans_of

MODEL_DIR = Path(pocketsphinx.__file__).parent / "model" / "en-us"
PHONE_RATE = 100  # the decoder's frames per second (10-ms hop)
SAMPLE_RATE = 16_000  # what the acoustic model was trained on
# The phone bigram's weight against the acoustics, set on training-role speech (asterisk_allison's
# recorded letters, NATO alphabet and numbers, whose words are known): an M, B or P was found in
# 17 of the 18 prompts that say one at 2.0 (13 at the library's 6.5, 15 at 3.0), and in 5 of the 76
# that say none (3 at 6.5); below 2.0 both get worse.
PHONE_LM_WEIGHT = 2.0
SPEECH_CONTEXT_FRAMES = 5  # decoded around the speech the VAD found: 0.2 s either side, for the phones' edges

_local = threading.local()


@dataclass(frozen=True)
class Phones:
    """Decoded phones (ARPAbet, ``SIL`` for silence) on the timeline's clock (0 = the first video frame)."""

    labels: tuple[str, ...]
    start_s: np.ndarray  # (n,) float64
    end_s: np.ndarray  # (n,) float64, exclusive

    def of(self, labels: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(start_s, end_s)`` of the phones whose label is in ``labels``."""
        keep = np.array([label in labels for label in self.labels], bool)
        return self.start_s[keep], self.end_s[keep]


def _decoder() -> pocketsphinx.Decoder:
    """This thread's decoder in phone mode (built once per thread)."""
    if not hasattr(_local, "decoder"):
        _local.decoder = pocketsphinx.Decoder(hmm=str(MODEL_DIR / "en-us"), allphone=str(MODEL_DIR / "en-us-phone.lm.bin"),
                                              lw=PHONE_LM_WEIGHT, samprate=SAMPLE_RATE, loglevel="FATAL")
    return _local.decoder


def near_speech(speech: np.ndarray) -> np.ndarray:
    """``speech`` (per timeline frame) widened by ``SPEECH_CONTEXT_FRAMES`` either side: what is worth decoding."""
    window = np.ones(2 * SPEECH_CONTEXT_FRAMES + 1)
    return np.convolve(np.asarray(speech, np.float64), window, mode="same") > 0


@dataclass(frozen=True)
class SpeechSpans:
    """What the decoder reads: spans ``[k0, k1)`` of timeline frames and their 16-bit samples, back to back
    (the ``phones`` model's request, ``contract.phones_spec``)."""

    pcm: np.ndarray  # (m,) int16
    spans: np.ndarray  # (k, 2) int32, each at least one frame long; m = samples_per_frame * sum of their lengths


def speech_spans(audio: np.ndarray, cfg: PreprocessConfig, spans: Sequence[tuple[int, int]]) -> SpeechSpans:
    """The samples of ``audio`` (float, on the timeline's clock) in each span, cut to the whole frames it holds."""
    per_frame, frames = cfg.samples_per_frame, len(audio) // cfg.samples_per_frame
    kept = np.array([(k0, min(k1, frames)) for k0, k1 in spans if min(k1, frames) > k0], np.int32).reshape(-1, 2)
    parts = [audio[k0 * per_frame : k1 * per_frame] for k0, k1 in kept]
    pcm = (np.clip(np.concatenate([np.zeros(0, np.float32), *parts]), -1.0, 1.0) * 32767).astype(np.int16)
    return SpeechSpans(pcm, kept)


def decode_speech(speech: SpeechSpans, cfg: PreprocessConfig) -> Phones:
    """The phones of each span, one utterance per span, with their times on the timeline's clock."""
    if cfg.audio.sample_rate != SAMPLE_RATE:
        raise ValueError(f"the phone decoder needs {SAMPLE_RATE}-Hz audio, not {cfg.audio.sample_rate}")
    spans, per_frame = np.asarray(speech.spans, np.int64).reshape(-1, 2), cfg.samples_per_frame
    lengths = (spans[:, 1] - spans[:, 0]) * per_frame
    if np.any(lengths <= 0) or lengths.sum() != len(speech.pcm):
        raise ValueError(f"{len(speech.pcm)} samples do not fill {len(spans)} spans of {per_frame} samples per frame")
    labels: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    decoder, bounds = _decoder(), np.concatenate([[0], np.cumsum(lengths)])
    for (k0, _), a, b in zip(spans, bounds[:-1], bounds[1:], strict=True):
        decoder.start_utt()
        decoder.process_raw(np.ascontiguousarray(speech.pcm[a:b], np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        offset_s = k0 / cfg.timeline.fps
        for segment in decoder.seg():
            labels.append(segment.word)
            starts.append(offset_s + segment.start_frame / PHONE_RATE)
            ends.append(offset_s + (segment.end_frame + 1) / PHONE_RATE)
    return Phones(tuple(labels), np.array(starts, np.float64), np.array(ends, np.float64))


def decode_phones(audio: np.ndarray, cfg: PreprocessConfig, spans: Sequence[tuple[int, int]]) -> Phones:
    """The phones of ``audio`` (float, on the timeline's clock) inside each span of timeline frames ``[k0, k1)``."""
    return decode_speech(speech_spans(audio, cfg, spans), cfg)


# Where the phones are decoded: None in this process; the server's ``preprocess`` sets the ``phones`` model.
PhoneRunner = Callable[[SpeechSpans], Future[Phones]]
_runner: PhoneRunner | None = None


def use(runner: PhoneRunner | None) -> None:
    """Decode through ``runner`` from now on (None: in this process); the server does it once, at start."""
    global _runner
    _runner = runner


def measured_phones(samples: np.ndarray, speech: np.ndarray, measured: np.ndarray, cfg: PreprocessConfig) -> Future[Phones]:
    """The phones the phoneme-viseme check reads: those of the frames whose lips are ``measured`` (per timeline
    frame), near the ``speech`` the VAD found, from the upload's audio ``samples``. Asked for before the mouths
    are cropped and read after: through a runner they are decoded in another process meanwhile."""
    wanted = speech_spans(samples, cfg, spans_of(measured & near_speech(speech)))
    if _runner is not None and len(wanted.spans):
        return _runner(wanted)
    done: Future[Phones] = Future()
    done.set_result(decode_speech(wanted, cfg))
    return done


def warm_up() -> None:
    """Build this thread's decoder so that a first request does not pay for it (unless a runner decodes)."""
    if _runner is None:
        _decoder()
