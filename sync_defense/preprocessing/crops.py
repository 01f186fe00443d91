"""Pass 2: the mouth crops of every face on the frames of its scored windows, how open its lips are and the mouth's texture."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av
import numpy as np

from . import landmarks
from .background import InBackground
from .config import PreprocessConfig
from .decode import iter_span_frames, iter_timeline_frames, to_rgb
from .faces import FaceTrack
from .mouth import crop_mouth
from .scan import VideoScan
from .texture import TEXTURE, face_crops, texture


@dataclass(frozen=True)
class CropPlan:
    """The timeline frames to crop for one face, with its face box and lips on each."""

    frames: np.ndarray  # sorted, unique
    boxes: np.ndarray  # (len(frames), 4) face boxes: where the face mesh looks for the lips
    lips: np.ndarray  # (len(frames), 4) smoothed lip centre, width and roll: where the crop is cut

    @classmethod
    def of(cls, track: FaceTrack, frames: np.ndarray, n_frames: int) -> CropPlan:
        return cls(frames, track.held_boxes(n_frames)[frames], track.held_lips(n_frames)[frames])


@dataclass(frozen=True)
class MouthFrames:
    """Pass 2's output for one face: a crop per planned frame and, when asked, how open the lips are and the mouth's texture."""

    crops: np.ndarray  # (len(plan.frames), S, S, 3) uint8
    lips: np.ndarray | None  # (len(plan.frames), len(LIP_SHAPE)) float32 (``landmarks.lip_shape``; NaN: no mesh)
    texture: np.ndarray | None  # (len(plan.frames), len(TEXTURE)) float32 (``texture.texture``)

    @property
    def aperture(self) -> np.ndarray | None:
        """(len(plan.frames),) float32 inner-lip opening / mouth width, the lip test's signal (NaN: no mesh)."""
        return None if self.lips is None else self.lips[:, 0]


def crop_mouths(frames: Iterator[tuple[int, av.VideoFrame]], plans: list[CropPlan], n_frames: int,
                 cfg: PreprocessConfig, measure: bool = False) -> list[MouthFrames]:
    """Pass 2: the mouth crops of each plan from ``frames``; with ``measure``, on every planned frame
    also the face mesh's lip shape (``landmarks.lip_shape``) and the mouth's texture against the upper face (``texture``).

    The crop follows the smoothed lips (steady); the lip shape comes from each frame's own mesh (the
    lips' movement is the signal, so it is not smoothed), computed on the worker threads.
    """
    row_of = np.full((len(plans), n_frames), -1, dtype=np.int64)
    for i, plan in enumerate(plans):
        row_of[i, plan.frames] = np.arange(len(plan.frames))
    crops = [np.zeros((len(p.frames), cfg.mouth.crop_size, cfg.mouth.crop_size, 3), np.uint8) for p in plans]
    shapes = [np.full((len(p.frames), len(landmarks.LIP_SHAPE)), np.nan, np.float32) for p in plans]
    textures = [np.full((len(p.frames), len(TEXTURE)), np.nan, np.float32) for p in plans]
    last_crops: list[tuple[int, tuple[np.ndarray, np.ndarray]] | None] = [None] * len(plans)  # each face's last face_crops

    def take(where: tuple[int, int], points: np.ndarray | None) -> None:
        if points is not None:
            shapes[where[0]][where[1]] = landmarks.lip_shape(points)

    last: tuple[av.VideoFrame, np.ndarray] | None = None
    with InBackground(landmarks.face_landmarks_batch, take) as meshes:
        for k, frame in frames:
            if k >= n_frames:
                break
            faces_here = np.flatnonzero(row_of[:, k] >= 0)
            if not faces_here.size:
                continue
            if last is None or last[0] is not frame:  # held frames are converted once
                last = (frame, to_rgb(frame))
            for i in faces_here:
                row = row_of[i, k]
                crops[i][row] = crop_mouth(last[1], plans[i].lips[row], cfg)
                if measure:
                    meshes.submit((i, row), (last[1], plans[i].boxes[row]))
                    pair, before = face_crops(last[1], plans[i].boxes[row], plans[i].lips[row], cfg), last_crops[i]
                    textures[i][row] = texture(*pair, before[1] if before is not None and before[0] == k - 1 else None)
                    last_crops[i] = (k, pair)
    return [MouthFrames(c, s if measure else None, t if measure else None) for c, s, t in zip(crops, shapes, textures, strict=True)]


def window_frames(starts: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    return np.unique((starts[:, None] + np.arange(cfg.timeline.clip_frames)).reshape(-1))


def on_timeline(plan: CropPlan, values: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame ``values`` (one row per planned frame) on the whole timeline, NaN where not planned."""
    out = np.full((n_frames, *values.shape[1:]), np.nan, np.float32)
    out[plan.frames] = values
    return out


def planned(frames: Iterable[np.ndarray], n_frames: int) -> np.ndarray:
    """``(n_frames,)`` bool: the timeline frames in any of ``frames`` (each face's planned frames)."""
    mask = np.zeros(n_frames, bool)
    for face_frames in frames:
        mask[face_frames] = True
    return mask


def spans_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """The runs ``[k0, k1)`` of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def frames_of(data: bytes, scan: VideoScan, plans: list[CropPlan], cfg: PreprocessConfig) -> Iterator[tuple[int, av.VideoFrame]]:
    """Pass 2's frames: the whole video again, or for a skimmed one only the runs of planned frames."""
    if scan.spans is None:
        return iter_timeline_frames(data, cfg)
    return iter_span_frames(data, cfg, scan.timeline, spans_of(planned((p.frames for p in plans), scan.n_frames)))
