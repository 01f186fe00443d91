"""Face boxes for every timeline frame from a detector run on a few downscaled frames.

A Haar cascade on a full 640-px frame costs 55-95 ms here, so it runs on every
``face_detect_every``-th frame at ``face_detect_width`` pixels; the frames between are filled by
linear interpolation and the track is smoothed so the mouth crop does not jump.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .config import PreprocessConfig

Box = np.ndarray  # (4,) float: x, y, w, h in full-frame pixels


@lru_cache(maxsize=1)
def load_detector() -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV Haar cascade missing at {path} (opencv-python 5.x ships none; pin <5)")
    return cascade


def detect_faces(gray_small: np.ndarray, scale: float, cfg: PreprocessConfig) -> list[Box]:
    """Faces in a downscaled grey frame, largest first, as boxes in full-frame pixels."""
    min_side = max(20, int(cfg.face_min_size_frac * gray_small.shape[1]))
    found = load_detector().detectMultiScale(
        cv2.equalizeHist(gray_small), scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [np.asarray(b, dtype=np.float64) * scale for b in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def fill_track(keyframe_boxes: dict[int, Box], n_frames: int, cfg: PreprocessConfig) -> np.ndarray | None:
    """One box per timeline frame from boxes found on some frames; ``None`` when none were found.

    Gaps are linearly interpolated, the ends held, then a centred moving average removes
    detector jitter.
    """
    if not keyframe_boxes:
        return None
    keys = np.array(sorted(keyframe_boxes))
    values = np.stack([keyframe_boxes[k] for k in keys])
    frames = np.arange(n_frames)
    track = np.stack([np.interp(frames, keys, values[:, i]) for i in range(4)], axis=1)
    return smooth_boxes(track, cfg.box_smooth_frames)


def smooth_boxes(track: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time with edge padding (keeps the track's length)."""
    if width <= 1 or len(track) < 2:
        return track
    half = width // 2
    padded = np.pad(track, ((half, half), (0, 0)), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(track.shape[1])], axis=1)
