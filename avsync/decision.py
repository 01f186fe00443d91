"""From scored pairs to the answer: per-face probabilities, A/V offsets, fake segments, the verdict.

It runs in the ensemble's last step (``decision``), numpy only, after the scoring step has run the
three graphs: dynamic batching mixes windows of different uploads, so a per-video rule cannot
live inside the batched graphs.

The rule, per face: only windows with speech vote (``min_speech_fraction``). A face's fake
probability is the larger of the mean over its voting windows and the mean of its most suspicious
run of ``segment_windows`` consecutive voting windows — a manipulated stretch of a few seconds in
an otherwise real video must not be averaged away. A face is *speaking* when its mouth moves
during speech (``min_mouth_motion``); the video's probability is the largest over speaking faces
(over all faces when none moves its mouth), so a listener whose still mouth does not match the
voice cannot make a real conversation fake. ``fake`` / ``real`` at the calibrated thresholds,
``uncertain`` between them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from preprocessing.config import DEFAULT_CONFIG

VERDICTS = ("real", "fake", "uncertain", "no_face", "no_speech")


@dataclass(frozen=True)
class DecisionConfig:
    """Thresholds of the rule; ``fake_threshold`` / ``real_threshold`` are ``python -m avsync.calibrate``'s
    fit on the held-out split (``checkpoints/calibration.json``, kept equal by a test)."""

    fake_threshold: float = 0.57
    real_threshold: float = 0.5
    segment_windows: int = 2  # the run length of the localized evidence
    segment_threshold: float = 0.5  # windows at least this likely fake form fake segments
    min_speech_fraction: float = DEFAULT_CONFIG.min_speech_fraction
    min_mouth_motion: float = 1.0  # mean grey-level change per frame of a moving mouth (mouth.mouth_motion)
    fps: int = DEFAULT_CONFIG.fps
    clip_frames: int = DEFAULT_CONFIG.clip_frames


DEFAULT_DECISION = DecisionConfig()


@dataclass(frozen=True)
class ScoredVideo:
    """The scoring step's output with the window layout it was computed on (one row per window / pair)."""

    window_track: np.ndarray
    window_start: np.ndarray  # timeline frames
    window_speech: np.ndarray
    window_motion: np.ndarray
    pair_window: np.ndarray
    pair_shift: np.ndarray
    pair_probability: np.ndarray

    def window_probability(self) -> np.ndarray:
        """Each window's fake probability at shift 0 (audio as uploaded)."""
        p = np.full(len(self.window_start), np.nan)
        at_zero = self.pair_shift == 0
        p[self.pair_window[at_zero]] = self.pair_probability[at_zero]
        return p


def face_probability(p: np.ndarray, cfg: DecisionConfig = DEFAULT_DECISION) -> float:
    """A face's fake probability from its voting windows in time order (the rule in the module doc)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    run = min(cfg.segment_windows, len(p))
    strongest = np.convolve(p, np.ones(run) / run, mode="valid").max()
    return float(max(p.mean(), strongest))


def voting_probability(p: np.ndarray, speech: np.ndarray, cfg: DecisionConfig = DEFAULT_DECISION) -> float | None:
    """One face's fake probability from all its windows in time order; ``None`` when none has speech."""
    voting = np.asarray(speech) >= cfg.min_speech_fraction
    return face_probability(np.asarray(p).reshape(-1)[voting], cfg) if voting.any() else None


def verdict_of(p: float, cfg: DecisionConfig = DEFAULT_DECISION) -> str:
    if p >= cfg.fake_threshold:
        return "fake"
    return "real" if p <= cfg.real_threshold else "uncertain"


def confidence_of(p: float, cfg: DecisionConfig = DEFAULT_DECISION) -> float:
    """0 inside the uncertain band, rising to 1 at probability 0 or 1: how far past its threshold."""
    if p >= cfg.fake_threshold:
        return (p - cfg.fake_threshold) / (1.0 - cfg.fake_threshold)
    if p <= cfg.real_threshold:
        return (cfg.real_threshold - p) / cfg.real_threshold
    return 0.0


@dataclass(frozen=True)
class Offset:
    frames: int  # > 0: the audio comes that many frames after the mouth
    confidence: float  # median minus minimum of the mean probability over shifts (SyncNet's measure)


def estimate_offset(scored: ScoredVideo, rows: np.ndarray) -> Offset | None:
    """The audio shift under which the face's searched windows look most in sync."""
    searched = np.isin(scored.pair_window, rows)
    searched_rows = np.unique(scored.pair_window[searched & (scored.pair_shift != 0)])
    if not searched_rows.size:
        return None
    mine = np.isin(scored.pair_window, searched_rows)
    shifts = np.unique(scored.pair_shift[mine])
    curve = np.array([scored.pair_probability[mine & (scored.pair_shift == s)].mean() for s in shifts])
    best = int(np.argmin(curve))
    return Offset(int(shifts[best]), float(np.median(curve) - curve[best]))


@dataclass(frozen=True)
class Segment:
    track_id: int
    start_s: float
    end_s: float
    fake_probability: float


def fake_segments(track_id: int, starts: np.ndarray, p: np.ndarray, cfg: DecisionConfig) -> list[Segment]:
    """Voting windows at or above ``segment_threshold`` merged into stretches where they touch or overlap."""
    segments: list[Segment] = []
    members: list[float] = []
    begin = end = 0
    for start, prob in zip(starts, p, strict=True):
        if prob < cfg.segment_threshold:
            continue
        if members and start <= end:
            end = start + cfg.clip_frames
            members.append(prob)
            continue
        if members:
            segments.append(Segment(track_id, begin / cfg.fps, end / cfg.fps, float(np.mean(members))))
        begin, end, members = start, start + cfg.clip_frames, [prob]
    if members:
        segments.append(Segment(track_id, begin / cfg.fps, end / cfg.fps, float(np.mean(members))))
    return segments


def _face_report(track_id: int, scored: ScoredVideo, p: np.ndarray, cfg: DecisionConfig) -> tuple[dict, list[Segment]]:
    rows = np.flatnonzero(scored.window_track == track_id)
    rows = rows[np.argsort(scored.window_start[rows], kind="stable")]
    voting = rows[scored.window_speech[rows] >= cfg.min_speech_fraction]
    offset = estimate_offset(scored, voting)
    report = {
        "fake_probability": voting_probability(p[rows], scored.window_speech[rows], cfg),
        "av_offset_frames": offset.frames if offset else None,
        "av_offset_confidence": round(offset.confidence, 4) if offset else None,
        "speaking": bool(voting.size and np.median(scored.window_motion[voting]) >= cfg.min_mouth_motion),
        "windows": int(rows.size),
        "voting_windows": int(voting.size),
    }
    return report, fake_segments(track_id, scored.window_start[voting], p[voting], cfg)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def analyse(scored: ScoredVideo, info: dict, cfg: DecisionConfig = DEFAULT_DECISION) -> dict:
    """The whole answer for one video as the client's JSON (``info`` is ``PreparedVideo.info()``)."""
    p = scored.window_probability()
    faces, segments = [], []
    for face in info["faces"]:
        report, found = _face_report(face["track_id"], scored, p, cfg)
        faces.append({**face, **report, "fake_probability": _rounded(report["fake_probability"])})
        segments += found
    voting = [f for f in faces if f["fake_probability"] is not None]
    considered = [f for f in voting if f["speaking"]] or voting
    deciding = max(considered, key=lambda f: f["fake_probability"], default=None)
    if not faces:
        verdict, probability = "no_face", None
    elif deciding is None:
        verdict, probability = "no_speech", None
    else:
        probability = deciding["fake_probability"]
        verdict = verdict_of(probability, cfg)
    offset = deciding["av_offset_frames"] if deciding else None
    return {
        "verdict": verdict,
        "fake_probability": probability,
        "confidence": _rounded(confidence_of(probability, cfg)) if probability is not None else 0.0,
        "av_offset_frames": offset,
        "av_offset_s": None if offset is None else round(offset / cfg.fps, 3),
        "deciding_track_id": deciding["track_id"] if deciding else None,
        "duration_s": info["duration_s"],
        "sampled": info["sampled"],
        "thresholds": {"fake": cfg.fake_threshold, "real": cfg.real_threshold, "speech": cfg.min_speech_fraction},
        "faces": faces,
        "segments": [{**asdict(s), "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                      "fake_probability": _rounded(s.fake_probability)} for s in segments],
        "windows": [
            {"track_id": int(scored.window_track[i]), "start_s": round(scored.window_start[i] / cfg.fps, 3),
             "end_s": round((scored.window_start[i] + cfg.clip_frames) / cfg.fps, 3), "fake_probability": _rounded(p[i]),
             "speech": _rounded(scored.window_speech[i], 3), "mouth_motion": _rounded(scored.window_motion[i], 3)}
            for i in np.lexsort((scored.window_start, scored.window_track))
        ],
    }
