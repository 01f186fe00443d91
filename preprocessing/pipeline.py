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
from .faces import Box, detect_faces, fill_track, load_detector
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


@dataclass(frozen=True)
class ClipFeatures:
    """Per-frame features of a whole clip before windowing; training samples windows from these."""

    crops: np.ndarray | None  # (n, S, S, 3) uint8 mouth crops; None when no face was found
    mel: np.ndarray  # (F, 4 n + 1) normalised log-mel on the same clock
    loudness_dbfs: np.ndarray  # (n,) audio level of each frame
    n_frames: int


def _check_length(n_frames: int, max_windows: int | None, cfg: PreprocessConfig) -> None:
    duration_s = n_frames / cfg.fps
    if n_frames < cfg.clip_frames:
        raise MediaError(f"the video lasts {duration_s:.2f} s; at least {cfg.min_duration_s:.2f} s is needed")
    n_windows = len(window_starts(n_frames, cfg))
    if max_windows is not None and n_windows > max_windows:
        longest = (max_windows - 1) * cfg.window_stride_frames / cfg.fps + cfg.clip_seconds
        raise MediaError(
            f"the video lasts {duration_s:.1f} s ({n_windows} windows); this server takes at most "
            f"{max_windows} windows ({longest:.0f} s) per request"
        )


def extract_clip(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG, max_windows: int | None = None) -> ClipFeatures:
    """Decode, find the face, crop the mouth on every frame and compute the clip's log-mel.

    ``max_windows`` refuses (before the costly cropping pass) a video that would need more windows.
    """
    origin_s = first_frame_time(data)
    n_frames, keyframe_faces = _scan_faces(data, cfg)
    _check_length(n_frames, max_windows, cfg)
    audio = decode_audio(data, cfg, origin_s, n_frames * cfg.samples_per_frame)
    track = fill_track(keyframe_faces, n_frames, cfg)
    crops = None if track is None else _crop_mouths(data, mouth_boxes(track, cfg), cfg)
    return ClipFeatures(crops, log_mel(audio, cfg), frame_loudness_dbfs(audio, cfg), n_frames)


def cut_windows(clip: ClipFeatures, cfg: PreprocessConfig = DEFAULT_CONFIG) -> PreprocessedVideo:
    """The served windows of a clip: every ``window_stride_frames``, the last one aligned to the end."""
    starts = window_starts(clip.n_frames, cfg)
    duration_s = clip.n_frames / cfg.fps
    if clip.crops is None:
        empty = np.zeros(0, np.float32)
        return PreprocessedVideo(
            visual=np.zeros((0, 3, cfg.clip_frames, cfg.crop_size, cfg.crop_size), np.float32),
            audio=np.zeros((0, 1, cfg.n_mels, cfg.mel_frames), np.float32),
            window_start_s=empty, window_speech=empty, face_found=False, duration_s=duration_s,
        )
    return PreprocessedVideo(
        visual=visual_windows(normalise_crops(clip.crops, cfg), starts, cfg),
        audio=audio_windows(clip.mel, starts, cfg),
        window_start_s=(starts / cfg.fps).astype(np.float32),
        window_speech=speech_fraction(clip.loudness_dbfs, starts, cfg),
        face_found=True,
        duration_s=duration_s,
    )


def preprocess_video(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> PreprocessedVideo:
    """What the server runs on an upload: the clip's features cut into at most ``max_windows`` windows."""
    return cut_windows(extract_clip(data, cfg, cfg.max_windows), cfg)


def warm_up(cfg: PreprocessConfig = DEFAULT_CONFIG) -> None:
    """Load the face detector and run the audio path once, so a server's first request is not slow."""
    load_detector()
    log_mel(np.zeros(cfg.sample_rate, np.float32), cfg)
