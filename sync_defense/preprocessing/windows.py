"""Cut the aligned streams into model windows: T video frames and exactly their audio."""

from __future__ import annotations

import numpy as np

from .config import PreprocessConfig


def window_starts(n_frames: int, cfg: PreprocessConfig) -> np.ndarray:
    """First timeline frame of each window.

    Windows start every ``window_stride_frames``; when the stride leaves a tail, one more window
    is aligned to the end so that every frame of the video is inside a window.
    """
    if n_frames < cfg.timeline.clip_frames:
        return np.zeros(0, dtype=np.int64)
    last = n_frames - cfg.timeline.clip_frames
    starts = list(range(0, last + 1, cfg.timeline.window_stride_frames))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


def normalise_crops(crops: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 ``(..., T, H, W, 3)`` crops to the float32 ``(..., 3, T, H, W)`` layout the visual encoder reads."""
    pixels = crops.astype(np.float32) / 255.0
    return np.moveaxis((pixels - cfg.mouth.pixel_mean) / cfg.mouth.pixel_std, -1, -4)


def audio_windows(mel: np.ndarray, starts: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """``(N, 1, F, T_mel)``: the log-mel frames that cover exactly each window's video frames."""
    m = cfg.mels_per_frame
    return np.stack([mel[None, :, s * m : s * m + cfg.mel_frames] for s in starts]).astype(np.float32)


def speech_fraction(speech: np.ndarray, starts: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Share of each window's video frames that the VAD marked as speech."""
    return np.array([speech[s : s + cfg.timeline.clip_frames].mean() for s in starts], dtype=np.float32).reshape(-1)
