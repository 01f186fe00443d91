"""Training's view of a clip: its main face cropped on every frame, before windows are sampled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DEFAULT_CONFIG, PreprocessConfig
from .crops import CropPlan, crop_mouths
from .decode import iter_timeline_frames
from .faces import build_tracks
from .scan import check_length, read_audio, scan_faces


@dataclass(frozen=True)
class ClipFeatures:
    """Per-frame features of a one-face clip before windowing; training samples windows from these."""

    crops: np.ndarray | None  # (n, S, S, 3) uint8 mouth crops; None when no face was found
    mel: np.ndarray  # (F, 4 n + 1) normalised log-mel on the same clock
    speech: np.ndarray  # (n,) bool per-frame speech flags
    n_frames: int


def extract_clip(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> ClipFeatures:
    """The training view of a clip: the main face (on screen longest) cropped on every frame."""
    scan = scan_faces(data, cfg)
    n_frames = scan.n_frames
    check_length(n_frames, cfg)
    audio = read_audio(data, scan.timeline, cfg)
    tracks = build_tracks(scan.keyframe_faces, n_frames, cfg)
    crops = None
    if tracks:
        plan = CropPlan.of(tracks[0], np.arange(n_frames), n_frames)
        crops = crop_mouths(iter_timeline_frames(data, cfg), [plan], n_frames, cfg)[0].crops
    return ClipFeatures(crops, audio.mel, audio.speech, n_frames)
