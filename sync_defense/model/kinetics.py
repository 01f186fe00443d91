"""Start the ``base`` visual encoder from torchvision's Kinetics-400 ``r2plus1d_18`` weights.

For users who have the file (``r2plus1d_18-91a641e6.pth``); nothing is downloaded here. The
encoder is laid out like torchvision's model, so the mapping is a renaming: ``layerN`` becomes
``stages.N-1``; the stem keeps its indices; the Kinetics classifier (``fc``) is dropped.
Temporal strides differ (ours keep every frame), but strides carry no weights.
"""

from __future__ import annotations

import re

import torch

from .network import VisualEncoder


def kinetics_key(key: str) -> str | None:
    """Our visual-encoder key for a torchvision ``r2plus1d_18`` key (``None`` for the classifier)."""
    if key.startswith("fc."):
        return None
    match = re.match(r"layer(\d)\.(.*)", key)
    return f"stages.{int(match.group(1)) - 1}.{match.group(2)}" if match else key


def load_kinetics_weights(encoder: VisualEncoder, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Copy every backbone tensor into ``encoder``; returns our keys left at their initialisation.

    Raises on a missing backbone key or a shape mismatch (a ``tiny`` encoder, or another model's file).
    """
    ours = encoder.state_dict()
    mapped = {}
    for key, tensor in state_dict.items():
        target = kinetics_key(key)
        if target is None:
            continue
        if target not in ours:
            raise KeyError(f"{key} -> {target}: not in the visual encoder (is this r2plus1d_18 and the base config?)")
        if ours[target].shape != tensor.shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} does not fit {target} {tuple(ours[target].shape)}")
        mapped[target] = tensor
    encoder.load_state_dict(mapped, strict=False)
    return sorted(set(ours) - set(mapped))
