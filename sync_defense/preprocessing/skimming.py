"""Which stretches of a long video are decoded and which windows are scored: the cost cap's policy.

A video with more windows than ``max_windows_per_face`` is skimmed: its ends are probed for the
timeline, a few keyframes are surveyed for faces, and both passes decode only a few stretches, chosen
where a face and speech are and spread over the video. Past the cap, the face models and the decoding
cost the same for any length; only the audio grows with it.
"""

from __future__ import annotations

import numpy as np

from .config import PreprocessConfig
from .decode import Timeline, declared_video_duration, iter_keyframes, probe_timeline
from .faces import FaceTrack
from .scan import Span, faces_on
from .windows import window_starts

SURVEY_FRAMES = 48  # keyframes of a long video looked at for faces before its stretches are chosen


def survey_faces(data: bytes, timeline: Timeline, cfg: PreprocessConfig) -> dict[int, bool]:
    """Whether a face (with lips) is on ``SURVEY_FRAMES`` keyframes spread evenly over a long video,
    each decoded alone: where the stretches worth decoding are, for a fixed cost whatever the length."""
    targets = ((np.arange(SURVEY_FRAMES) + 0.5) * timeline.n_frames / SURVEY_FRAMES).astype(int)
    return {k: bool(faces) for k, faces in faces_on(iter_keyframes(data, cfg, timeline, targets.tolist()), cfg).items()}


def skim_spans(n_frames: int, speech: np.ndarray, faces: dict[int, bool], cfg: PreprocessConfig) -> list[Span]:
    """The stretches of a long video that are decoded: ``max_windows_per_face / skim_stretch_windows``
    runs of ``skim_stretch_windows`` windows, spread evenly (``spread``) — first where the surveyed
    keyframes (``survey_faces``) show a face and there is speech, then a face without speech, then
    speech without a face. They hold exactly the windows a face can have scored."""
    timeline, limits = cfg.timeline, cfg.limits
    length = (limits.skim_stretch_windows - 1) * timeline.window_stride_frames + timeline.clip_frames
    starts = np.arange(0, n_frames - length + 1, length)
    voiced = np.array([speech[s : s + length].mean() for s in starts]) >= cfg.speech.min_window_fraction
    face = np.ones(len(starts), bool)
    if faces:  # held like the timeline's frames: what the last look before a stretch's middle showed
        surveyed = np.array(sorted(faces))
        last_look = np.maximum(np.searchsorted(surveyed, starts + length // 2, side="right") - 1, 0)
        face = np.array([faces[k] for k in surveyed])[last_look]
    rank = 2 * ~face + ~voiced
    chosen = spread(starts, rank, limits.max_windows_per_face // limits.skim_stretch_windows)
    return [(int(s), int(s) + length) for s in chosen]


def skimmed_timeline(data: bytes, cfg: PreprocessConfig) -> Timeline | None:
    """The timeline of a video with more windows than the cap, when seeking in it is sound; else None
    (it is decoded whole, as every shorter video is)."""
    declared = declared_video_duration(data, cfg)
    cap = cfg.limits.max_windows_per_face
    if declared is None or len(window_starts(int(declared * cfg.timeline.fps), cfg)) <= cap:
        return None
    timeline = probe_timeline(data, cfg)
    return timeline if timeline is not None and len(window_starts(timeline.n_frames, cfg)) > cap else None


def face_windows(track: FaceTrack, cfg: PreprocessConfig, spans: tuple[Span, ...] | None = None) -> np.ndarray:
    """Window starts over the part of the video where this face is on screen (and, skimmed, inside a stretch)."""
    starts = []
    for k0, k1 in spans or ((0, track.last + 1),):
        lo, hi = max(k0, track.first), min(k1, track.last + 1)
        starts.append(lo + window_starts(max(0, hi - lo), cfg))
    return np.concatenate(starts)


def spread(starts: np.ndarray, rank: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` of ``starts`` (sorted): rank 0 first, then rank 1, ..., each group spread evenly over the video."""
    if len(starts) <= cap:
        return starts
    chosen, room = [], cap
    for r in np.unique(rank):
        group = np.flatnonzero(rank == r)
        take = min(room, group.size)
        chosen.append(group[np.linspace(0, group.size - 1, take).round().astype(int)])
        room -= take
        if not room:
            break
    return np.sort(starts[np.concatenate(chosen)])


def sample_windows(starts: np.ndarray, speech: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """At most ``max_windows_per_face`` of ``starts``, voiced windows first (``spread``): past the cap,
    the windows scored stop growing with duration."""
    voiced = speech >= cfg.speech.min_window_fraction
    return spread(starts, (~voiced).astype(int), cfg.limits.max_windows_per_face)
