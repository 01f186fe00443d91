"""The whole preprocessing path from uploaded bytes to model windows, for every face in the video.

Two decoding passes keep memory bounded: the first finds faces and their lips on a few small frames
(and counts the frames), the second crops mouths — and measures how open the lips are — only on the
frames of the windows that will be scored, so a video never costs more than ``max_windows_per_face``
windows of crops. The first pass also gives the timeline's origin, on which the audio (decoded once,
whole) is placed.

A video with more windows than that is skimmed: its ends are probed for the timeline, the audio is
read, a few keyframes are surveyed for faces, and both passes decode only a few stretches, chosen
where a face and speech are and spread over the video, seeking to each (``skim_spans``). Past the
cap, the face models and the decoding cost the same for any length; only the audio grows with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from . import landmarks
from .audio import frame_loudness_dbfs, log_mel
from .config import DEFAULT_CONFIG, PreprocessConfig
from .decode import (
    MediaError,
    Timeline,
    declared_video_duration,
    decode_audio,
    iter_keyframes,
    iter_span_frames,
    iter_timeline_frames,
    probe_timeline,
    to_rgb,
    to_small,
)
from .faces import Detection, FaceTrack, build_tracks, detect_faces
from .mouth import crop_mouth, mouth_motion
from .vad import load_vad, speech_frames
from .windows import audio_windows, normalise_crops, speech_fraction, window_starts

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


FRAMES_IN_FLIGHT = 8  # frames waiting for the face models: bounds the pixels held (8 x 0.9 MB at 640x480)


class _InBackground:
    """Face-model calls on the worker threads (``landmarks.in_background``) while this thread decodes.

    At most ``limit`` calls wait (each holds a frame); results are handed to ``take(key, result)``
    in the order submitted. Leaving the block early (a refused upload) cancels what has not started.
    """

    def __init__(self, take: Callable[[Any, Any], None], limit: int = FRAMES_IN_FLIGHT) -> None:
        self._take, self._limit = take, limit
        self._waiting: deque[tuple[Any, Future]] = deque()

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> None:
        self._waiting.append((key, landmarks.in_background(fn, *args)))
        self._collect(self._limit)

    def _collect(self, keep: int) -> None:
        while len(self._waiting) > keep:
            key, call = self._waiting.popleft()
            self._take(key, call.result())

    def __enter__(self) -> _InBackground:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        try:
            if error is None:
                self._collect(0)
        finally:
            for _, call in self._waiting:
                call.cancel()


def scan_faces(data: bytes, cfg: PreprocessConfig) -> VideoScan:
    """Pass 1: count the timeline frames, note the first one's time, find faces on every n-th frame."""
    n_frames, origin_s = 0, 0.0

    def counted(frames: Iterator[tuple[int, av.VideoFrame]]) -> Iterator[tuple[int, av.VideoFrame]]:
        nonlocal n_frames, origin_s
        for k, frame in frames:
            n_frames, origin_s = k + 1, frame.time if k == 0 else origin_s
            yield k, frame

    found = _find_faces(counted(iter_timeline_frames(data, cfg)), cfg)
    return VideoScan(n_frames, origin_s, found)


def _find_faces(frames: Iterator[tuple[int, av.VideoFrame]], cfg: PreprocessConfig) -> dict[int, list[Detection]]:
    """The faces on every ``detect_every``-th timeline frame of ``frames`` (keyframes without one left out)."""
    return {k: faces for k, faces in _faces_on(frames, cfg, cfg.faces.detect_every).items() if faces}


def _faces_on(frames: Iterator[tuple[int, av.VideoFrame]], cfg: PreprocessConfig, every: int = 1) -> dict[int, list[Detection]]:
    """The faces on every ``every``-th timeline frame of ``frames`` (an empty list: none), found on the
    worker threads while the next frames decode."""
    found: dict[int, list[Detection]] = {}
    with _InBackground(found.__setitem__) as detections:
        for k, frame in frames:
            if k % every == 0:
                detections.submit(k, detect_faces, *to_small(frame, cfg.faces.detect_width), cfg)
    return found


SURVEY_FRAMES = 48  # keyframes of a long video looked at for faces before its stretches are chosen


def survey_faces(data: bytes, timeline: Timeline, cfg: PreprocessConfig) -> dict[int, bool]:
    """Whether a face (with lips) is on ``SURVEY_FRAMES`` keyframes spread evenly over a long video,
    each decoded alone: where the stretches worth decoding are, for a fixed cost whatever the length."""
    targets = ((np.arange(SURVEY_FRAMES) + 0.5) * timeline.n_frames / SURVEY_FRAMES).astype(int)
    return {k: bool(faces) for k, faces in _faces_on(iter_keyframes(data, cfg, timeline, targets.tolist()), cfg).items()}


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


def _skimmed_timeline(data: bytes, cfg: PreprocessConfig) -> Timeline | None:
    """The timeline of a video with more windows than the cap, when seeking in it is sound; else None
    (it is decoded whole, as every shorter video is)."""
    declared = declared_video_duration(data, cfg)
    cap = cfg.limits.max_windows_per_face
    if declared is None or len(window_starts(int(declared * cfg.timeline.fps), cfg)) <= cap:
        return None
    timeline = probe_timeline(data, cfg)
    return timeline if timeline is not None and len(window_starts(timeline.n_frames, cfg)) > cap else None


def _scan(data: bytes, cfg: PreprocessConfig) -> tuple[VideoScan, AudioFeatures]:
    """Pass 1 and the audio: over the whole video, or over the stretches of a skimmed one."""
    timeline = _skimmed_timeline(data, cfg)
    if timeline is None:
        scan = scan_faces(data, cfg)
        _check_length(scan.n_frames, cfg)
        return scan, read_audio(data, scan.timeline, cfg)
    _check_length(timeline.n_frames, cfg)
    audio = read_audio(data, timeline, cfg)
    spans = tuple(skim_spans(timeline.n_frames, audio.speech, survey_faces(data, timeline, cfg), cfg))
    faces = _find_faces(iter_span_frames(data, cfg, timeline, list(spans)), cfg)
    return VideoScan(timeline.n_frames, timeline.origin_s, faces, spans), audio


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
    """Pass 2's output for one face: a crop per planned frame and, when asked, how open the lips are."""

    crops: np.ndarray  # (len(plan.frames), S, S, 3) uint8
    aperture: np.ndarray | None  # (len(plan.frames),) float32 inner-lip opening / mouth width (NaN: no mesh)


def _crop_mouths(frames: Iterator[tuple[int, av.VideoFrame]], plans: list[CropPlan], n_frames: int,
                 cfg: PreprocessConfig, measure_lips: bool = False) -> list[MouthFrames]:
    """Pass 2: the mouth crops of each plan from ``frames``; with ``measure_lips``, the face mesh on every planned frame too.

    The crop follows the smoothed lips (steady); the aperture comes from each frame's own mesh (the
    lips' movement is the signal, so it is not smoothed), computed on the worker threads.
    """
    row_of = np.full((len(plans), n_frames), -1, dtype=np.int64)
    for i, plan in enumerate(plans):
        row_of[i, plan.frames] = np.arange(len(plan.frames))
    crops = [np.zeros((len(p.frames), cfg.mouth.crop_size, cfg.mouth.crop_size, 3), np.uint8) for p in plans]
    apertures = [np.full(len(p.frames), np.nan, np.float32) for p in plans]

    def take(where: tuple[int, int], points: np.ndarray | None) -> None:
        if points is not None:
            apertures[where[0]][where[1]] = landmarks.lip_aperture(points)

    last: tuple[av.VideoFrame, np.ndarray] | None = None
    with _InBackground(take) as meshes:
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
                if measure_lips:
                    meshes.submit((i, row), landmarks.face_landmarks, last[1], plans[i].boxes[row])
    return [MouthFrames(c, a if measure_lips else None) for c, a in zip(crops, apertures, strict=True)]


def _check_length(n_frames: int, cfg: PreprocessConfig) -> None:
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


def read_audio(data: bytes, timeline: Timeline, cfg: PreprocessConfig) -> AudioFeatures:
    """The upload's audio on the video's clock as log-mel, per-frame speech flags and loudness."""
    audio = decode_audio(data, cfg, timeline.origin_s, timeline.n_frames * cfg.samples_per_frame)
    return AudioFeatures(log_mel(audio, cfg), speech_frames(audio, cfg), frame_loudness_dbfs(audio, cfg).astype(np.float32))


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
    _check_length(n_frames, cfg)
    audio = read_audio(data, scan.timeline, cfg)
    tracks = build_tracks(scan.keyframe_faces, n_frames, cfg)
    crops = None
    if tracks:
        plan = CropPlan.of(tracks[0], np.arange(n_frames), n_frames)
        crops = _crop_mouths(iter_timeline_frames(data, cfg), [plan], n_frames, cfg)[0].crops
    return ClipFeatures(crops, audio.mel, audio.speech, n_frames)


# --- serving: every face, windows chosen within a cost cap -----------------------------------------


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


@dataclass(frozen=True)
class PreparedVideo:
    """Everything the server scores for one upload: the mouth windows of every face and the clip's audio."""

    crops: np.ndarray  # (N, T, S, S, 3) uint8 mouth windows of all faces
    window_track: np.ndarray  # (N,) int32 face track of each window
    window_start: np.ndarray  # (N,) int32 first timeline frame
    window_speech: np.ndarray  # (N,) float32 share of voiced frames
    window_motion: np.ndarray  # (N,) float32 mouth movement (mouth.mouth_motion)
    mel: np.ndarray  # (F, 4 n + 1) float32 the whole clip's log-mel; audio windows are cut from it
    loudness: np.ndarray  # (n,) float32 dBFS per timeline frame
    apertures: tuple[np.ndarray, ...]  # per track, (n,) float32 lip opening per timeline frame (NaN where not measured)
    tracks: tuple[FaceTrack, ...]
    n_frames: int
    sampled: bool  # windows were sampled (the video is longer than the cost cap)

    def info(self, cfg: PreprocessConfig = DEFAULT_CONFIG) -> dict:
        """What the decision needs besides the scores: the faces and the video's length (JSON-able)."""
        fps = cfg.timeline.fps
        return {
            "duration_s": round(self.n_frames / fps, 3),
            "sampled": self.sampled,
            "faces": [
                {"track_id": t.track_id, "box": [round(float(v), 1) for v in np.median(t.boxes, axis=0)],
                 "first_s": round(t.first / fps, 3), "last_s": round((t.last + 1) / fps, 3)}
                for t in self.tracks
            ],
        }

    def window_inputs(self, cfg: PreprocessConfig = DEFAULT_CONFIG) -> tuple[np.ndarray, np.ndarray]:
        """``(mouths, mels)``: every window's model inputs with the audio as uploaded (shift 0)."""
        return normalise_crops(self.crops, cfg), audio_windows(self.mel, self.window_start, cfg)


def _window_frames(starts: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    return np.unique((starts[:, None] + np.arange(cfg.timeline.clip_frames)).reshape(-1))


def _on_timeline(plan: CropPlan, values: np.ndarray, n_frames: int) -> np.ndarray:
    out = np.full(n_frames, np.nan, np.float32)
    out[plan.frames] = values
    return out


def preprocess_video(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> PreparedVideo:
    """What the server runs on an upload: faces tracked, windows chosen, mouths cropped and measured, audio featurised."""
    scan, audio = _scan(data, cfg)
    n_frames = scan.n_frames
    clock = None if scan.spans is None else np.cumsum(scan.decoded())
    tracks = tuple(build_tracks(scan.keyframe_faces, n_frames, cfg, clock))
    on_screen = [face_windows(t, cfg, scan.spans) for t in tracks]
    starts = [sample_windows(s, speech_fraction(audio.speech, s, cfg), cfg) for s in on_screen]
    plans = [CropPlan.of(t, _window_frames(s, cfg), n_frames) for t, s in zip(tracks, starts, strict=True)]
    mouths = _crop_mouths(_frames_of(data, scan, plans, cfg), plans, n_frames, cfg, measure_lips=True)
    in_window = np.arange(cfg.timeline.clip_frames)
    windows = np.zeros((0, cfg.timeline.clip_frames, cfg.mouth.crop_size, cfg.mouth.crop_size, 3), np.uint8)
    windows = np.concatenate([windows] + [
        face.crops[np.searchsorted(plan.frames, face_starts[:, None] + in_window)]
        for plan, face, face_starts in zip(plans, mouths, starts, strict=True)
    ])
    window_start = np.concatenate([np.zeros(0, np.int64), *starts]).astype(np.int32)
    window_track = np.concatenate([np.zeros(0, np.int64)] + [np.full(len(s), t.track_id) for t, s in zip(tracks, starts, strict=True)])
    return PreparedVideo(
        crops=windows, window_track=window_track.astype(np.int32), window_start=window_start,
        window_speech=speech_fraction(audio.speech, window_start, cfg), window_motion=mouth_motion(windows), mel=audio.mel,
        loudness=audio.loudness, apertures=tuple(_on_timeline(p, m.aperture, n_frames) for p, m in zip(plans, mouths, strict=True)),
        tracks=tracks, n_frames=n_frames,
        sampled=scan.spans is not None or any(len(s) > cfg.limits.max_windows_per_face for s in on_screen),
    )


def _frames_of(data: bytes, scan: VideoScan, plans: list[CropPlan], cfg: PreprocessConfig) -> Iterator[tuple[int, av.VideoFrame]]:
    """Pass 2's frames: the whole video again, or for a skimmed one only the runs of planned frames."""
    if scan.spans is None:
        return iter_timeline_frames(data, cfg)
    planned = np.zeros(scan.n_frames + 1, bool)
    for plan in plans:
        planned[plan.frames] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[False], planned])))
    return iter_span_frames(data, cfg, scan.timeline, [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)])


def warm_up(cfg: PreprocessConfig = DEFAULT_CONFIG) -> None:
    """Load the face models and the VAD and run the audio path once, so a first request is not slow."""
    landmarks.warm_up(cfg.faces.detector)
    load_vad()
    silence = np.zeros(cfg.audio.sample_rate, np.float32)
    log_mel(silence, cfg)
    speech_frames(silence, cfg)
