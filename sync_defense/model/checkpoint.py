"""Checkpoints carry their model config and the preprocessing they were trained with."""

from __future__ import annotations

from pathlib import Path

import torch

from sync_defense.artifacts import CHECKPOINT
from sync_defense.preprocessing.config import DEFAULT_CONFIG

from .config import MODEL_CONFIGS, ModelConfig
from .network import SyncDetector


def init_model(config: str | ModelConfig, seed: int = 0) -> SyncDetector:
    """A freshly initialised model, identical for the same seed on any machine."""
    cfg = MODEL_CONFIGS[config] if isinstance(config, str) else config
    torch.manual_seed(seed)
    return SyncDetector(cfg).eval()


def save_checkpoint(model: SyncDetector, path: Path, **extra: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model_config": model.config.to_dict(), "preprocess": DEFAULT_CONFIG.model_input(), "state_dict": model.state_dict(), **extra},
        path,
    )


def load_checkpoint(path: Path) -> SyncDetector:
    """The model in eval mode; refuses a checkpoint trained with other preprocessing constants."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    now = DEFAULT_CONFIG.model_input()
    differ = {f"{group}.{k}": (state["preprocess"].get(group, {}).get(k), v)
              for group, values in now.items() for k, v in values.items() if state["preprocess"].get(group, {}).get(k) != v}
    if differ:
        raise ValueError(f"{path} was trained with other preprocessing (trained, now): {differ}")
    model = SyncDetector(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


def served_model(checkpoint: Path | None = None, init: str = "tiny", seed: int = 0) -> SyncDetector:
    """What the server runs: ``checkpoint``, else the committed one, else a fixed-seed untrained ``init``."""
    path = checkpoint or (CHECKPOINT if CHECKPOINT.exists() else None)
    return load_checkpoint(path) if path is not None else init_model(init, seed)
