"""Speech detection per 40 ms timeline frame: webrtcvad, guarded by silero-vad and the RMS gate.

webrtcvad (the design card's VAD) scores band energies with a small GMM: it marks white noise and
pure tones as speech (``python -m benchmarks.vad_accuracy`` measures it). silero-vad, a small
recurrent network whose ONNX file ships in its wheel, rejects them; the RMS gate rejects near-silence.
A frame is speech only when all three agree; short pauses are then bridged and lone blips dropped.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import webrtcvad

from sync_defense.onnx_session import SINGLE_THREAD, onnx_session

from .audio import frame_loudness_dbfs
from .config import PreprocessConfig

SILERO_VERSION = "6.2.3"  # the pinned wheel (Makefile, deploy/Dockerfile): it ships the sequence model below
# The 16 kHz streaming model exported to run many chunks per call (bit-exact with silero_vad.onnx, ~2.5x
# faster here): the per-chunk Python loop of the streaming file is most of its cost.
SILERO_FILE = "silero_vad_16k_sequence.onnx"
SILERO_RATE = 16_000
SILERO_CHUNK = 512  # samples per model step (32 ms)
SILERO_CONTEXT = 64  # each step also sees the previous chunk's last samples
SILERO_STATE = (1, 1, 128)  # LSTM h and c, carried through the whole clip
SILERO_BLOCK = 512  # chunks per ONNX call (16 s of audio): bounds the copied input, keeps the loop short


def silero_model_path() -> Path:
    """The ONNX file inside the installed silero-vad package, never a download.

    Located through the package spec rather than ``importlib.resources``: importing ``silero_vad``
    imports torch, which the serving image does not have (the wheel is installed with ``--no-deps``).
    """
    spec = importlib.util.find_spec("silero_vad")
    path = Path(spec.origin).parent / "data" / SILERO_FILE if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise RuntimeError(f"silero-vad's {SILERO_FILE} is missing: pip install --no-deps silero-vad=={SILERO_VERSION}")
    return path


@lru_cache(maxsize=1)
def load_vad() -> ort.InferenceSession:
    """The silero-vad session, loaded once per process (call it at server start).

    Single-threaded: the server runs several such processes on few cores.
    """
    return onnx_session(silero_model_path(), SINGLE_THREAD)


def _zero_padded(audio: np.ndarray, n_samples: int, left: int = 0) -> np.ndarray:
    """``audio`` cut or zero-padded to ``n_samples``, after ``left`` leading zeros."""
    out = np.zeros(left + n_samples, np.float32)
    kept = audio[:n_samples]
    out[left : left + kept.size] = kept
    return out


def _per_frame(values: np.ndarray, step: int, n_frames: int, cfg: PreprocessConfig) -> np.ndarray:
    """Maximum of per-step values over each timeline frame they overlap (steps of ``step`` samples from 0).

    Both sizes are cut to their greatest common divisor, so 32 ms silero chunks and 20 ms webrtcvad
    frames map exactly onto 40 ms frames; the maximum keeps speech that touches a frame.
    """
    grid = math.gcd(step, cfg.samples_per_frame)
    fine = np.repeat(values, step // grid)[: n_frames * cfg.samples_per_frame // grid]
    return fine.reshape(n_frames, cfg.samples_per_frame // grid).max(axis=1)


def webrtc_speech(audio: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """webrtcvad's verdict per timeline frame: speech in any of its 10/20/30 ms frames that overlap the frame."""
    n_frames = audio.size // cfg.samples_per_frame
    step = cfg.audio.sample_rate * cfg.speech.webrtc_frame_ms // 1000
    n_steps = -(-n_frames * cfg.samples_per_frame // step)
    pcm = (np.clip(_zero_padded(audio, n_steps * step), -1.0, 1.0) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(cfg.speech.webrtc_mode)
    size = 2 * step
    flags = np.fromiter((vad.is_speech(pcm[i : i + size], cfg.audio.sample_rate) for i in range(0, len(pcm), size)), bool, n_steps)
    return _per_frame(flags, step, n_frames, cfg)


def silero_chunk_probabilities(audio: np.ndarray) -> np.ndarray:
    """silero-vad's speech probability per 512-sample chunk (the last zero-padded), one state through the clip."""
    n_chunks = -(-audio.size // SILERO_CHUNK)
    if n_chunks == 0:
        return np.zeros(0, np.float32)
    padded = _zero_padded(audio, n_chunks * SILERO_CHUNK, left=SILERO_CONTEXT)
    steps = np.lib.stride_tricks.sliding_window_view(padded, SILERO_CONTEXT + SILERO_CHUNK)[::SILERO_CHUNK]
    h = c = np.zeros(SILERO_STATE, np.float32)
    probabilities = []
    for start in range(0, n_chunks, SILERO_BLOCK):
        block = np.ascontiguousarray(steps[start : start + SILERO_BLOCK])
        p, h, c = load_vad().run(["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c})
        probabilities.append(p)
    return np.concatenate(probabilities)


def silero_speech_probability(audio: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """silero-vad's highest speech probability over the chunks each timeline frame overlaps."""
    if cfg.audio.sample_rate != SILERO_RATE:
        raise ValueError(f"the silero-vad model runs at {SILERO_RATE} Hz, not {cfg.audio.sample_rate}")
    n_frames = audio.size // cfg.samples_per_frame
    chunks = silero_chunk_probabilities(audio[: n_frames * cfg.samples_per_frame])
    return _per_frame(chunks, SILERO_CHUNK, n_frames, cfg)


def _flip_short_runs(flags: np.ndarray, value: bool, max_length: int, keep_edge_runs: bool) -> np.ndarray:
    """Runs of ``value`` at most ``max_length`` long flipped; with ``keep_edge_runs``, runs touching either end stay."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(flags.astype(np.int8))) + 1])
    lengths = np.diff(np.append(starts, flags.size))
    run_values = flags[starts]
    short = (run_values == value) & (lengths <= max_length)
    if keep_edge_runs:
        short &= (starts > 0) & (starts + lengths < flags.size)
    run_values[short] = not value
    return np.repeat(run_values, lengths)


def _smooth(speech: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Bridge pauses of at most ``vad_max_pause_frames`` between speech, then drop runs shorter than ``vad_min_speech_frames``.

    The VADs flicker off between words and syllables while the mouth keeps moving; a lone short
    burst is more often a click or a breath than speech a lip-sync window could be judged on.
    Silence before the first and after the last speech is never bridged.
    """
    bridged = _flip_short_runs(speech, False, cfg.speech.max_pause_frames, keep_edge_runs=True)
    return _flip_short_runs(bridged, True, cfg.speech.min_speech_frames - 1, keep_edge_runs=False)


def speech_frames(audio: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Speech flag per timeline frame (``len(audio) // samples_per_frame``): webrtcvad, silero-vad and RMS all agree.

    ``audio`` is mono float32 at ``cfg.audio.sample_rate`` in -1..1. Raw agreement is then smoothed (``_smooth``).
    """
    n_frames = audio.size // cfg.samples_per_frame
    if n_frames == 0:
        return np.zeros(0, bool)
    raw = (
        webrtc_speech(audio, cfg)
        & (silero_speech_probability(audio, cfg) > cfg.speech.silero_threshold)
        & (frame_loudness_dbfs(audio, cfg) > cfg.speech.rms_dbfs)
    )
    return _smooth(raw, cfg)
