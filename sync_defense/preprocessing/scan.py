"""Pass 1 and the audio: the timeline's length and origin, the faces on every n-th frame, the audio features.

Pass 1 decodes the video once on small frames; the audio (decoded once, whole) is placed on the
timeline it gives, so sample 0 of the audio is the first frame's presentation time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from .audio import frame_loudness_dbfs, log_mel
from .background import InBackground
from .config import PreprocessConfig
from .decode import MediaError, Timeline, decode_audio, iter_timeline_frames, to_small
from .faces import Detection, detect_faces_batch
from .vad import speech_frames

Span = tuple[int, int]  # timeline frames k0 <= k < k1


@dataclass(frozen=True)
class VideoScan:
    """What pass 1 learns: the timeline's length, its origin and the faces on every n-th frame."""

    n_frames: int
    origin_s: float  # presentation time of the first frame: sample 0 of the audio
    keyframe_faces: dict[int, list[Detection]]  # keyframe -> faces found (keyframes without a face left out)
    spans: tuple[Span, ...] | None = None  # the stretches decoded (a skimmed long video); None: all of it

    @property
    def timeline(self) -> Timeline:
        return Timeline(self.origin_s, self.n_frames)

    def decoded(self) -> np.ndarray:
        """``(n_frames,)`` bool: the timeline frames pass 1 decoded."""
        mask = np.ones(self.n_frames, bool) if self.spans is None else np.zeros(self.n_frames, bool)
        for k0, k1 in self.spans or ():
            mask[k0:k1] = True
        return mask


def scan_faces(data: bytes, cfg: PreprocessConfig) -> VideoScan:
    """Pass 1: count the timeline frames, note the first one's time, find faces on every n-th frame."""
    n_frames, origin_s = 0, 0.0

    def counted(frames: Iterator[tuple[int, av.VideoFrame]]) -> Iterator[tuple[int, av.VideoFrame]]:
        nonlocal n_frames, origin_s
        for k, frame in frames:
            n_frames, origin_s = k + 1, frame.time if k == 0 else origin_s
            yield k, frame

    found = find_faces(counted(iter_timeline_frames(data, cfg)), cfg)
    return VideoScan(n_frames, origin_s, found)


def find_faces(frames: Iterator[tuple[int, av.VideoFrame]], cfg: PreprocessConfig) -> dict[int, list[Detection]]:
    """The faces on every ``detect_every``-th timeline frame of ``frames`` (keyframes without one left out)."""
    return {k: faces for k, faces in faces_on(frames, cfg, cfg.faces.detect_every).items() if faces}


def faces_on(frames: Iterator[tuple[int, av.VideoFrame]], cfg: PreprocessConfig, every: int = 1) -> dict[int, list[Detection]]:
    """The faces on every ``every``-th timeline frame of ``frames`` (an empty list: none), found on the
    worker threads while the next frames decode."""
    found: dict[int, list[Detection]] = {}
    with InBackground(lambda small: detect_faces_batch(small, cfg), found.__setitem__) as detections:
        for k, frame in frames:
            if k % every == 0:
                detections.submit(k, to_small(frame, cfg.faces.detect_width))
    return found


def check_length(n_frames: int, cfg: PreprocessConfig) -> None:
    duration_s = n_frames / cfg.timeline.fps
    if n_frames < max(cfg.timeline.clip_frames, round(cfg.limits.min_duration_s * cfg.timeline.fps)):
        raise MediaError(f"the video lasts {duration_s:.2f} s; at least {cfg.limits.min_duration_s:.2f} s is needed")
    if duration_s > cfg.limits.max_duration_s:
        raise MediaError(f"the video lasts {duration_s:.0f} s; this server takes at most {cfg.limits.max_duration_s:.0f} s")


@dataclass(frozen=True)
class AudioFeatures:
    mel: np.ndarray  # (F, 4 n + 1) normalised log-mel on the timeline's clock
    speech: np.ndarray  # (n,) bool: the VAD's verdict for each timeline frame
    loudness: np.ndarray  # (n,) float32 RMS level of each timeline frame's audio, dBFS
    samples: np.ndarray  # (n * samples_per_frame,) float32 the audio itself, for the phones of the measured frames


def read_audio(data: bytes, timeline: Timeline, cfg: PreprocessConfig) -> AudioFeatures:
    """The upload's audio on the video's clock as log-mel, per-frame speech flags and loudness."""
    audio = decode_audio(data, cfg, timeline.origin_s, timeline.n_frames * cfg.samples_per_frame)
    return AudioFeatures(log_mel(audio, cfg), speech_frames(audio, cfg), frame_loudness_dbfs(audio, cfg).astype(np.float32), audio)
