"""Every parity check of the export: a candidate runtime against its reference, graph by graph, on the
same inputs. ONNX Runtime is checked against PyTorch (``onnx_export``), a TensorRT plan against ONNX
Runtime FP32 (``tensorrt_engines``); both use one report, and one error measure unless a graph's outputs
have units of their own (the face graphs' pixels: ``absolute_error``).

torch is imported only by the PyTorch check: the TensorRT check runs in the serving image, which has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sync_defense import contract as c
from sync_defense.onnx_session import onnx_session

if TYPE_CHECKING:
    from sync_defense.model.network import SyncDetector

Feeds = list[dict[str, np.ndarray]]  # a graph's inputs at each batch the check runs
Windows = tuple[np.ndarray, np.ndarray]  # (mouths, mels) of a real video: PreparedVideo.window_inputs()
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]  # a graph in one runtime: inputs -> outputs
ErrorMeasure = Callable[[list[np.ndarray], list[np.ndarray]], float]  # (candidate's outputs, reference's) -> error
ONNX_TOLERANCE = 1e-4  # ONNX Runtime FP32 against PyTorch FP32


@dataclass(frozen=True)
class ParityReport:
    graph: str
    inputs: str  # where the inputs came from: "random" or "real"
    batch: int
    error: float  # parity_error of the candidate against the reference
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        where = f"{self.graph:18s} {self.inputs:8s} batch {self.batch:3d}"
        return f"{where}  error {self.error:.2e} (tolerance {self.tolerance:.0e})  {verdict}"


def parity_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    """max |got - expected| / max(1, max |expected|), the worst over the outputs: absolute for
    probabilities, relative for large tokens."""
    return max(float(np.max(np.abs(g - e)) / max(1.0, float(np.max(np.abs(e))))) for g, e in zip(got, expected, strict=True))


def absolute_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    """max |got - expected| over the outputs, in their own units: for outputs read as positions (pixels),
    where a relative measure would allow more error the further a point is from the origin."""
    return max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected, strict=True))


def check_parity(graph: str, candidate: Runner, reference: Runner, feeds: Feeds, inputs: str, tolerance: float,
                 error: ErrorMeasure = parity_error) -> list[ParityReport]:
    """One report per batch of ``feeds``: the candidate's outputs against the reference's, by ``error``."""
    return [ParityReport(graph, inputs, len(next(iter(feed.values()))), error(candidate(feed), reference(feed)), tolerance)
            for feed in feeds]


def onnx_runner(path: Path) -> Runner:
    session = onnx_session(path)
    return lambda feed: session.run(None, feed)


def random_inputs(spec: c.ModelSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal inputs of every tensor of a graph, ``batch`` rows."""
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal((batch, *t.dims)).astype(t.numpy_dtype) for t in spec.inputs}


def parity_batches(inputs: dict[str, np.ndarray]) -> Feeds:
    """The real rows (at most MAX_BATCH) and the same rows repeated to MAX_BATCH, the profile's largest shape."""
    rows = min(len(next(iter(inputs.values()))), c.MAX_BATCH)
    real = {name: np.ascontiguousarray(array[:rows]) for name, array in inputs.items()}
    full = {name: np.resize(array, (c.MAX_BATCH, *array.shape[1:])) for name, array in real.items()}
    return [real, full]


def real_feeds(onnx_paths: dict[str, Path], windows: Windows) -> dict[str, Feeds]:
    """Each graph's inputs from a real video's windows (``PreparedVideo.window_inputs``), at that video's
    batch and repeated to MAX_BATCH. The fusion graph is fed ONNX Runtime's FP32 tokens of those windows,
    so each graph is judged on its own."""
    mouths, mels = windows
    visual = onnx_runner(onnx_paths[c.VISUAL_ENCODER])({c.MOUTHS: mouths})[0]
    audio = onnx_runner(onnx_paths[c.AUDIO_ENCODER])({c.MELS: mels})[0]
    inputs = {
        c.VISUAL_ENCODER: {c.MOUTHS: mouths},
        c.AUDIO_ENCODER: {c.MELS: mels},
        c.FUSION_CLASSIFIER: {c.VISUAL_TOKENS: visual, c.AUDIO_TOKENS: audio},
    }
    return {name: parity_batches(feed) for name, feed in inputs.items()}


def onnx_against_torch(model: SyncDetector, paths: dict[str, Path], windows: Windows | None = None) -> list[ParityReport]:
    """ONNX Runtime against the PyTorch ``SyncDetector`` it was exported from: each graph on random inputs
    (batch 1 and the maximum) and, given a real video's ``windows``, on real ones."""
    import torch

    from sync_defense.model.network import graph_modules
    from sync_defense.preprocessing.config import DEFAULT_CONFIG

    def torch_runner(module: torch.nn.Module) -> Runner:
        def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            with torch.no_grad():
                return [module(*(torch.from_numpy(a) for a in feed.values())).numpy()]
        return run

    modules = graph_modules(model)
    specs = c.graph_specs(DEFAULT_CONFIG, model.config.d_model)
    real = real_feeds(paths, windows) if windows is not None else {}
    reports = []
    for name, path in paths.items():
        candidate, reference = onnx_runner(path), torch_runner(modules[name])
        random = [random_inputs(specs[name], batch) for batch in (1, c.MAX_BATCH)]
        reports += check_parity(name, candidate, reference, random, "random", ONNX_TOLERANCE)
        reports += check_parity(name, candidate, reference, real.get(name, []), "real", ONNX_TOLERANCE)
    return reports
