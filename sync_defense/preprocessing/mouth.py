"""Mouth region of interest, aligned on the lips as lip-reading models align theirs.

The crop is centred on the outer lip ring, ``mouth.size`` mouth widths wide and rotated so the lip
corners are level: head roll and distance to the camera do not change what the model sees.
"""

from __future__ import annotations

import numpy as np

from . import landmarks
from .config import PreprocessConfig


def crop_mouth(frame_rgb: np.ndarray, lips: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """``crop_size`` x ``crop_size`` RGB crop of the lips ``(cx, cy, width, roll)``; outside the frame, edge pixels repeat."""
    cx, cy, width, roll = (float(v) for v in lips)
    return landmarks.crop_aligned(frame_rgb, (cx, cy, cfg.mouth.size * max(width, 1.0), roll), cfg.mouth.crop_size)


def mouth_motion(windows: np.ndarray) -> np.ndarray:
    """Mouth movement per window: mean absolute grey-level change between consecutive frames (0..255).

    ``windows`` is uint8 ``(N, T, S, S, 3)``. A speaking mouth changes from frame to frame, a
    listener's does not; the decision uses it to tell which face is talking.
    """
    grey = windows.astype(np.float32).mean(axis=-1)
    if grey.shape[1] < 2:
        return np.zeros(len(windows), np.float32)
    return np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2, 3)).astype(np.float32)
