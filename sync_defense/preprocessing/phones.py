"""Phones with their times from the upload's speech, offline: pocketsphinx's en-US acoustic model and phone bigram.

The phoneme-viseme check (``inference.evidence``) needs to know when the speech says M, B or P,
which are made with the lips shut. The ``pocketsphinx`` wheel carries a US-English acoustic model
and a phone bigram (``en-us-phone.lm.bin``), so phones are decoded without a word vocabulary and
without a download. Only the audio of frames whose lips are measured, near speech, is decoded, each
sample once: 0.4-0.5 s of one core per 10 s of speech here. The decoder is not thread-safe, so each
thread builds its own (0.13 s, once).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
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


def decode_phones(audio: np.ndarray, cfg: PreprocessConfig, spans: Sequence[tuple[int, int]]) -> Phones:
    """The phones of ``audio`` (float, on the timeline's clock) inside each span of timeline frames ``[k0, k1)``."""
    if cfg.audio.sample_rate != SAMPLE_RATE:
        raise ValueError(f"the phone decoder needs {SAMPLE_RATE}-Hz audio, not {cfg.audio.sample_rate}")
    labels: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    decoder, per_frame = _decoder(), cfg.samples_per_frame
    for k0, k1 in spans:
        pcm = (np.clip(audio[k0 * per_frame : k1 * per_frame], -1.0, 1.0) * 32767).astype(np.int16)
        if not pcm.size:
            continue
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        offset_s = k0 / cfg.timeline.fps
        for segment in decoder.seg():
            labels.append(segment.word)
            starts.append(offset_s + segment.start_frame / PHONE_RATE)
            ends.append(offset_s + (segment.end_frame + 1) / PHONE_RATE)
    return Phones(tuple(labels), np.array(starts, np.float64), np.array(ends, np.float64))


def measured_phones(samples: np.ndarray, speech: np.ndarray, measured: np.ndarray, cfg: PreprocessConfig) -> Phones:
    """The phones the phoneme-viseme check reads: those of the frames whose lips are ``measured`` (per timeline
    frame), near the ``speech`` the VAD found, from the upload's audio ``samples``."""
    return decode_phones(samples, cfg, spans_of(measured & near_speech(speech)))


def warm_up() -> None:
    """Build this thread's decoder so that a first request does not pay for it."""
    _decoder()
