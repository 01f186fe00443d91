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
- ``chance_quantile`` 0.95: the same question asked of this upload itself (``chance_peak``). Some
  lips correlate with any speech (a slow, smooth opening; speech in long blocks), so a fixed floor
  lets them through by chance. The upload's speech, reversed in time and rolled, keeps its own
  rhythm and levels but has nothing to do with the lips; the peak must beat 95% of those peaks.
  The conventional 5% level, not a fitted one;
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
    chance_quantile: float = 0.95  # the peak must beat this share of the peaks against surrogate speech
    surrogates: int = 64  # reversed speech rolled to this many evenly spaced starts
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
    chance_peak: float | None  # the peak that ``chance_quantile`` of the surrogate speech stays below
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


def _levels(loudness: np.ndarray, cfg: LipSyncConfig) -> np.ndarray:
    return np.fmax(np.asarray(loudness, np.float64), cfg.loudness_floor_dbfs)


def correlation_curves(aperture: np.ndarray, levels: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> np.ndarray:
    """Pearson r of ``aperture[t]`` and ``levels[s, t + lag]`` for each row ``s`` of loudness series
    and each lag ``-max_lag_frames .. max_lag_frames`` (columns); NaN where a lag lacks measured frames."""
    lips = np.asarray(aperture, np.float64)
    levels = np.atleast_2d(levels)
    n = min(len(lips), levels.shape[1])
    lags = range(-cfg.max_lag_frames, cfg.max_lag_frames + 1)
    curves = np.full((len(levels), len(lags)), np.nan)
    for column, lag in enumerate(lags):
        x = lips[max(0, -lag) : n - max(0, lag)]
        ys = levels[:, max(0, lag) : n - max(0, -lag)]
        ok = ~np.isnan(x)
        if ok.sum() < cfg.min_frames:
            continue
        xc = x[ok] - x[ok].mean()
        yc = ys[:, ok] - ys[:, ok].mean(axis=1, keepdims=True)
        scale = np.linalg.norm(xc) * np.linalg.norm(yc, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            curves[:, column] = np.where(scale > 0, yc @ xc / scale, np.nan)
    return curves


def correlation_curve(aperture: np.ndarray, loudness: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> dict[int, float]:
    """Pearson r of ``aperture[t]`` and ``loudness[t + lag]`` for every lag with enough measured frames."""
    curve = correlation_curves(aperture, _levels(loudness, cfg)[None], cfg)[0]
    return {lag - cfg.max_lag_frames: float(r) for lag, r in enumerate(curve) if not np.isnan(r)}


def chance_peak(aperture: np.ndarray, loudness: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> float:
    """The ``chance_quantile`` of the peaks the lips reach against their own speech reversed in time
    and rolled to ``surrogates`` starts: as loud, as rhythmic, and unrelated to the mouth."""
    reversed_level = _levels(loudness, cfg)[::-1]
    starts = np.unique(np.linspace(0, len(reversed_level), cfg.surrogates, endpoint=False).astype(int))
    peaks = np.nanmax(correlation_curves(aperture, np.stack([np.roll(reversed_level, s) for s in starts]), cfg), axis=1, initial=-1.0)
    return float(np.quantile(peaks, cfg.chance_quantile))


def lip_sync(aperture: np.ndarray, loudness: np.ndarray, cfg: LipSyncConfig = DEFAULT_LIP_SYNC) -> LipSync:
    """The test on one face: ``aperture`` and ``loudness`` per timeline frame (NaN where unmeasured)."""
    frames = int(np.sum(~np.isnan(np.asarray(aperture, np.float64))))
    curve = correlation_curve(aperture, loudness, cfg)
    if 0 not in curve:
        return LipSync("no_evidence", None, None, None, None, frames)
    lag = max(curve, key=curve.get)
    peak, at_zero, chance = curve[lag], curve[0], chance_peak(aperture, loudness, cfg)
    if peak < cfg.min_correlation or peak <= chance:
        return LipSync("no_evidence", None, round(peak, 4), round(at_zero, 4), round(chance, 4), frames)
    shifted = abs(lag) > cfg.in_sync_frames and peak - at_zero > cfg.margin
    near = shifted or abs(lag) <= cfg.in_sync_frames
    return LipSync("shifted" if shifted else "in_sync", lag if near else 0, round(peak, 4), round(at_zero, 4), round(chance, 4), frames)
