"""Checkpoints carry their model config and the preprocessing they were trained with."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from preprocessing.config import DEFAULT_CONFIG, MODEL_INPUT_FIELDS

from .model import MODEL_CONFIGS, ModelConfig, SyncDetector

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tiny.pt"


def init_model(config: str | ModelConfig, seed: int = 0) -> SyncDetector:
    """A freshly initialised model, identical for the same seed on any machine."""
    cfg = MODEL_CONFIGS[config] if isinstance(config, str) else config
    torch.manual_seed(seed)
    return SyncDetector(cfg).eval()


def save_checkpoint(model: SyncDetector, path: Path, **extra: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model_config": model.config.to_dict(), "preprocess": asdict(DEFAULT_CONFIG), "state_dict": model.state_dict(), **extra},
        path,
    )


def load_checkpoint(path: Path) -> SyncDetector:
    """The model in eval mode; refuses a checkpoint trained with other preprocessing constants."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    differ = {k: (state["preprocess"].get(k), getattr(DEFAULT_CONFIG, k)) for k in MODEL_INPUT_FIELDS
              if state["preprocess"].get(k) != getattr(DEFAULT_CONFIG, k)}
    if differ:
        raise ValueError(f"{path} was trained with other preprocessing (trained, now): {differ}")
    model = SyncDetector(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


def served_model(checkpoint: Path | None = None, init: str = "tiny", seed: int = 0) -> SyncDetector:
    """What the server runs: ``checkpoint``, else the committed one, else a fixed-seed untrained ``init``."""
    path = checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.exists() else None)
    return load_checkpoint(path) if path is not None else init_model(init, seed)
