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
voice cannot make a real conversation fake; when no face moves its mouth (a still photo with a
voice) the verdict is ``uncertain``, with a warning, since lip sync cannot be judged. ``fake`` / ``real`` at the calibrated thresholds,
``uncertain`` between them.

Each face's probability comes from the learned model only where it passes SyncNet's self-test and
agrees with the training-free lip test on the alignment, else from the lip test, else from nothing
(``_face_report``); faces that neither test could judge decide the video only when no face could be
judged.

Sync never clears a face on its own (``face_verdict``): a lip-sync forgery re-makes the mouth so that it
*does* follow the voice. A face is ``real`` only when sync says so **and** none of its forgery evidence
(``evidence``: missed lip closures, too-perfect sync, mouth blur, colour and flicker) fires; with
evidence firing it is ``uncertain``; out-of-sync faces stay ``fake``. The evidence does not accuse on its
own: its thresholds are not fitted on forgeries yet, and on the real validation recordings two traces
fired together on a genuine face (a 16-px mouth: blurry against the upper face, its closures unseen).
The video's verdict is its most suspicious speaking face's, and ``warnings`` names the evidence that
fired, with its times, wherever it overrules the lips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sync_defense.artifacts import CALIBRATION
from sync_defense.contract import Answer, FaceReport, ForgeryEvidence, LipSyncReport, SegmentReport, Thresholds, WindowReport
from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig

from .lipsync import DEFAULT_LIP_SYNC, LipSync, LipSyncConfig
from .offsets import DEFAULT_SEARCH, Offset, OffsetSearchConfig, estimate_offset

TRUNCATION_TOLERANCE_S = 0.5  # decoded shorter than declared by more (and by 5 %): the file is cut
SEVERITY = {"real": 0, "uncertain": 1, "fake": 2}  # which face's verdict speaks for the video


@dataclass(frozen=True)
class DecisionConfig:
    """The rule's settings. The thresholds are the only calibrated numbers: the served ones come from the
    calibration artifact (``from_calibration``). Time (fps, window length) and the speech floor come from
    the preprocessing the scores were made with, never from a second copy of them."""

    fake_threshold: float
    real_threshold: float
    segment_windows: int = 2  # the run length of the localized evidence
    segment_threshold: float = 0.5  # windows at least this likely fake form fake segments
    min_mouth_motion: float = 1.0  # mean grey-level change per frame of a moving mouth (mouth.mouth_motion)
    search: OffsetSearchConfig = DEFAULT_SEARCH
    # SyncNet's self-referenced test on the learned model: its mean fake probability at the best audio
    # shift must lie this far below its median over all shifts, or the model cannot tell aligned from
    # shifted audio on this video (a face or camera unlike its training) and its probability is not used.
    model_self_test: float = 0.1
    lip_sync: LipSyncConfig = DEFAULT_LIP_SYNC
    preprocess: PreprocessConfig = DEFAULT_CONFIG

    @property
    def fps(self) -> int:
        return self.preprocess.timeline.fps

    @property
    def clip_frames(self) -> int:
        return self.preprocess.timeline.clip_frames

    @property
    def min_speech_fraction(self) -> float:
        """Windows with less speech do not vote: the floor preprocessing chose windows and offsets with."""
        return self.preprocess.speech.min_window_fraction

    @classmethod
    def from_calibration(cls, path: Path = CALIBRATION, preprocess: PreprocessConfig = DEFAULT_CONFIG) -> DecisionConfig:
        """The thresholds that ``python -m sync_defense.offline.training.calibrate`` fitted and wrote, for
        scores made with ``preprocess``."""
        fitted = json.loads(Path(path).read_text())
        missing = [k for k in CALIBRATED if k not in fitted]
        if missing:
            raise ValueError(f"{path} is not a calibration file: {', '.join(missing)} missing")
        return cls(**{k: float(fitted[k]) for k in CALIBRATED}, preprocess=preprocess)


CALIBRATED = ("fake_threshold", "real_threshold")  # what a calibration file sets; everything else is code


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


def face_probability(p: np.ndarray, cfg: DecisionConfig) -> float:
    """A face's fake probability from its voting windows in time order (the rule in the module doc)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    run = min(cfg.segment_windows, len(p))
    strongest = np.convolve(p, np.ones(run) / run, mode="valid").max()
    return float(max(p.mean(), strongest))


def voting_probability(p: np.ndarray, speech: np.ndarray, cfg: DecisionConfig) -> float | None:
    """One face's fake probability from all its windows in time order; ``None`` when none has speech."""
    voting = np.asarray(speech) >= cfg.min_speech_fraction
    return face_probability(np.asarray(p).reshape(-1)[voting], cfg) if voting.any() else None


def verdict_of(p: float, cfg: DecisionConfig) -> str:
    if p >= cfg.fake_threshold:
        return "fake"
    return "real" if p <= cfg.real_threshold else "uncertain"


def confidence_of(p: float, cfg: DecisionConfig) -> float:
    """0 inside the uncertain band, rising to 1 at probability 0 or 1: how far past its threshold."""
    if p >= cfg.fake_threshold:
        return (p - cfg.fake_threshold) / (1.0 - cfg.fake_threshold)
    if p <= cfg.real_threshold:
        return (cfg.real_threshold - p) / cfg.real_threshold
    return 0.0


def fake_segments(track_id: int, starts: np.ndarray, p: np.ndarray, cfg: DecisionConfig) -> list[SegmentReport]:
    """Voting windows at or above ``segment_threshold`` merged into stretches where they touch or overlap."""
    runs: list[tuple[int, int, list[float]]] = []
    for start, prob in zip(starts, p, strict=True):
        if prob < cfg.segment_threshold:
            continue
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], start + cfg.clip_frames, [*runs[-1][2], prob])
        else:
            runs.append((start, start + cfg.clip_frames, [prob]))
    return [SegmentReport(track_id, round(begin / cfg.fps, 3), round(end / cfg.fps, 3), _rounded(np.mean(members)))
            for begin, end, members in runs]


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _model_is_trusted(offset: Offset | None, lips: LipSync | None, cfg: DecisionConfig) -> bool:
    """The learned model decides a face only where it passes its self-test and, when the lip test has
    evidence, puts the audio where the lips do (within ``in_sync_frames``).

    The two tests are independent: the model reads pixels and was trained on renderings and re-timed
    mouths, the lip test reads the face mesh's geometry. On faces unlike its training the model can
    pass its self-test at a wrong alignment (on the genuine real recordings it placed the audio 4-13
    frames off where the lips say 0-2); where the two disagree on the alignment, the geometry wins.
    """
    if offset is None or offset.confidence < cfg.model_self_test:
        return False
    if lips is None or lips.verdict == "no_evidence":
        return True
    return offset.frames is not None and lips.lag_frames is not None and abs(offset.frames - lips.lag_frames) <= cfg.lip_sync.in_sync_frames


def face_verdict(probability: float | None, speaking: bool, evidence: str, forgery: list[ForgeryEvidence], cfg: DecisionConfig) -> str:
    """One face's verdict: the sync tests' (``verdict_of``), which forgery evidence can only make worse.

    ``real`` needs sync **and** no trace fired; a fired trace makes an in-sync face ``uncertain`` (the
    traces block a clearance, they do not accuse: module doc). A face whose sync cannot be judged (no
    test could, or its mouth does not move while the voice speaks) is ``uncertain`` whatever its traces say.
    """
    if probability is None:
        return "no_speech"
    if not speaking or evidence == "none":
        return "uncertain"
    sync = verdict_of(probability, cfg)
    return "uncertain" if sync == "real" and any(e.fired for e in forgery) else sync


def _face_report(face: dict, scored: ScoredVideo, p: np.ndarray, cfg: DecisionConfig) -> tuple[FaceReport, list[SegmentReport]]:
    """One face: the model's evidence where it is trusted (``_model_is_trusted``), else the lip-sync
    test's, else none.

    Without either, the model's probability is reported but the verdict is ``uncertain``: the
    detector does not accuse when it does not know. The forgery evidence measured in the preprocess
    step (``evidence.face_evidence``) is reported and enters the face's verdict (``face_verdict``).
    """
    track_id = face["track_id"]
    lips = LipSync(**face["lip_sync"]) if face.get("lip_sync") else None
    rows = np.flatnonzero(scored.window_track == track_id)
    rows = rows[np.argsort(scored.window_start[rows], kind="stable")]
    voting = rows[scored.window_speech[rows] >= cfg.min_speech_fraction]
    offset = estimate_offset(voting, scored.pair_window, scored.pair_shift, scored.pair_probability, cfg.search)
    model_p = voting_probability(p[rows], scored.window_speech[rows], cfg)
    lip_p = lips.fake_probability(cfg.lip_sync) if lips else None
    forgery = [ForgeryEvidence(**e) for e in face.get("forgery_evidence", [])]
    speaking = bool(voting.size and np.median(scored.window_motion[voting]) >= cfg.min_mouth_motion)
    if model_p is None:
        evidence, probability, frames = "none", None, None
    elif _model_is_trusted(offset, lips, cfg):
        evidence, probability, frames = "model", model_p, offset.frames
    elif lip_p is not None:
        evidence, probability, frames = "lip_sync", lip_p, lips.lag_frames
    else:
        evidence, probability, frames = "none", model_p, None
    report = FaceReport(
        **{k: v for k, v in face.items() if k not in ("lip_sync", "forgery_evidence")},
        fake_probability=_rounded(probability),
        av_offset_frames=frames,
        av_offset_confidence=_rounded(offset.confidence) if offset and evidence == "model" else None,
        speaking=speaking,
        windows=int(rows.size),
        voting_windows=int(voting.size),
        model_probability=_rounded(model_p),
        model_offset_frames=offset.frames if offset else None,
        model_self_test=_rounded(offset.confidence) if offset else None,
        lip_sync=LipSyncReport(**face["lip_sync"]) if lips else None,
        evidence=evidence,
        forgery_evidence=forgery,
        verdict=face_verdict(_rounded(probability), speaking, evidence, forgery, cfg),
    )
    segments = fake_segments(track_id, scored.window_start[voting], p[voting], cfg) if evidence == "model" else []
    return report, segments


def analyse(scored: ScoredVideo, info: dict, cfg: DecisionConfig) -> Answer:
    """The whole answer for one video (``info`` is ``PreparedVideo.info()``)."""
    p = scored.window_probability()
    faces: list[FaceReport] = []
    segments: list[SegmentReport] = []
    for face in info["faces"]:
        report, found = _face_report(face, scored, p, cfg)
        faces.append(report)
        segments += found
    voting = [f for f in faces if f.fake_probability is not None]
    considered = [f for f in voting if f.speaking] or voting
    judged = [f for f in considered if f.evidence != "none"]  # a face no test could judge decides only if none could be
    deciding = max(judged or considered, key=lambda f: (SEVERITY[f.verdict], f.fake_probability), default=None)
    if not faces:
        verdict, probability = "no_face", None
    elif deciding is None:
        verdict, probability = "no_speech", None
    else:
        verdict, probability = deciding.verdict, deciding.fake_probability
    offset = deciding.av_offset_frames if deciding else None
    order = np.lexsort((scored.window_start, scored.window_track))
    return Answer(
        verdict=verdict,
        fake_probability=probability,
        # how far past its threshold the probability is: a real or fake verdict is always the probability's own
        confidence=_rounded(confidence_of(probability, cfg)) if verdict in ("real", "fake") else 0.0,
        av_offset_frames=offset,
        av_offset_s=None if offset is None else round(offset / cfg.fps, 3),
        deciding_track_id=deciding.track_id if deciding else None,
        duration_s=info["duration_s"],
        sampled=info["sampled"],
        thresholds=Thresholds(fake=cfg.fake_threshold, real=cfg.real_threshold, speech=cfg.min_speech_fraction),
        faces=faces,
        segments=segments,
        windows=[
            WindowReport(track_id=int(scored.window_track[i]), start_s=round(scored.window_start[i] / cfg.fps, 3),
                         end_s=round((scored.window_start[i] + cfg.clip_frames) / cfg.fps, 3), fake_probability=_rounded(p[i]),
                         speech=_rounded(scored.window_speech[i], 3), mouth_motion=_rounded(scored.window_motion[i], 3))
            for i in order
        ],
        warnings=answer_warnings(info, faces, deciding, cfg),
    )


def answer_warnings(info: dict, faces: list[FaceReport], deciding: FaceReport | None, cfg: DecisionConfig) -> list[str]:
    """What limits this answer, in words the user can act on (``Answer.warnings``)."""
    warnings = []
    p = deciding.fake_probability if deciding is not None else None
    if p is not None and deciding.speaking and deciding.evidence != "none" and verdict_of(p, cfg) == "uncertain":
        warnings.append(f"inconclusive: the {_test_name(deciding)} puts the fake "
                        f"probability at {p:.2f}, between the thresholds for real ({cfg.real_threshold:.2f}) and fake "
                        f"({cfg.fake_threshold:.2f}); the verdict is uncertain")
    declared, decoded = info.get("declared_duration_s"), info["duration_s"]
    if declared and declared - decoded > max(TRUNCATION_TOLERANCE_S, 0.05 * declared):
        warnings.append(f"truncated: only {decoded:.1f} s of the {declared:.1f} s the file declares could be decoded; "
                        "the answer covers those seconds only")
    if deciding is not None and deciding.speaking and deciding.evidence == "none":
        warnings.append("the model cannot tell aligned from shifted audio on this face (it fails its self-test) and "
                        "the lips do not follow the speech clearly enough to judge: the verdict is uncertain")
    if deciding is not None and not deciding.speaking:
        warnings.append("no face on screen moves its mouth while the voice speaks (a still picture or a voice from off "
                        "screen): lip sync cannot be judged, so the verdict is uncertain")
    unjudged = [f.track_id for f in faces if f.speaking and f.evidence == "none" and f.fake_probability is not None]
    if deciding is not None and deciding.evidence != "none" and unjudged:
        warnings.append(f"the sync of face(s) {', '.join(map(str, unjudged))} could not be judged by either test; "
                        f"the verdict rests on face {deciding.track_id}")
    return warnings + [forgery_warning(f, cfg) for f in faces if f.speaking and any(e.fired for e in f.forgery_evidence)]


def _test_name(face: FaceReport) -> str:
    """The sync test that gave a judged face its probability, in words."""
    return "lip-sync test" if face.evidence == "lip_sync" else "model"


def _times(spans: list[list[float]], shown: int = 3) -> str:
    text = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans[:shown])
    return text + (f" and {len(spans) - shown} more" if len(spans) > shown else "")


def forgery_warning(face: FaceReport, cfg: DecisionConfig) -> str:
    """Which forgery evidence fired on a speaking face, and when; where the lips say real, that it overrules them."""
    fired = "; ".join(f"{e.name} ({e.summary}) at {_times(e.spans)}" for e in face.forgery_evidence if e.fired)
    p = face.fake_probability
    if face.evidence != "none" and p is not None and verdict_of(p, cfg) == "real":
        return (f"forgery evidence on face {face.track_id} although its lips follow the speech (the {_test_name(face)} puts the fake "
                f"probability at {p:.2f}): {fired}. Sync alone does not clear a face: it is {face.verdict}")
    return f"forgery evidence on face {face.track_id}: {fired}; the face is {face.verdict}"
