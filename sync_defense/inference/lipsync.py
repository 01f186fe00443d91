"""A training-free sync test: does the lips' opening follow the loudness of the speech, and at what lag?

The face mesh's inner-lip aperture (``preprocessing.landmarks.lip_aperture``) rises and falls with
syllables; the audio's frame loudness does too. Their correlation over audio shifts of up to
``max_lag_frames`` either way peaks where mouth and sound line up. It is crude (one number per
frame, no phonetics) but it measures geometry, not pixels, so it holds on faces and cameras the
learned model never saw. No constant below was fitted to the real validation set:

- ``min_correlation`` 0.4: above the 95th percentile of the correlation peak when the lips and the
  speech are unrelated — real moving mouths from the silent training videos against real training
  speech (``python -m benchmarks.lipsync_null``, 400 pairs: p50 0.21, p95 0.36, p99 0.45; 2.2%
  reach 0.4, while 0.3, the first choice, lets ~20% through);
- ``margin`` 0.1: the shifted peak must beat the aligned correlation by more than the ripple of
  a correlation curve of slow signals, else the upload counts as aligned;
- ``in_sync_frames`` 2: the lag tolerance of a 25 fps timeline with sample-and-hold frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LipSyncConfig:
    max_lag_frames: int = 30  # 1.2 s: the audio is slid this far each way
    in_sync_frames: int = 2  # a peak within this many frames of 0 is the upload's own alignment
    min_correlation: float = 0.4  # below this at its peak, the lips may not follow the speech: no evidence
    margin: float = 0.1  # a shifted peak must beat the aligned correlation by this much
    min_frames: int = 50  # frames with measured lips needed at every lag (2 s)
    loudness_floor_dbfs: float = -60.0  # silence below this is all one level (no texture of noise floor)


DEFAULT_LIP_SYNC = LipSyncConfig()


@dataclass(frozen=True)
class LipSync:
    verdict: str  # "in_sync" | "shifted" | "no_evidence"
    lag_frames: int | None  # the best audio shift (> 0: the audio comes after the mouth); None without evidence
    peak: float | None  # correlation at the best shift
    at_zero: float | None  # correlation with the audio as uploaded
    frames: int  # frames with measured lips

    def fake_probability(self, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> float | None:
        """How much better a shifted alignment explains the lips than the uploaded one, mapped to 0..1.

        0.5 at a lead of exactly ``margin``; 0.12 when the upload's own alignment is the best;
        0.98 at a lead of ``margin + 0.2``. ``None`` without evidence.
        """
        if self.verdict == "no_evidence" or self.peak is None or self.at_zero is None:
            return None
        lead = self.peak - self.at_zero if self.lag_frames is not None and abs(self.lag_frames) > cfg.in_sync_frames else 0.0
        return float(1.0 / (1.0 + np.exp(-(lead - cfg.margin) / (cfg.margin / 2))))


def correlation_curve(aperture: np.ndarray, loudness: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> dict[int, float]:
    """Pearson r of ``aperture[t]`` and ``loudness[t + lag]`` for every lag with enough measured frames."""
    level = np.maximum(np.asarray(loudness, np.float64), cfg.loudness_floor_dbfs)
    lips = np.asarray(aperture, np.float64)
    n = min(len(lips), len(level))
    curve = {}
    for lag in range(-cfg.max_lag_frames, cfg.max_lag_frames + 1):
        x = lips[max(0, -lag) : n - max(0, lag)]
        y = level[max(0, lag) : n - max(0, -lag)]
        ok = ~np.isnan(x) & ~np.isnan(y)
        if ok.sum() >= cfg.min_frames and x[ok].std() > 0 and y[ok].std() > 0:
            curve[lag] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return curve


def lip_sync(aperture: np.ndarray, loudness: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> LipSync:
    """The test on one face: ``aperture`` and ``loudness`` per timeline frame (NaN where unmeasured)."""
    frames = int(np.sum(~np.isnan(np.asarray(aperture, np.float64))))
    curve = correlation_curve(aperture, loudness, cfg)
    if 0 not in curve:
        return LipSync("no_evidence", None, None, None, frames)
    lag = max(curve, key=curve.get)
    peak, at_zero = curve[lag], curve[0]
    if peak < cfg.min_correlation:
        return LipSync("no_evidence", None, round(peak, 4), round(at_zero, 4), frames)
    shifted = abs(lag) > cfg.in_sync_frames and peak - at_zero > cfg.margin
    near = shifted or abs(lag) <= cfg.in_sync_frames
    return LipSync("shifted" if shifted else "in_sync", lag if near else 0, round(peak, 4), round(at_zero, 4), frames)
