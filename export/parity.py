"""ONNX Runtime against PyTorch, graph by graph, on random windows and on a real video's windows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from sync_defense.contract import (
    AUDIO_ENCODER,
    AUDIO_TOKENS,
    FUSION_CLASSIFIER,
    MAX_BATCH,
    MELS,
    MOUTHS,
    VISUAL_ENCODER,
    VISUAL_TOKENS,
    ModelSpec,
    graph_specs,
)
from sync_defense.model.network import SyncDetector, graph_modules
from sync_defense.preprocessing.config import DEFAULT_CONFIG

TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityReport:
    graph: str
    inputs: str  # where the inputs came from
    batch: int
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        return f"{self.graph:18s} {self.inputs:8s} batch {self.batch:3d}  max |onnx - torch| = {self.max_abs_diff:.2e}  {verdict}"


def random_inputs(spec: ModelSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal inputs of every tensor of a graph, ``batch`` rows."""
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal((batch, *t.dims)).astype(t.numpy_dtype) for t in spec.inputs}


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(name: str, source: str, module: torch.nn.Module, sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> ParityReport:
    with torch.no_grad():
        expected = module(*(torch.from_numpy(a) for a in feeds.values())).numpy()
    got = sess.run(None, feeds)[0]
    return ParityReport(name, source, len(next(iter(feeds.values()))), float(np.max(np.abs(got - expected))))


def check_parity(model: SyncDetector, paths: dict[str, Path], real: tuple[np.ndarray, np.ndarray] | None = None) -> list[ParityReport]:
    """Reports for each graph on random inputs (batch 1 and the maximum) and, if given, real windows.

    ``real`` is ``(mouths, mels)`` from ``preprocess_video``; the fusion graph then sees the real
    encoder tokens.
    """
    modules = graph_modules(model)
    specs = graph_specs(DEFAULT_CONFIG, model.config.d_model)
    sessions = {name: session(p) for name, p in paths.items()}
    reports = [
        _compare(name, "random", modules[name], sessions[name], random_inputs(specs[name], batch))
        for name in paths
        for batch in (1, MAX_BATCH)
    ]
    if real is not None:
        mouths, mels = real
        with torch.no_grad():
            tokens = (model.visual(torch.from_numpy(mouths)).numpy(), model.audio(torch.from_numpy(mels)).numpy())
        feeds = {
            VISUAL_ENCODER: {MOUTHS: mouths},
            AUDIO_ENCODER: {MELS: mels},
            FUSION_CLASSIFIER: {VISUAL_TOKENS: tokens[0], AUDIO_TOKENS: tokens[1]},
        }
        reports += [_compare(name, "real", modules[name], sessions[name], feeds[name]) for name in paths]
    return reports
