"""The three graphs Triton serves: their names, tensor names and shapes, all derived from the configs.

The ONNX exporter, the parity check and the model-repository generator all read this table, so a
tensor renamed here is renamed everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsync.model import ModelConfig
from preprocessing.config import PreprocessConfig


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple[int, ...]  # per item, without the batch axis
    dtype: str = "FP32"  # Triton's name


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: a Triton model with a dynamic batch axis."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def random_inputs(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {t.name: rng.standard_normal((batch, *t.dims)).astype(np.float32) for t in self.inputs}


def graph_specs(model: ModelConfig, pre: PreprocessConfig) -> dict[str, GraphSpec]:
    """Visual encoder, audio encoder and fusion-classifier, keyed by Triton model name."""
    tokens = (pre.clip_frames, model.d_model)
    visual_tokens, audio_tokens = TensorSpec("VISUAL_TOKENS", tokens), TensorSpec("AUDIO_TOKENS", tokens)
    return {
        "visual_encoder": GraphSpec(
            "visual_encoder", (TensorSpec("MOUTHS", (3, pre.clip_frames, pre.crop_size, pre.crop_size)),), (visual_tokens,)
        ),
        "audio_encoder": GraphSpec("audio_encoder", (TensorSpec("MELS", (1, pre.n_mels, pre.mel_frames)),), (audio_tokens,)),
        "fusion_classifier": GraphSpec(
            "fusion_classifier", (visual_tokens, audio_tokens), (TensorSpec("WINDOW_FAKE_PROBABILITY", (1,)),)
        ),
    }
