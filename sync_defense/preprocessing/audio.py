"""Audio features: the normalised log-mel spectrogram and a per-frame loudness speech gate."""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

from .config import PreprocessConfig


@lru_cache(maxsize=4)
def _mel_basis(cfg: PreprocessConfig) -> np.ndarray:
    return librosa.filters.mel(
        sr=cfg.audio.sample_rate, n_fft=cfg.audio.n_fft, n_mels=cfg.audio.n_mels, fmin=cfg.audio.fmin, fmax=cfg.audio.fmax
    ).astype(np.float32)


def log_mel(audio: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """``(n_mels, 1 + len(audio) // hop)`` normalised log-mel; frame ``i`` is centred at ``i * hop``.

    With a 10 ms hop at 25 fps, video frame ``k`` starts at mel frame ``4 k``, so a window's
    audio is an exact slice of one spectrogram computed once for the whole clip.
    """
    spec = librosa.stft(
        audio.astype(np.float32), n_fft=cfg.audio.n_fft, hop_length=cfg.audio.hop_length, win_length=cfg.audio.win_length,
        window="hann", center=True, pad_mode="constant",
    )
    mel = _mel_basis(cfg) @ (np.abs(spec) ** 2)
    return ((np.log(mel + cfg.audio.log_floor) - cfg.audio.mel_mean) / cfg.audio.mel_std).astype(np.float32)


def frame_loudness_dbfs(audio: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """RMS level in dBFS of each video frame's audio (``len(audio) // samples_per_frame`` values)."""
    n = audio.size // cfg.samples_per_frame
    frames = audio[: n * cfg.samples_per_frame].reshape(n, cfg.samples_per_frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))
