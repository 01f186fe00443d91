"""The served pipeline with PyTorch in place of the Triton graphs: the reference the server is compared to.

Same preprocessing, same pairs, same decision; only the scoring step runs the model in-process.
"""

from __future__ import annotations

import numpy as np
import torch

from preprocessing import DEFAULT_CONFIG, PreparedVideo, preprocess_video
from preprocessing.windows import audio_windows, normalise_crops, pair_audio_starts

from .decision import DEFAULT_DECISION, DecisionConfig, ScoredVideo, analyse
from .model import SyncDetector


@torch.no_grad()
def score_pairs(model: SyncDetector, video: PreparedVideo, batch: int = DEFAULT_CONFIG.max_batch) -> np.ndarray:
    """``(K,)`` fake probability of each planned pair, each mouth and audio window encoded once."""
    if not len(video.pair_window):
        return np.zeros(0, np.float32)
    starts, audio_row = np.unique(pair_audio_starts(video.window_start, video.pair_window, video.pair_shift), return_inverse=True)
    visual = torch.cat([model.visual(torch.from_numpy(normalise_crops(video.crops[i : i + batch], DEFAULT_CONFIG)))
                        for i in range(0, len(video.crops), batch)])
    audio = torch.cat([model.audio(torch.from_numpy(audio_windows(video.mel, starts[i : i + batch], DEFAULT_CONFIG)))
                       for i in range(0, len(starts), batch)])
    pairs = torch.from_numpy(video.pair_window.astype(np.int64)), torch.from_numpy(audio_row.reshape(-1))
    return model.fusion(visual[pairs[0]], audio[pairs[1]]).numpy().reshape(-1)


def scored(video: PreparedVideo, probabilities: np.ndarray) -> ScoredVideo:
    return ScoredVideo(video.window_track, video.window_start, video.window_speech, video.window_motion,
                       video.pair_window, video.pair_shift, probabilities)


def detect(model: SyncDetector, data: bytes, cfg: DecisionConfig = DEFAULT_DECISION) -> dict:
    """The answer the server would give for ``data`` (``analyse``'s dict)."""
    video = preprocess_video(data)
    return analyse(scored(video, score_pairs(model, video)), video.info(), cfg)
