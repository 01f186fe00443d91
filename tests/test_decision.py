"""The video-level rule."""

from __future__ import annotations

import numpy as np

from avsync.decision import DecisionConfig, decide


def test_no_face_wins_over_everything() -> None:
    assert decide(np.array([0.99]), np.array([1.0]), face_found=False).verdict == "no_face"


def test_no_speech_when_no_window_has_enough_speech() -> None:
    d = decide(np.array([0.9, 0.9]), np.array([0.1, 0.2]), True)
    assert (d.verdict, d.fake_probability, d.confidence) == ("no_speech", 0.5, 0.0)


def test_only_speech_windows_vote() -> None:
    d = decide(np.array([0.9, 0.1, 0.1]), np.array([1.0, 0.0, 0.0]), True)
    assert d.verdict == "fake" and d.windows_used == 1 and abs(d.fake_probability - 0.9) < 1e-9


def test_bands() -> None:
    cfg = DecisionConfig(uncertain_margin=0.2)
    speech = np.ones(2)
    assert decide(np.array([0.1, 0.2]), speech, True, cfg).verdict == "real"
    assert decide(np.array([0.5, 0.6]), speech, True, cfg).verdict == "uncertain"
    assert decide(np.array([0.8, 0.9]), speech, True, cfg).verdict == "fake"
    assert abs(decide(np.array([0.8, 0.9]), speech, True, cfg).confidence - 0.7) < 1e-9
