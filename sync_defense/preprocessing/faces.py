"""Face tracks: faces and their lips found on a few frames, joined over time.

MediaPipe's BlazeFace (full range) runs on every ``detect_every``-th frame at ``detect_width``
pixels and the face mesh places the lips of each face it finds (``landmarks.py``). Detections are
associated into tracks by box overlap, the frames between are filled by linear interpolation, and
each track — its face box and its lip geometry — is smoothed so the mouth crop does not jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import landmarks
from .config import PreprocessConfig

Box = np.ndarray  # (4,) float: x, y, w, h in full-frame pixels
Lips = np.ndarray  # (4,) float: lip centre x, y, mouth width (corner to corner) in pixels, roll in radians


@dataclass(frozen=True)
class Detection:
    """One face on one keyframe: its box and where its lips are."""

    box: Box
    lips: Lips


def detect_faces(rgb: np.ndarray, scale: float, cfg: PreprocessConfig) -> list[Detection]:
    """Faces with their lips in a (downscaled) RGB frame, largest first, in full-frame pixels.

    A face the mesh cannot place lips on is dropped: without lips there is no mouth to crop. Faces
    narrower than ``min_face_px`` (full-frame pixels) are reported by the tracker as too small.
    """
    return detect_faces_batch([(rgb, scale)], cfg)[0]


def detect_faces_batch(frames: Sequence[tuple[np.ndarray, float]], cfg: PreprocessConfig) -> list[list[Detection]]:
    """``detect_faces`` of each (frame, scale): one detector call for all frames, one mesh call for all faces found."""
    boxes = landmarks.detect_faces_batch([rgb for rgb, _ in frames], cfg.faces.min_score, cfg.faces.detector, cfg.faces.tiles)
    faces = [(i, box) for i, found in enumerate(boxes) for box in found]
    meshes = landmarks.face_landmarks_batch([(frames[i][0], box) for i, box in faces])
    found: list[list[Detection]] = [[] for _ in frames]
    for (i, box), points in zip(faces, meshes, strict=True):
        if points is not None:
            scale = frames[i][1]
            found[i].append(Detection(box * scale, landmarks.lip_geometry(points) * np.array([scale, scale, scale, 1.0])))
    return found


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through the video: its box and its lips on every frame from ``first`` to ``last``."""

    track_id: int
    first: int  # first timeline frame on screen
    boxes: np.ndarray  # (last - first + 1, 4) interpolated and smoothed
    lips: np.ndarray  # (last - first + 1, 4) lip centre, width, roll: interpolated and smoothed
    detections: int  # keyframes on which the detector found it

    @property
    def last(self) -> int:
        return self.first + len(self.boxes) - 1

    def _held(self, rows: np.ndarray, n_frames: int) -> np.ndarray:
        before = np.repeat(rows[:1], self.first, axis=0)
        after = np.repeat(rows[-1:], max(0, n_frames - self.last - 1), axis=0)
        return np.concatenate([before, rows, after])[:n_frames]

    def held_boxes(self, n_frames: int) -> np.ndarray:
        """``(n_frames, 4)``: the track's boxes with its first and last box held outside its span."""
        return self._held(self.boxes, n_frames)

    def held_lips(self, n_frames: int) -> np.ndarray:
        """``(n_frames, 4)``: the track's lip geometry, held outside its span like the boxes."""
        return self._held(self.lips, n_frames)


def _associate(keyframe_faces: dict[int, list[Detection]], cfg: PreprocessConfig,
               clock: np.ndarray | None = None) -> list[dict[int, Detection]]:
    """Detections on consecutive keyframes joined into tracks, greedily by box overlap (best pairs first).

    A track that has not been matched for ``track_max_gap_frames`` is closed, so a face that
    leaves and comes back starts a new track instead of being interpolated across its absence.
    Gaps are counted on ``clock`` (see ``build_tracks``) when given.
    """
    def missed(track: dict[int, Detection], k: int) -> bool:
        last = max(track)
        gap = k - last if clock is None else clock[k] - clock[last]
        return gap > cfg.faces.track_max_gap_frames

    closed: list[dict[int, Detection]] = []
    open_: list[dict[int, Detection]] = []
    for k in sorted(keyframe_faces):
        closed += [t for t in open_ if missed(t, k)]
        open_ = [t for t in open_ if not missed(t, k)]
        faces = keyframe_faces[k]
        overlaps = ((landmarks.iou(t[max(t)].box, f.box), i, j) for i, t in enumerate(open_) for j, f in enumerate(faces))
        pairs = sorted(overlaps, reverse=True)
        used_tracks: set[int] = set()
        used_faces: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < cfg.faces.track_min_iou:
                break
            if i not in used_tracks and j not in used_faces:
                open_[i][k] = faces[j]
                used_tracks.add(i)
                used_faces.add(j)
        open_ += [{k: f} for j, f in enumerate(faces) if j not in used_faces]
    return closed + open_


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running median along axis 0; the window shrinks symmetrically at the ends."""
    n = len(values)
    reach = [min(width // 2, i, n - 1 - i) for i in range(n)]
    return np.stack([np.median(values[i - r : i + r + 1], axis=0) for i, r in enumerate(reach)])


def _interpolated(detections: dict[int, Detection], n_frames: int, cfg: PreprocessConfig) -> tuple[int, np.ndarray, np.ndarray]:
    """First frame, per-frame boxes and per-frame lips of a track.

    Detections are median-filtered (an outlier is dropped, a real move kept), interpolated
    linearly, held for one detection interval after the last one (the face is assumed on screen
    until the next detector run), then smoothed: positions and roll over ``box_smooth_frames``,
    sizes, which change slowly and are where the models are noisiest, over ``box_size_smooth_frames``.
    """
    keys = np.array(sorted(detections))
    rows = np.stack([np.concatenate([detections[k].box, detections[k].lips]) for k in keys])
    values = running_median(rows, cfg.faces.box_median_keyframes)
    first, last = int(keys[0]), min(n_frames - 1, int(keys[-1]) + cfg.faces.detect_every - 1)
    frames = np.arange(first, last + 1)
    x, y, w, h, lx, ly, lw, roll = (np.interp(frames, keys, values[:, i]) for i in range(8))
    moving = smooth_boxes(np.stack([x + w / 2, y + h / 2, lx, ly, roll], axis=1), cfg.faces.box_smooth_frames)
    sizes = smooth_boxes(np.stack([w, h, lw], axis=1), cfg.faces.box_size_smooth_frames)
    boxes = np.concatenate([moving[:, :2] - sizes[:, :2] / 2, sizes[:, :2]], axis=1)
    lips = np.stack([moving[:, 2], moving[:, 3], sizes[:, 2], moving[:, 4]], axis=1)
    return first, boxes, lips


def build_tracks(keyframe_faces: dict[int, list[Detection]], n_frames: int, cfg: PreprocessConfig,
                 clock: np.ndarray | None = None) -> list[FaceTrack]:
    """Face tracks from the detections on keyframes, at most ``max_faces``, longest on screen first.

    Tracks seen on fewer than ``track_min_detections`` keyframes or for less than
    ``track_min_seconds`` are dropped: a detector false positive rarely repeats in the same place
    for long, a real face does (SyncNet's pipeline drops short tracks for the same reason).
    ``clock`` (a skimmed video: each timeline frame's position among the decoded ones) measures the
    gaps that end a track in decoded frames, so a face is followed from stretch to stretch as across
    a cut, by where it is on screen, and interpolated over the frames between.
    """
    found = [t for t in _associate(keyframe_faces, cfg, clock) if len(t) >= cfg.faces.track_min_detections]
    spans = [(t, *_interpolated(t, n_frames, cfg)) for t in found]
    spans = [s for s in spans if len(s[2]) >= cfg.faces.track_min_seconds * cfg.timeline.fps]
    spans.sort(key=lambda s: (-len(s[2]), s[1]))
    return [FaceTrack(i, first, boxes, lips, len(t)) for i, (t, first, boxes, lips) in enumerate(spans[: cfg.faces.max_faces])]


def smooth_boxes(track: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over time with edge padding (keeps the track's length)."""
    if width <= 1 or len(track) < 2:
        return track
    half = width // 2
    padded = np.pad(track, ((half, half), (0, 0)), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(track.shape[1])], axis=1)
