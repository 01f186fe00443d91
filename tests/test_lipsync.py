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


def drift(n: int, seed: int) -> np.ndarray:
    """A slow signal (~2.4 s smoothing): lips or loudness that rise and fall with no syllables in them."""
    rng = np.random.default_rng(seed)
    return np.convolve(rng.standard_normal(n + 60), np.hanning(61), mode="valid")[:n]


def test_slow_lips_that_match_any_speech_must_beat_their_own_chance_peak() -> None:
    pairs = [(drift(200, seed), -30 + 5 * drift(200, 1000 + seed)) for seed in range(40)]
    over_floor = [p for p in pairs if max(correlation_curve(*p).values()) >= DEFAULT_LIP_SYNC.min_correlation]
    judged = [lip_sync(*p) for p in over_floor]
    assert len(over_floor) >= 15  # unrelated slow signals pass the fixed floor often
    assert sum(r.verdict != "no_evidence" for r in judged) <= len(over_floor) // 3
    assert all(r.chance_peak is not None for r in judged)
    lips = drift(200, 7)
    assert lip_sync(lips, -30 + 5 * lips).verdict == "in_sync"  # slow lips that do follow the speech still count
