"""Ensemble step 3: scored pairs -> the verdict and the full JSON answer (the rule: ``inference.decision``)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from sync_defense import contract as c
from sync_defense.inference.decision import DecisionConfig, ScoredVideo, analyse


def decide(tensors: Mapping[str, np.ndarray], cfg: DecisionConfig) -> dict[str, np.ndarray]:
    """``VERDICT``, ``FAKE_PROBABILITY`` (NaN without evidence), ``CONFIDENCE`` and ``RESULT`` (``contract.Answer`` as JSON)."""
    scored = ScoredVideo(
        window_track=tensors[c.WINDOW_TRACK], window_start=tensors[c.WINDOW_START], window_speech=tensors[c.WINDOW_SPEECH],
        window_motion=tensors[c.WINDOW_MOTION], pair_window=tensors[c.PAIR_WINDOW], pair_shift=tensors[c.PAIR_SHIFT],
        pair_probability=tensors[c.PAIR_FAKE_PROBABILITY],
    )
    answer = analyse(scored, json.loads(np.asarray(tensors[c.VIDEO_INFO]).reshape(-1)[0]), cfg)
    probability = np.nan if answer.fake_probability is None else answer.fake_probability
    return {
        c.VERDICT: np.array([answer.verdict.encode()], dtype=np.object_),
        c.FAKE_PROBABILITY: np.array([probability], np.float32),
        c.CONFIDENCE: np.array([answer.confidence], np.float32),
        c.RESULT: np.array([answer.to_json().encode()], dtype=np.object_),
    }
