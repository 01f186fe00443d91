"""The training-free lip-sync test on signals whose true alignment is known."""

from __future__ import annotations

import numpy as np

from sync_defense.inference.lipsync import DEFAULT_LIP_SYNC, correlation_curve, lip_sync


def syllables(n: int, seed: int) -> np.ndarray:
    """A mouth-opening-like signal: smoothed random bursts, ~4 per second at 25 fps."""
    rng = np.random.default_rng(seed)
    return np.convolve(rng.random(n) ** 4, np.hanning(7), mode="same")


def test_lips_that_follow_the_speech_are_in_sync() -> None:
    lips = syllables(200, 0)
    result = lip_sync(lips, -60 + 50 * lips / lips.max())
    assert result.verdict == "in_sync" and result.lag_frames == 0 and result.peak > 0.9
    assert result.fake_probability() < 0.2


def test_speech_that_comes_late_is_found_at_its_lag() -> None:
    lips = syllables(260, 1)
    loudness = np.roll(-60 + 50 * lips / lips.max(), 12)  # the audio 12 frames after the mouth
    result = lip_sync(lips, loudness)
    assert result.verdict == "shifted" and result.lag_frames == 12 and result.fake_probability() > 0.9


def test_unrelated_speech_is_no_evidence_and_unmeasured_frames_are_left_out() -> None:
    lips, other = syllables(200, 2), syllables(200, 3)
    assert lip_sync(lips, -60 + 50 * other).verdict == "no_evidence"
    assert lip_sync(np.full(200, np.nan), other).verdict == "no_evidence"
    half = syllables(200, 4)
    gappy = half.copy()
    gappy[::2] = np.nan
    assert lip_sync(gappy, half).frames == 100


def test_the_curve_covers_every_lag_with_enough_frames() -> None:
    lips = syllables(120, 5)
    curve = correlation_curve(lips, lips)
    usable = 120 - DEFAULT_LIP_SYNC.min_frames
    assert set(curve) == set(range(-min(usable, DEFAULT_LIP_SYNC.max_lag_frames), min(usable, DEFAULT_LIP_SYNC.max_lag_frames) + 1))
