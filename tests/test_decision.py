"""The decision rule on hand-made scores: voting windows, localized evidence, faces, offsets, segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsync.calibrate import band_errors, fit_band
from avsync.decision import DecisionConfig, ScoredVideo, analyse, estimate_offset, face_probability, fake_segments, verdict_of

CFG = DecisionConfig()


def scored(tracks: list[list[float]], speech: float = 1.0, motion: float = 5.0) -> tuple[ScoredVideo, dict]:
    """One window per second per face with the given shift-0 probabilities."""
    p = [x for track in tracks for x in track]
    window_track = np.concatenate([np.zeros(0, int)] + [np.full(len(t), i) for i, t in enumerate(tracks)])
    window_start = np.concatenate([np.zeros(0, int)] + [np.arange(len(t)) * 25 for t in tracks])
    n = len(p)
    video = ScoredVideo(window_track, window_start, np.full(n, speech, np.float32), np.full(n, motion, np.float32),
                        np.arange(n), np.zeros(n, int), np.array(p))
    info = {"duration_s": float(max(map(len, tracks), default=0)), "sampled": False,
            "faces": [{"track_id": i, "box": [0, 0, 1, 1], "first_s": 0.0, "last_s": float(len(t))} for i, t in enumerate(tracks)]}
    return video, info


def test_no_face_and_no_speech() -> None:
    assert analyse(*scored([]))["verdict"] == "no_face"
    result = analyse(*scored([[0.9, 0.9]], speech=0.1))
    assert result["verdict"] == "no_speech" and result["fake_probability"] is None and result["confidence"] == 0.0


def test_a_short_manipulated_stretch_is_not_averaged_away() -> None:
    p = [0.02] * 10 + [0.97, 0.95] + [0.02] * 10
    assert np.mean(p) < CFG.real_threshold
    assert face_probability(np.array(p)) == pytest.approx(0.96)
    assert analyse(*scored([p]))["verdict"] == "fake"


def test_one_stray_window_does_not_make_a_real_video_fake() -> None:
    p = [0.02] * 5 + [0.9] + [0.02] * 5
    assert analyse(*scored([p]))["verdict"] == "real"


def test_bands_and_confidence() -> None:
    middle = (CFG.real_threshold + CFG.fake_threshold) / 2
    assert [verdict_of(p) for p in (0.1, middle, 0.99)] == ["real", "uncertain", "fake"]
    result = analyse(*scored([[middle] * 3]))
    assert result["verdict"] == "uncertain" and result["confidence"] == 0.0
    assert analyse(*scored([[1.0, 1.0]]))["confidence"] == 1.0


def test_the_out_of_sync_speaking_face_decides() -> None:
    result = analyse(*scored([[0.02] * 6, [0.95] * 6]))
    assert result["verdict"] == "fake" and result["deciding_track_id"] == 1
    assert [f["fake_probability"] for f in result["faces"]] == [0.02, 0.95]


def test_a_listener_with_a_still_mouth_does_not_make_a_conversation_fake() -> None:
    video, info = scored([[0.02] * 6, [0.95] * 6])
    motion = np.where(video.window_track == 1, 0.1, 5.0).astype(np.float32)
    result = analyse(ScoredVideo(**{**video.__dict__, "window_motion": motion}), info)
    assert result["verdict"] == "real" and [f["speaking"] for f in result["faces"]] == [True, False]


def test_segments_merge_touching_fake_windows() -> None:
    p = np.array([0.1, 0.9, 0.8, 0.1, 0.7])
    segments = fake_segments(0, np.arange(5) * 25, p, CFG)
    assert [(s.start_s, s.end_s) for s in segments] == [(1.0, 3.0), (4.0, 5.0)]
    assert segments[0].fake_probability == pytest.approx(0.85)


def test_offset_is_the_shift_that_looks_most_in_sync() -> None:
    shifts = np.arange(-15, 16)
    rows = np.repeat([0, 1], len(shifts))
    p = np.tile(np.clip(np.abs(shifts - 6) / 5, 0.01, 0.99), 2)
    video = ScoredVideo(np.zeros(2, int), np.array([100, 200]), np.ones(2), np.ones(2), rows, np.tile(shifts, 2), p)
    offset = estimate_offset(video, np.array([0, 1]))
    assert offset.frames == 6 and offset.confidence > 0.5
    assert estimate_offset(video, np.array([], int)) is None


def test_served_thresholds_are_the_committed_calibration() -> None:
    """Re-run ``python -m avsync.calibrate`` after retraining and copy its thresholds into DecisionConfig."""
    calibration = json.loads((Path(__file__).resolve().parent.parent / "checkpoints" / "calibration.json").read_text())
    assert (CFG.real_threshold, CFG.fake_threshold) == (calibration["real_threshold"], calibration["fake_threshold"])
    assert CFG.segment_windows == calibration["rule"]["segment_windows"]


def test_band_fit_prefers_no_errors_then_few_uncertain() -> None:
    scores = np.array([0.05, 0.1, 0.2, 0.45, 0.55, 0.9, 0.95, 0.97])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    lo, hi = fit_band(scores, labels)
    assert band_errors(scores, labels, lo, hi) == 0
    assert 0.2 <= lo < 0.45 and 0.55 < hi <= 0.9  # the two confusable videos are uncertain, nothing else
