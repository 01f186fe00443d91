"""Mouth region of interest: a square placed inside the face box, resized to the model's crop."""

from __future__ import annotations

import cv2
import numpy as np

from .config import PreprocessConfig


def mouth_boxes(face_track: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Square mouth boxes ``(cx, cy, side)`` for face boxes ``(x, y, w, h)``, one row per frame.

    The size is relative to the face, so the crop covers the same part of the face at any
    resolution or distance from the camera.
    """
    x, y, w, h = face_track.T
    return np.stack([x + 0.5 * w, y + cfg.mouth.center_y * h, cfg.mouth.size * w], axis=1)


def crop_mouth(frame_rgb: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` RGB crop around ``box``; parts outside the frame repeat its edge pixels."""
    cx, cy, side = box
    half = max(side, 2.0) / 2.0
    # An affine warp samples the square directly (sub-pixel placement, edge replication).
    scale = size / (2.0 * half)
    matrix = np.array([[scale, 0.0, (half - cx) * scale], [0.0, scale, (half - cy) * scale]])
    return cv2.warpAffine(
        frame_rgb, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def mouth_motion(windows: np.ndarray) -> np.ndarray:
    """Mouth movement per window: mean absolute grey-level change between consecutive frames (0..255).

    ``windows`` is uint8 ``(N, T, S, S, 3)``. A speaking mouth changes from frame to frame, a
    listener's does not; the decision uses it to tell which face is talking.
    """
    grey = windows.astype(np.float32).mean(axis=-1)
    if grey.shape[1] < 2:
        return np.zeros(len(windows), np.float32)
    return np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2, 3)).astype(np.float32)
