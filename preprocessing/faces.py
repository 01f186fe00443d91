"""Face tracks: a detector run on a few downscaled frames, detections joined over time.

A Haar cascade on a full 640-px frame costs 55-95 ms here, so it runs on every
``face_detect_every``-th frame at ``face_detect_width`` pixels. Detections are associated into
tracks by overlap, the frames between are filled by linear interpolation and each track is
smoothed so the mouth crop does not jump.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    min_side = max(20, int(cfg.faces.min_size_frac * gray_small.shape[1]))
    found = load_detector().detectMultiScale(
        cv2.equalizeHist(gray_small), scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [np.asarray(b, dtype=np.float64) * scale for b in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through the video: a box for every frame from ``first`` to ``last``."""

    track_id: int
    first: int  # first timeline frame on screen
    boxes: np.ndarray  # (last - first + 1, 4) interpolated and smoothed
    detections: int  # keyframes on which the detector found it

    @property
    def last(self) -> int:
        return self.first + len(self.boxes) - 1

    def held_boxes(self, n_frames: int) -> np.ndarray:
        """``(n_frames, 4)``: the track's boxes with its first and last box held outside its span."""
        before = np.repeat(self.boxes[:1], self.first, axis=0)
        after = np.repeat(self.boxes[-1:], max(0, n_frames - self.last - 1), axis=0)
        return np.concatenate([before, self.boxes, after])[:n_frames]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def _associate(keyframe_faces: dict[int, list[Box]], cfg: PreprocessConfig) -> list[dict[int, Box]]:
    """Detections on consecutive keyframes joined into tracks, greedily by overlap (best pairs first).

    A track that has not been matched for ``track_max_gap_frames`` is closed, so a face that
    leaves and comes back starts a new track instead of being interpolated across its absence.
    """
    closed: list[dict[int, Box]] = []
    open_: list[dict[int, Box]] = []
    for k in sorted(keyframe_faces):
        closed += [t for t in open_ if k - max(t) > cfg.faces.track_max_gap_frames]
        open_ = [t for t in open_ if k - max(t) <= cfg.faces.track_max_gap_frames]
        pairs = sorted(
            ((iou(t[max(t)], box), i, j) for i, t in enumerate(open_) for j, box in enumerate(keyframe_faces[k])),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < cfg.faces.track_min_iou:
                break
            if i not in used_tracks and j not in used_boxes:
                open_[i][k] = keyframe_faces[k][j]
                used_tracks.add(i)
                used_boxes.add(j)
        open_ += [{k: box} for j, box in enumerate(keyframe_faces[k]) if j not in used_boxes]
    return closed + open_


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running median along axis 0; the window shrinks symmetrically at the ends."""
    n = len(values)
    reach = [min(width // 2, i, n - 1 - i) for i in range(n)]
    return np.stack([np.median(values[i - r : i + r + 1], axis=0) for i, r in enumerate(reach)])


def _interpolated(detections: dict[int, Box], n_frames: int, cfg: PreprocessConfig) -> tuple[int, np.ndarray]:
    """First frame and per-frame boxes of a track.

    Detections are median-filtered (an outlier box is dropped, a real move kept), interpolated
    linearly, held for one detection interval after the last one (the face is assumed on screen
    until the next detector run), then smoothed: the centre over ``box_smooth_frames``, the size,
    which changes slowly and is where the detector is noisiest, over ``box_size_smooth_frames``.
    """
    keys = np.array(sorted(detections))
    values = running_median(np.stack([detections[k] for k in keys]), cfg.faces.box_median_keyframes)
    first, last = int(keys[0]), min(n_frames - 1, int(keys[-1]) + cfg.faces.detect_every - 1)
    frames = np.arange(first, last + 1)
    x, y, w, h = (np.interp(frames, keys, values[:, i]) for i in range(4))
    centre = smooth_boxes(np.stack([x + w / 2, y + h / 2], axis=1), cfg.faces.box_smooth_frames)
    size = smooth_boxes(np.stack([w, h], axis=1), cfg.faces.box_size_smooth_frames)
    return first, np.concatenate([centre - size / 2, size], axis=1)


def build_tracks(keyframe_faces: dict[int, list[Box]], n_frames: int, cfg: PreprocessConfig) -> list[FaceTrack]:
    """Face tracks from the detections on keyframes, at most ``max_faces``, longest on screen first.

    Tracks seen on fewer than ``track_min_detections`` keyframes or for less than
    ``track_min_seconds`` are dropped: a detector false positive rarely repeats in the same place
    for long, a real face does (SyncNet's pipeline drops short tracks for the same reason).
    """
    found = [t for t in _associate(keyframe_faces, cfg) if len(t) >= cfg.faces.track_min_detections]
    spans = [(t, *_interpolated(t, n_frames, cfg)) for t in found]
    spans = [(t, first, boxes) for t, first, boxes in spans if len(boxes) >= cfg.faces.track_min_seconds * cfg.timeline.fps]
    spans.sort(key=lambda s: (-len(s[2]), s[1]))
    return [FaceTrack(i, first, boxes, len(t)) for i, (t, first, boxes) in enumerate(spans[: cfg.faces.max_faces])]


def smooth_boxes(track: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time with edge padding (keeps the track's length)."""
    if width <= 1 or len(track) < 2:
        return track
    half = width // 2
    padded = np.pad(track, ((half, half), (0, 0)), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(track.shape[1])], axis=1)
