"""The whole preprocessing path from uploaded bytes to model windows.

Two decoding passes keep memory at a few mouth crops per frame instead of every full frame:
the first finds faces on a few small frames (and counts the frames), the second crops mouths
along the smoothed face track.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from .audio import frame_loudness_dbfs, log_mel
from .config import DEFAULT_CONFIG, PreprocessConfig
from .decode import MediaError, decode_audio, first_frame_time, iter_timeline_frames
from .faces import Box, detect_faces, fill_track
from .mouth import crop_mouth, mouth_boxes
from .windows import audio_windows, normalise_crops, speech_fraction, visual_windows, window_starts


@dataclass(frozen=True)
class PreprocessedVideo:
    """Model inputs for one upload, one row per window, plus what the decision needs besides them."""

    visual: np.ndarray  # (N, 3, T, H, W) float32; N = 0 when no face was found
    audio: np.ndarray  # (N, 1, F, T_mel) float32
    window_start_s: np.ndarray  # (N,) float32
    window_speech: np.ndarray  # (N,) float32: share of the window's frames with speech
    face_found: bool
    duration_s: float


def _detection_frame(frame: av.VideoFrame, cfg: PreprocessConfig) -> tuple[np.ndarray, float]:
    """Grey frame at most ``face_detect_width`` wide, and the factor back to full-frame pixels."""
    width = min(cfg.face_detect_width, frame.width)
    scale = frame.width / width
    height = max(2, int(round(frame.height / scale)))
    return frame.reformat(width=width, height=height, format="gray").to_ndarray(), scale


def _scan_faces(data: bytes, cfg: PreprocessConfig) -> tuple[int, dict[int, Box]]:
    """Pass 1: the number of timeline frames and the primary face on every n-th frame."""
    n_frames = 0
    found: dict[int, Box] = {}
    for k, frame in iter_timeline_frames(data, cfg):
        n_frames = k + 1
        if k % cfg.face_detect_every == 0:
            gray, scale = _detection_frame(frame, cfg)
            faces = detect_faces(gray, scale, cfg)
            if faces:
                found[k] = faces[0]
    return n_frames, found


def _crop_mouths(data: bytes, boxes: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Pass 2: a uint8 ``(n, S, S, 3)`` mouth crop for every timeline frame."""
    crops = np.zeros((len(boxes), cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8)
    last: tuple[av.VideoFrame, np.ndarray] | None = None
    for k, frame in iter_timeline_frames(data, cfg):
        if k >= len(boxes):
            break
        if last is None or last[0] is not frame:  # held frames are converted once
            last = (frame, frame.to_ndarray(format="rgb24"))
        crops[k] = crop_mouth(last[1], boxes[k], cfg.crop_size)
    return crops


def preprocess_video(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> PreprocessedVideo:
    """Decode, find the face, crop the mouth, compute the log-mel and cut aligned windows."""
    origin_s = first_frame_time(data)
    n_frames, keyframe_faces = _scan_faces(data, cfg)
    duration_s = n_frames / cfg.fps
    if n_frames < cfg.clip_frames:
        raise MediaError(f"the video lasts {duration_s:.2f} s; at least {cfg.min_duration_s:.2f} s is needed")
    starts = window_starts(n_frames, cfg)
    if len(starts) > cfg.max_windows:
        longest = (cfg.max_windows - 1) * cfg.window_stride_frames / cfg.fps + cfg.clip_seconds
        raise MediaError(
            f"the video lasts {duration_s:.1f} s ({len(starts)} windows); this server takes at most "
            f"{cfg.max_windows} windows ({longest:.0f} s) per request"
        )
    audio = decode_audio(data, cfg, origin_s, n_frames * cfg.samples_per_frame)
    speech = speech_fraction(frame_loudness_dbfs(audio, cfg), starts, cfg)
    start_s = (starts / cfg.fps).astype(np.float32)
    track = fill_track(keyframe_faces, n_frames, cfg)
    if track is None:
        empty = np.zeros(0, np.float32)
        return PreprocessedVideo(
            visual=np.zeros((0, 3, cfg.clip_frames, cfg.crop_size, cfg.crop_size), np.float32),
            audio=np.zeros((0, 1, cfg.n_mels, cfg.mel_frames), np.float32),
            window_start_s=empty, window_speech=empty, face_found=False, duration_s=duration_s,
        )
    crops = normalise_crops(_crop_mouths(data, mouth_boxes(track, cfg), cfg), cfg)
    return PreprocessedVideo(
        visual=visual_windows(crops, starts, cfg),
        audio=audio_windows(log_mel(audio, cfg), starts, cfg),
        window_start_s=start_s,
        window_speech=speech,
        face_found=True,
        duration_s=duration_s,
    )
