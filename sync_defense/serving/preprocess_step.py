"""Ensemble step 1: the uploaded file -> every face's mouth windows, the clip's log-mel, the pairs to score."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from sync_defense import contract as c
from sync_defense.inference.evidence import face_evidence
from sync_defense.inference.lipsync import lip_sync
from sync_defense.inference.offsets import DEFAULT_SEARCH, OffsetSearchConfig, plan_pairs
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError, PreparedVideo, PreprocessConfig, preprocess_video
from sync_defense.preprocessing.decode import declared_video_duration, wall_clock_budget


def preprocess(upload: np.ndarray, pre: PreprocessConfig = DEFAULT_CONFIG,
               search: OffsetSearchConfig = DEFAULT_SEARCH) -> dict[str, np.ndarray]:
    """``VIDEO`` (one file's bytes) -> the tensors ``score`` and ``decision`` read, keyed by contract name."""
    upload = np.asarray(upload, dtype=object).reshape(-1)
    if upload.size != 1:
        raise MediaError(f"send exactly one video per request (got {upload.size})")
    data = bytes(upload[0])
    with wall_clock_budget(pre.limits.max_wall_s):
        declared_s = declared_video_duration(data, pre)  # refuses oversized uploads and lying headers first
        video = preprocess_video(data, pre)
    pairs = plan_pairs(video.window_start, video.window_track, video.window_speech, video.n_frames,
                       pre.timeline.clip_frames, pre.speech.min_window_fraction, search)
    return {
        c.MOUTH_CROPS: video.crops, c.MEL: video.mel,
        c.WINDOW_TRACK: video.window_track, c.WINDOW_START: video.window_start,
        c.WINDOW_SPEECH: video.window_speech, c.WINDOW_MOTION: video.window_motion,
        c.PAIR_WINDOW: pairs.window, c.PAIR_SHIFT: pairs.shift,
        c.VIDEO_INFO: np.array([json.dumps({**video_info(video, pre), "declared_duration_s": declared_s}).encode()], dtype=np.object_),
    }


def video_info(video: PreparedVideo, pre: PreprocessConfig) -> dict:
    """``PreparedVideo.info`` with each face's lip-sync test and forgery evidence, which need the per-frame
    lips, texture, loudness and phones."""
    info = video.info(pre)
    for face, aperture, texture in zip(info["faces"], video.apertures, video.textures, strict=True):
        lips = lip_sync(aperture, video.loudness)
        face["lip_sync"] = asdict(lips)
        face["forgery_evidence"] = [asdict(e) for e in face_evidence(aperture, texture, video.phones, lips, pre.timeline.fps)]
    return info
