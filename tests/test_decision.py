"""The decision rule on hand-made scores: voting windows, localized evidence, faces, offsets, segments."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sync_defense.artifacts import CALIBRATION
from sync_defense.contract import Answer, ForgeryEvidence
from sync_defense.inference.decision import (
    DecisionConfig,
    ScoredVideo,
    analyse,
    face_probability,
    face_verdict,
    fake_segments,
    verdict_of,
)
from sync_defense.inference.offsets import estimate_offset, on_grid
from sync_defense.offline.metrics import band_errors
from sync_defense.offline.training.calibrate import fit_band
from sync_defense.preprocessing.config import DEFAULT_CONFIG as CFG_PRE

CFG = DecisionConfig.from_calibration()  # the served thresholds


def judge(video: ScoredVideo, info: dict) -> Answer:
    return analyse(video, info, CFG)


SEARCH = np.array([s for s in range(-6, 7) if s != 0])


def scored(tracks: list[list[float]], speech: float = 1.0, motion: float = 5.0, self_test: bool = True,
           lip_sync: dict | None = None) -> tuple[ScoredVideo, dict]:
    """One window per second per face with the given shift-0 probabilities.

    Each face's first window is also searched over +-6 frames. With ``self_test`` the model finds
    a clear best alignment: at shift 0 when the face looks real, at +6 when it looks fake; without,
    it scores every shift alike (what it does on faces unlike its training).
    """
    p = [x for track in tracks for x in track]
    window_track = np.concatenate([np.zeros(0, int)] + [np.full(len(t), i) for i, t in enumerate(tracks)])
    window_start = np.concatenate([np.zeros(0, int)] + [np.arange(len(t)) * 25 for t in tracks])
    n = len(p)
    pair_window, pair_shift, pair_p = [np.arange(n)], [np.zeros(n, int)], [np.array(p, float)]
    for first in np.flatnonzero(np.r_[True, np.diff(window_track) != 0]) if n else []:
        if self_test:
            dip = 6 if p[first] >= 0.5 else None
            pair_p.append(np.where(SEARCH == dip, 0.01, 0.99))
        else:
            pair_p.append(np.full(len(SEARCH), p[first]))
        pair_window.append(np.full(len(SEARCH), first))
        pair_shift.append(SEARCH)
    video = ScoredVideo(window_track, window_start, np.full(n, speech, np.float32), np.full(n, motion, np.float32),
                        np.concatenate(pair_window), np.concatenate(pair_shift), np.concatenate(pair_p))
    faces = [{"track_id": i, "box": [0, 0, 1, 1], "first_s": 0.0, "last_s": float(len(t)), "lip_sync": lip_sync}
             for i, t in enumerate(tracks)]
    return video, {"duration_s": float(max(map(len, tracks), default=0)), "sampled": False, "faces": faces}


def test_no_face_and_no_speech() -> None:
    assert judge(*scored([])).verdict == "no_face"
    result = judge(*scored([[0.9, 0.9]], speech=0.1))
    assert result.verdict == "no_speech" and result.fake_probability is None and result.confidence == 0.0


def test_a_short_manipulated_stretch_is_not_averaged_away() -> None:
    p = [0.02] * 10 + [0.97, 0.95] + [0.02] * 10
    assert np.mean(p) < CFG.real_threshold
    assert face_probability(np.array(p), CFG) == pytest.approx(0.96)
    assert judge(*scored([p])).verdict == "fake"


def test_one_stray_window_does_not_make_a_real_video_fake() -> None:
    p = [0.02] * 5 + [0.9] + [0.02] * 5
    assert judge(*scored([p])).verdict == "real"


def test_bands_and_confidence() -> None:
    middle = (CFG.real_threshold + CFG.fake_threshold) / 2
    assert [verdict_of(p, CFG) for p in (0.1, middle, 0.99)] == ["real", "uncertain", "fake"]
    result = judge(*scored([[middle] * 3]))
    assert result.verdict == "uncertain" and result.confidence == 0.0
    assert [w for w in result.warnings if w.startswith("inconclusive: the model puts the fake probability at")]
    assert not judge(*scored([[0.99] * 3])).warnings  # a decided verdict has nothing to warn about
    assert judge(*scored([[1.0, 1.0]])).confidence == 1.0


def test_the_out_of_sync_speaking_face_decides() -> None:
    result = judge(*scored([[0.02] * 6, [0.95] * 6]))
    assert result.verdict == "fake" and result.deciding_track_id == 1 and result.deciding_face is result.faces[1]
    assert [f.fake_probability for f in result.faces] == [0.02, 0.95]


def test_a_listener_with_a_still_mouth_does_not_make_a_conversation_fake() -> None:
    video, info = scored([[0.02] * 6, [0.95] * 6])
    motion = np.where(video.window_track == 1, 0.1, 5.0).astype(np.float32)
    result = judge(replace(video, window_motion=motion), info)
    assert result.verdict == "real" and [f.speaking for f in result.faces] == [True, False]


def test_a_model_that_fails_its_self_test_does_not_decide() -> None:
    """The model scores every shift alike (a face unlike its training): its 0.97 is reported, not used to accuse."""
    result = judge(*scored([[0.97] * 5], self_test=False))
    assert result.verdict == "uncertain" and result.faces[0].evidence == "none"
    assert result.faces[0].model_probability == pytest.approx(0.97) and result.warnings


def test_the_lip_test_decides_when_the_model_cannot() -> None:
    in_sync = {"verdict": "in_sync", "lag_frames": 1, "peak": 0.6, "at_zero": 0.58, "chance_peak": 0.3, "frames": 150}
    result = judge(*scored([[0.97] * 5], self_test=False, lip_sync=in_sync))
    assert result.verdict == "real" and result.faces[0].evidence == "lip_sync" and result.av_offset_frames == 1
    shifted = {"verdict": "shifted", "lag_frames": 14, "peak": 0.6, "at_zero": 0.1, "chance_peak": 0.3, "frames": 150}
    result = judge(*scored([[0.97] * 5], self_test=False, lip_sync=shifted))
    assert result.verdict == "fake" and result.av_offset_frames == 14 and result.segments == []


def test_a_self_tested_model_that_agrees_with_the_lips_decides_with_its_localized_evidence() -> None:
    shifted = {"verdict": "shifted", "lag_frames": 7, "peak": 0.6, "at_zero": 0.1, "chance_peak": 0.3, "frames": 150}
    result = judge(*scored([[0.97, 0.97, 0.02, 0.02, 0.02]], lip_sync=shifted))
    assert result.faces[0].evidence == "model" and result.av_offset_frames == 6  # the model's own offset
    assert result.verdict == "fake" and [(s.start_s, s.end_s) for s in result.segments] == [(0.0, 2.0)]


def test_the_lips_overrule_a_self_tested_model_that_puts_the_audio_elsewhere() -> None:
    """What the model did on genuine real recordings: a clear best shift at +6 where the lips say 0."""
    in_sync = {"verdict": "in_sync", "lag_frames": 0, "peak": 0.6, "at_zero": 0.6, "chance_peak": 0.3, "frames": 150}
    result = judge(*scored([[0.97] * 5], lip_sync=in_sync))
    assert result.verdict == "real" and result.faces[0].evidence == "lip_sync" and result.av_offset_frames == 0
    assert result.faces[0].model_probability == pytest.approx(0.97) and result.segments == []
    assert result.faces[0].model_offset_frames == 6 and result.faces[0].model_self_test > CFG.model_self_test  # reported, not used


def test_a_face_no_test_can_judge_does_not_decide_over_one_that_was_judged() -> None:
    in_sync = {"verdict": "in_sync", "lag_frames": 1, "peak": 0.6, "at_zero": 0.58, "chance_peak": 0.3, "frames": 150}
    video, info = scored([[0.9] * 5, [0.95] * 5], self_test=False, lip_sync=in_sync)
    info["faces"][1]["lip_sync"] = None
    result = judge(video, info)
    assert [f.evidence for f in result.faces] == ["lip_sync", "none"]
    assert result.verdict == "real" and result.deciding_track_id == 0
    assert any("face(s) 1 could not be judged" in w for w in result.warnings)


IN_SYNC = {"verdict": "in_sync", "lag_frames": 0, "peak": 0.6, "at_zero": 0.6, "chance_peak": 0.3, "frames": 150}


def trace(name: str, fired: bool, spans: list[list[float]] | None = None) -> dict:
    """One forgery trace as the preprocess step writes it into ``VIDEO_INFO``."""
    return {"name": name, "fired": fired, "value": 0.9 if fired else 0.1, "threshold": 0.5, "support": 8,
            "spans": spans or [], "summary": f"{name} measured"}


def with_evidence(info: dict, *traces: dict, face: int = 0) -> dict:
    info["faces"][face]["forgery_evidence"] = list(traces)
    return info


def test_an_in_sync_face_whose_forgery_evidence_fires_is_not_real() -> None:
    """The lips follow the speech (the model and the lip test agree on 0), yet the mouth closes on no M, B or P."""
    video, info = scored([[0.02] * 5], lip_sync=IN_SYNC)
    assert judge(video, info).verdict == "real"  # sync alone would clear it
    missed = trace("phoneme_viseme", True, [[1.2, 1.36], [3.04, 3.2]])
    result = judge(video, with_evidence(info, missed, trace("too_perfect_sync", False), trace("mouth_blur", False)))
    face = result.faces[0]
    assert result.verdict == face.verdict == "uncertain" and result.confidence == 0.0
    assert face.fake_probability == pytest.approx(0.02) and face.evidence == "model"  # the sync numbers are still reported
    assert [e.name for e in face.forgery_evidence if e.fired] == ["phoneme_viseme"]
    warning = next(w for w in result.warnings if w.startswith("forgery evidence on face 0"))
    assert "lips follow the speech" in warning and "phoneme_viseme" in warning and "1.2-1.4 s, 3.0-3.2 s" in warning
    both = judge(video, with_evidence(info, missed, trace("too_perfect_sync", True, [[0.0, 5.0]])))
    assert both.verdict == both.faces[0].verdict == "uncertain" and both.confidence == 0.0  # evidence blocks, never accuses
    assert Answer.from_json(both.to_json()) == both  # the evidence and its times survive the JSON answer
    assert both.faces[0].forgery_evidence[1] == ForgeryEvidence(**trace("too_perfect_sync", True, [[0.0, 5.0]]))


def test_out_of_sync_stays_fake_and_evidence_never_clears_a_face() -> None:
    shifted = {"verdict": "shifted", "lag_frames": 14, "peak": 0.6, "at_zero": 0.1, "chance_peak": 0.3, "frames": 150}
    video, info = scored([[0.97] * 5], self_test=False, lip_sync=shifted)
    result = judge(video, with_evidence(info, trace("phoneme_viseme", False), trace("mouth_blur", False)))
    assert result.verdict == "fake" and result.confidence > 0 and not [w for w in result.warnings if "forgery" in w]
    for sync_p, fired, expected in [(0.02, 0, "real"), (0.02, 1, "uncertain"), (0.02, 3, "uncertain"), (0.7, 2, "uncertain"),
                                    (0.99, 0, "fake"), (0.99, 1, "fake")]:
        traces = [ForgeryEvidence(**trace(f"t{i}", i < fired)) for i in range(3)]
        assert face_verdict(sync_p, True, "lip_sync", traces, CFG) == expected
    assert face_verdict(0.02, False, "lip_sync", [ForgeryEvidence(**trace("t", True))] * 2, CFG) == "uncertain"  # a still mouth
    assert face_verdict(None, True, "none", [], CFG) == "no_speech"


def test_a_listeners_forgery_evidence_does_not_make_a_conversation_suspect() -> None:
    video, info = scored([[0.02] * 6, [0.02] * 6], lip_sync=IN_SYNC)
    motion = np.where(video.window_track == 1, 0.1, 5.0).astype(np.float32)
    result = judge(replace(video, window_motion=motion), with_evidence(info, trace("phoneme_viseme", True), face=1))
    assert result.verdict == "real" and result.deciding_track_id == 0 and result.faces[1].verdict == "uncertain"
    assert not [w for w in result.warnings if "forgery" in w]


def test_segments_merge_touching_fake_windows() -> None:
    p = np.array([0.1, 0.9, 0.8, 0.1, 0.7])
    segments = fake_segments(0, np.arange(5) * 25, p, CFG)
    assert [(s.start_s, s.end_s) for s in segments] == [(1.0, 3.0), (4.0, 5.0)]
    assert segments[0].fake_probability == pytest.approx(0.85)


def test_offset_is_the_shift_that_looks_most_in_sync() -> None:
    shifts = np.arange(-15, 16)
    rows = np.repeat([0, 1], len(shifts))
    p = np.tile(np.clip(np.abs(shifts - 6) / 5, 0.01, 0.99), 2)
    offset = estimate_offset(np.array([0, 1]), rows, np.tile(shifts, 2), p)
    assert offset.frames == 6 and offset.confidence > 0.5
    assert estimate_offset(np.array([], int), rows, np.tile(shifts, 2), p) is None


def test_the_offset_reads_only_the_pairs_the_search_scored() -> None:
    """Unscored pairs (NaN) are not on the curve; the confidence's median is the first round's evenly spaced grid's."""
    shifts = np.arange(-15, 16)
    p = np.clip(np.abs(shifts - 7) / 25, 0.01, 0.99)
    scored = on_grid(shifts) | np.isin(shifts, [5, 7, 9])
    offset = estimate_offset(np.array([0]), np.zeros(len(shifts), int), shifts, np.where(scored, p, np.nan))
    assert offset.frames == 7 and set(offset.curve) == set(shifts[scored])
    assert offset.confidence == pytest.approx(np.median(p[on_grid(shifts)]) - 0.01)


def test_an_offset_on_the_edge_of_the_search_is_unknown() -> None:
    """The best shift at +15 may stand for anything beyond: reported as unknown, not as +15."""
    shifts = np.arange(-15, 16)
    p = np.clip(np.abs(shifts - 20) / 10, 0.01, 0.99)
    offset = estimate_offset(np.array([0]), np.zeros(len(shifts), int), shifts, p)
    assert offset.frames is None and offset.curve[15] == pytest.approx(0.5)


def test_served_thresholds_are_read_from_the_calibration(tmp_path: Path) -> None:
    """The decision step serves what ``python -m sync_defense.offline.training.calibrate`` wrote, nothing kept by hand;
    time and the speech floor come from the preprocessing config only, whatever else the file holds."""
    fitted = {"real_threshold": 0.31, "fake_threshold": 0.77, "rule": {"fps": 30, "min_speech_fraction": 0.9}}
    (tmp_path / "calibration.json").write_text(json.dumps(fitted))
    cfg = DecisionConfig.from_calibration(tmp_path / "calibration.json")
    assert (cfg.real_threshold, cfg.fake_threshold) == (0.31, 0.77)
    assert (cfg.fps, cfg.clip_frames, cfg.min_speech_fraction) == (
        CFG_PRE.timeline.fps, CFG_PRE.timeline.clip_frames, CFG_PRE.speech.min_window_fraction)
    other = replace(CFG_PRE, timeline=replace(CFG_PRE.timeline, clip_frames=50), speech=replace(CFG_PRE.speech, min_window_fraction=0.5))
    served = DecisionConfig.from_calibration(tmp_path / "calibration.json", other)
    assert (served.clip_frames, served.min_speech_fraction) == (50, 0.5)
    (tmp_path / "calibration.json").write_text(json.dumps({"fake_threshold": 0.9}))
    with pytest.raises(ValueError, match="real_threshold missing"):
        DecisionConfig.from_calibration(tmp_path / "calibration.json")
    committed = json.loads(CALIBRATION.read_text())
    assert "rule" not in committed and 0 < committed["real_threshold"] <= committed["fake_threshold"] < 1


def test_band_fit_prefers_no_errors_then_few_uncertain() -> None:
    scores = np.array([0.05, 0.1, 0.2, 0.45, 0.55, 0.9, 0.95, 0.97])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    lo, hi = fit_band(scores, labels)
    assert band_errors(scores, labels, lo, hi) == 0
    assert 0.2 <= lo < 0.45 and 0.55 < hi <= 0.9  # the two confusable videos are uncertain, nothing else
