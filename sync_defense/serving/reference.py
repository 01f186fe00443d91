"""The served pipeline with PyTorch in place of the Triton graphs: the reference the server is compared to.

The same step functions the server runs (``sync_defense.serving``); only the graph runner differs:
here each graph is the PyTorch module it was exported from.
"""

from __future__ import annotations

import asyncio

import numpy as np
import torch

from sync_defense import contract as c
from sync_defense.contract import Answer
from sync_defense.inference.decision import DecisionConfig
from sync_defense.model.network import SyncDetector, graph_modules
from sync_defense.serving.decision_step import decide
from sync_defense.serving.preprocess_step import preprocess
from sync_defense.serving.score_step import GraphRunner, score


def torch_runner(model: SyncDetector) -> GraphRunner:
    """Runs a graph's rows through its PyTorch module (``score``'s ``run_graph``)."""
    modules = graph_modules(model)

    async def run(graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        with torch.no_grad():
            return modules[graph](*(torch.from_numpy(v) for v in inputs.values())).numpy()

    return run


def score_pairs(model: SyncDetector, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """``(K,)`` fake probability of each planned pair of a ``preprocess`` output."""
    return asyncio.run(score(tensors, torch_runner(model)))[c.PAIR_FAKE_PROBABILITY]


def detect(model: SyncDetector, data: bytes, cfg: DecisionConfig) -> Answer:
    """The answer the server would give for ``data``."""
    tensors = preprocess(np.array([data], dtype=object))
    tensors[c.PAIR_FAKE_PROBABILITY] = score_pairs(model, tensors)
    return Answer.from_json(decide(tensors, cfg)[c.RESULT][0])
