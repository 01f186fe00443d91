"""FaceSync (``inference.facesync``) on signals whose true alignment is known, and where loudness alone cannot see it."""

from __future__ import annotations

import numpy as np

from sync_defense.inference import facesync
from sync_defense.inference.lipsync import lip_sync
from sync_defense.preprocessing.landmarks import LIP_SHAPE
from tests.test_lipsync import syllables

FRAMES = 250


def spectral_speech(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cepstra, loudness, lips)``: speech whose level is unrelated to the lips, and lips whose width
    and opening follow the speech's spectral envelope (cepstral coefficient 2), as rounding does."""
    rng = np.random.default_rng(seed)
    envelope, level = syllables(FRAMES, seed), syllables(FRAMES, seed + 100)
    audio = rng.normal(0, 0.3, (FRAMES, facesync.DEFAULT_FACESYNC.cepstra))
    audio[:, 0] += 10 * level
    audio[:, 2] += 3 * envelope
    lips = rng.normal(1, 0.05, (FRAMES, len(LIP_SHAPE)))  # the lips' heights unrelated to the speech
    lips[:, LIP_SHAPE.index("aperture")] = envelope + rng.normal(0, 0.05, FRAMES)
    lips[:, LIP_SHAPE.index("width")] = 1 - envelope + rng.normal(0, 0.05, FRAMES)
    return audio, -60 + 50 * level / level.max(), lips


def test_cepstra_are_one_row_per_frame_from_the_log_mel() -> None:
    mel = np.random.default_rng(0).normal(size=(80, 4 * 30 + 1)).astype(np.float32)
    out = facesync.cepstra(mel, 31)
    assert out.shape == (31, facesync.DEFAULT_FACESYNC.cepstra)
    assert np.isnan(out[30]).all() and not np.isnan(out[:30]).any()  # the last frame has no full mel frames
    np.testing.assert_allclose(out[0, 0], mel[:, :4].mean() * np.sqrt(80), rtol=1e-5)  # coefficient 0: the level


def test_lips_that_follow_the_spectrum_are_in_sync_where_the_loudness_sees_nothing() -> None:
    audio, loudness, lips = spectral_speech(0)
    assert lip_sync(lips[:, 0], loudness).verdict == "no_evidence"
    result = facesync.face_sync(audio, lips)
    assert result.verdict == "in_sync" and result.lag_frames == 0 and result.peak > 0.8 and result.peak > result.chance_peak + 0.3


def test_speech_that_comes_late_is_found_at_its_lag() -> None:
    audio, _, lips = spectral_speech(1)
    result = facesync.face_sync(np.roll(audio, 12, axis=0), lips)
    assert result.verdict == "shifted" and result.lag_frames == 12 and result.at_zero < 0.5


def test_unrelated_speech_and_unmeasured_lips_give_no_evidence() -> None:
    audio, _, _ = spectral_speech(2)
    _, _, lips = spectral_speech(3)
    assert facesync.face_sync(audio, lips).verdict == "no_evidence"
    gappy = lips.copy()
    gappy[FRAMES // 3 :] = np.nan  # too few measured frames at every lag
    result = facesync.face_sync(audio, gappy)
    assert result.verdict == "no_evidence" and result.peak is None and result.frames == FRAMES // 3
