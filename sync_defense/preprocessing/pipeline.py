"""The whole preprocessing path from uploaded bytes to model windows, for every face in the video.

Two decoding passes keep memory bounded: the first (``scan``) finds faces and their lips on a few
small frames and counts the frames, the second (``crops``) crops mouths — and measures how open the
lips are — only on the frames of the windows that will be scored, so a video never costs more than
``max_windows_per_face`` windows of crops. A video longer than that is skimmed (``skimming``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import landmarks
from .audio import log_mel
from .config import DEFAULT_CONFIG, PreprocessConfig
from .crops import CropPlan, crop_mouths, frames_of, on_timeline, planned, window_frames
from .decode import iter_span_frames
from .faces import FaceTrack, build_tracks
from .mouth import mouth_motion
from .phones import Phones, measured_phones
from .phones import warm_up as warm_up_phones
from .scan import AudioFeatures, VideoScan, check_length, find_faces, read_audio, scan_faces
from .skimming import face_windows, sample_windows, skim_spans, skimmed_timeline, survey_faces
from .vad import load_vad, speech_frames
from .windows import audio_windows, normalise_crops, speech_fraction


def scan_video(data: bytes, cfg: PreprocessConfig) -> tuple[VideoScan, AudioFeatures]:
    """Pass 1 and the audio: over the whole video, or over the stretches of a skimmed one."""
    timeline = skimmed_timeline(data, cfg)
    if timeline is None:
        scan = scan_faces(data, cfg)
        check_length(scan.n_frames, cfg)
        return scan, read_audio(data, scan.timeline, cfg)
    check_length(timeline.n_frames, cfg)
    audio = read_audio(data, timeline, cfg)
    spans = tuple(skim_spans(timeline.n_frames, audio.speech, survey_faces(data, timeline, cfg), cfg))
    faces = find_faces(iter_span_frames(data, cfg, timeline, list(spans)), cfg)
    return VideoScan(timeline.n_frames, timeline.origin_s, faces, spans), audio


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
    lips: tuple[np.ndarray, ...]  # per track, (n, len(landmarks.LIP_SHAPE)) float32 lip shape per timeline frame (NaN: not measured)
    textures: tuple[np.ndarray, ...]  # per track, (n, len(texture.TEXTURE)) float32 the mouth's texture per frame (NaN: not measured)
    phones: Phones  # the speech's phones over the measured frames (``phones.measured_phones``)
    tracks: tuple[FaceTrack, ...]
    n_frames: int
    sampled: bool  # windows were sampled (the video is longer than the cost cap)

    @property
    def apertures(self) -> tuple[np.ndarray, ...]:
        """Per track, (n,) float32 lip opening per timeline frame (NaN where not measured): the lip test's signal."""
        return tuple(shape[:, 0] for shape in self.lips)

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


def preprocess_video(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> PreparedVideo:
    """What the server runs on an upload: faces tracked, windows chosen, mouths cropped and measured, audio featurised."""
    scan, audio = scan_video(data, cfg)
    n_frames = scan.n_frames
    clock = None if scan.spans is None else np.cumsum(scan.decoded())
    tracks = tuple(build_tracks(scan.keyframe_faces, n_frames, cfg, clock))
    on_screen = [face_windows(t, cfg, scan.spans) for t in tracks]
    starts = [sample_windows(s, speech_fraction(audio.speech, s, cfg), cfg) for s in on_screen]
    plans = [CropPlan.of(t, window_frames(s, cfg), n_frames) for t, s in zip(tracks, starts, strict=True)]
    phones = measured_phones(audio.samples, audio.speech, planned((p.frames for p in plans), n_frames), cfg)
    mouths = crop_mouths(frames_of(data, scan, plans, cfg), plans, n_frames, cfg, measure=True)
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
        loudness=audio.loudness, lips=tuple(on_timeline(p, m.lips, n_frames) for p, m in zip(plans, mouths, strict=True)),
        textures=tuple(on_timeline(p, m.texture, n_frames) for p, m in zip(plans, mouths, strict=True)),
        phones=phones.result(),
        tracks=tracks, n_frames=n_frames,
        sampled=scan.spans is not None or any(len(s) > cfg.limits.max_windows_per_face for s in on_screen),
    )


def warm_up(cfg: PreprocessConfig = DEFAULT_CONFIG) -> None:
    """Load the face models, the VAD and the phone decoder and run the audio path once, so a first request is not slow."""
    landmarks.warm_up(cfg.faces.detector)
    load_vad()
    warm_up_phones()
    silence = np.zeros(cfg.audio.sample_rate, np.float32)
    log_mel(silence, cfg)
    speech_frames(silence, cfg)
