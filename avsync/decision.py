"""The video-level decision from per-window scores: a documented rule, numpy only.

It runs in the ensemble's last step (``decision``), after the batched fusion-classifier: dynamic
batching mixes windows of different uploads, so a per-video rule cannot live inside that step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.config import DEFAULT_CONFIG

VERDICTS = ("real", "fake", "uncertain", "no_face", "no_speech")


@dataclass(frozen=True)
class DecisionConfig:
    """Thresholds of the rule; ``uncertain`` covers ``0.5 +- uncertain_margin``."""

    uncertain_margin: float = 0.15
    min_speech_fraction: float = DEFAULT_CONFIG.min_speech_fraction


@dataclass(frozen=True)
class Decision:
    verdict: str
    fake_probability: float  # 0.5 (no evidence) for no_face and no_speech
    confidence: float  # |2p - 1|: 0 at chance, 1 when certain
    windows_used: int


def decide(
    window_probabilities: np.ndarray,
    window_speech: np.ndarray,
    face_found: bool,
    cfg: DecisionConfig = DecisionConfig(),
) -> Decision:
    """``no_face`` without a face; ``no_speech`` when no window has enough speech; otherwise the mean
    fake probability of the speech windows, ``fake``/``real`` outside the uncertain band."""
    if not face_found:
        return Decision("no_face", 0.5, 0.0, 0)
    speech = np.asarray(window_speech) >= cfg.min_speech_fraction
    if not speech.any():
        return Decision("no_speech", 0.5, 0.0, 0)
    p = float(np.mean(np.asarray(window_probabilities, dtype=np.float64).reshape(-1)[speech]))
    if p >= 0.5 + cfg.uncertain_margin:
        verdict = "fake"
    elif p <= 0.5 - cfg.uncertain_margin:
        verdict = "real"
    else:
        verdict = "uncertain"
    return Decision(verdict, p, abs(2.0 * p - 1.0), int(speech.sum()))

