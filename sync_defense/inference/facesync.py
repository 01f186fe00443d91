"""FaceSync (Slaney and Covell, NIPS 2000): does the speech's spectrum predict the lips' shape, and at what lag?

The lip test (``lipsync``) correlates one number per frame on each side: the loudness and the
inner-lip opening. Speech moves the lips in more ways than it moves the loudness: rounding narrows
the mouth, bilabials shut it while the voice is still on, protrusion thickens the visible lips. Here
the audio is the per-frame cepstrum of the clip's own log-mel (``cepstra``: its spectral envelope)
and the lips are the face mesh's ``landmarks.LIP_SHAPE`` (opening, width, heights), and the two are
related by canonical correlation analysis: the linear combination of each side that correlate best.

A mapping fitted to one video always finds *some* correlation, so it is fitted on ``folds - 1``
contiguous blocks of the video and scored on the block it did not see, block by block
(``held_out_correlation``); the held-out correlation is the measure. As in the lip test, it must beat
the same question asked of the upload's own speech reversed in time and rolled (``chance_peak``):
as loud, as rhythmic and as spectrally varied, and unrelated to the lips. No constant below was
fitted to the real validation recordings.

**Measured, not served** (``benchmarks.facesync_choice``; the model card has the table): on the
genuine real-validation faces it finds as many in sync as the lip test (9 of 17) but calls 5 of them
shifted (the lip test 1), finds fewer of the shifted fakes (15 of 40 against 18), and costs 1.5-2.1
CPU-s per face against 0.02. It would accuse genuine speakers, so the decision does not read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dct

from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.landmarks import LIP_SHAPE

from .lipsync import DEFAULT_LIP_SYNC, LipSync


@dataclass(frozen=True)
class FaceSyncConfig:
    """Sizes chosen on the training-role synchronised forgeries (``benchmarks.facesync_choice``): the first
    choice, 13 cepstra against all of ``LIP_SHAPE`` with a ridge of 0.1, found 31 of their 36 mouths in sync
    (the lip test 35); these smaller sides 34. Lags, chance and margin are the lip test's own."""

    cepstra: int = 6  # the level and the coarse spectral envelope
    shape: tuple[str, ...] = ("aperture", "width", "outer_height")  # the ``LIP_SHAPE`` columns read
    folds: int = 5  # contiguous blocks: each is scored by a mapping fitted on the others
    ridge: float = 0.5  # added to each side's standardised covariance: 160 frames cannot fit free weights
    surrogates: int = 16  # reversed speech rolled to this many starts (each costs a curve over all lags)
    min_frames: int = 100  # frames with measured lips at every lag: 20 per block
    max_lag_frames: int = DEFAULT_LIP_SYNC.max_lag_frames
    in_sync_frames: int = DEFAULT_LIP_SYNC.in_sync_frames
    chance_quantile: float = DEFAULT_LIP_SYNC.chance_quantile
    margin: float = DEFAULT_LIP_SYNC.margin
    preprocess: PreprocessConfig = DEFAULT_CONFIG  # the log-mel's frames per timeline frame


DEFAULT_FACESYNC = FaceSyncConfig()


def cepstra(mel: np.ndarray, n_frames: int, cfg: FaceSyncConfig = DEFAULT_FACESYNC) -> np.ndarray:
    """``(n_frames, cepstra)``: each timeline frame's log-mel averaged over its columns (``mels_per_frame``)
    and turned into cepstral coefficients (DCT-II over the bands; coefficient 0 is the level)."""
    m = cfg.preprocess.mels_per_frame
    usable = min(n_frames, mel.shape[1] // m)
    frames = np.asarray(mel[:, : usable * m], np.float64).reshape(mel.shape[0], usable, m).mean(axis=2)
    out = np.full((n_frames, cfg.cepstra), np.nan)
    out[:usable] = dct(frames, type=2, norm="ortho", axis=0)[: cfg.cepstra].T
    return out


def _first_canonical_pair(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the best-correlated linear combinations of the (standardised) columns of ``x`` and ``y``."""
    n = len(x)
    cxx = x.T @ x / n + ridge * np.eye(x.shape[1])
    cyy = y.T @ y / n + ridge * np.eye(y.shape[1])
    wx_white = np.linalg.inv(np.linalg.cholesky(cxx)).T
    wy_white = np.linalg.inv(np.linalg.cholesky(cyy)).T
    u, _, vt = np.linalg.svd(wx_white.T @ (x.T @ y / n) @ wy_white)
    return wx_white @ u[:, 0], wy_white @ vt[0]


def _standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def held_out_correlation(x: np.ndarray, y: np.ndarray, cfg: FaceSyncConfig = DEFAULT_FACESYNC) -> float:
    """Mean over ``folds`` contiguous blocks of the correlation, on that block, of the first canonical pair
    fitted on the other blocks (rows of ``x`` and ``y`` are the same frames, all measured)."""
    edges = np.linspace(0, len(x), cfg.folds + 1).astype(int)
    scores, weights = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        train = np.r_[0:a, b : len(x)]
        x_train, x_test = _standardised(x[train], x[a:b])
        y_train, y_test = _standardised(y[train], y[a:b])
        wx, wy = _first_canonical_pair(x_train, y_train, cfg.ridge)
        u, v = x_test @ wx, y_test @ wy
        if u.std() > 1e-9 and v.std() > 1e-9:
            scores.append(float(np.corrcoef(u, v)[0, 1]))
            weights.append(b - a)
    return float(np.average(scores, weights=weights)) if scores else float("nan")


def correlation_curve(audio: np.ndarray, lips: np.ndarray, cfg: FaceSyncConfig = DEFAULT_FACESYNC) -> dict[int, float]:
    """Held-out canonical correlation of ``lips[t]`` and ``audio[t + lag]`` for every lag with enough frames."""
    n = min(len(audio), len(lips))
    curve = {}
    for lag in range(-cfg.max_lag_frames, cfg.max_lag_frames + 1):
        y = lips[max(0, -lag) : n - max(0, lag)]
        x = audio[max(0, lag) : n - max(0, -lag)]
        ok = ~np.isnan(y).any(axis=1) & ~np.isnan(x).any(axis=1)
        if ok.sum() >= cfg.min_frames:
            curve[lag] = held_out_correlation(x[ok], y[ok], cfg)
    return curve


def chance_peak(audio: np.ndarray, lips: np.ndarray, cfg: FaceSyncConfig = DEFAULT_FACESYNC) -> float:
    """The ``chance_quantile`` of the peaks the lips reach against the speech reversed in time and rolled."""
    reversed_audio = audio[::-1]
    starts = np.unique(np.linspace(0, len(audio), cfg.surrogates, endpoint=False).astype(int))
    peaks = [max(correlation_curve(np.roll(reversed_audio, s, axis=0), lips, cfg).values(), default=-1.0) for s in starts]
    return float(np.quantile(peaks, cfg.chance_quantile))


def face_sync(audio: np.ndarray, shape: np.ndarray, cfg: FaceSyncConfig = DEFAULT_FACESYNC) -> LipSync:
    """The test on one face, answered as the lip test answers (``LipSync``): ``audio`` (n, cepstra) and the
    lip ``shape`` (n, len(LIP_SHAPE)) per timeline frame, NaN where unmeasured."""
    lips = shape[:, [LIP_SHAPE.index(name) for name in cfg.shape]]
    frames = int(np.sum(~np.isnan(lips).any(axis=1)))
    curve = correlation_curve(audio, lips, cfg)
    if 0 not in curve:
        return LipSync("no_evidence", None, None, None, None, frames)
    lag = max(curve, key=curve.get)
    peak, at_zero, chance = curve[lag], curve[0], chance_peak(audio, lips, cfg)
    if peak <= chance:
        return LipSync("no_evidence", None, round(peak, 4), round(at_zero, 4), round(chance, 4), frames)
    shifted = abs(lag) > cfg.in_sync_frames and peak - at_zero > cfg.margin
    near = shifted or abs(lag) <= cfg.in_sync_frames
    return LipSync("shifted" if shifted else "in_sync", lag if near else 0, round(peak, 4), round(at_zero, 4), round(chance, 4), frames)
