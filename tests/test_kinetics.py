"""Kinetics r2plus1d_18 weights into the base visual encoder, with a state dict of the right shapes
built here by torchvision's construction rules (no download, no torchvision)."""

from __future__ import annotations

import pytest
import torch

from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.model.kinetics import kinetics_key, load_kinetics_weights
from sync_defense.model.network import VisualEncoder


def _bn(prefix: str, n: int) -> dict[str, tuple]:
    return {f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")} | {f"{prefix}.num_batches_tracked": ()}


def r2plus1d_18_shapes() -> dict[str, tuple]:
    """Key -> shape of torchvision's ``r2plus1d_18`` state dict (torchvision/models/video/resnet.py rules)."""
    shapes = {"stem.0.weight": (45, 3, 1, 7, 7), **_bn("stem.1", 45), "stem.3.weight": (64, 45, 3, 1, 1), **_bn("stem.4", 64)}
    inplanes = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            mid = (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)
            shapes |= {f"{p}.conv1.0.0.weight": (mid, inplanes, 1, 3, 3), **_bn(f"{p}.conv1.0.1", mid),
                       f"{p}.conv1.0.3.weight": (planes, mid, 3, 1, 1), **_bn(f"{p}.conv1.1", planes),
                       f"{p}.conv2.0.0.weight": (mid, planes, 1, 3, 3), **_bn(f"{p}.conv2.0.1", mid),
                       f"{p}.conv2.0.3.weight": (planes, mid, 3, 1, 1), **_bn(f"{p}.conv2.1", planes)}
            if block == 0 and layer > 1:
                shapes |= {f"{p}.downsample.0.weight": (planes, inplanes, 1, 1, 1), **_bn(f"{p}.downsample.1", planes)}
            inplanes = planes
    return shapes | {"fc.weight": (400, 512), "fc.bias": (400,)}


def test_every_kinetics_tensor_lands_in_the_base_encoder() -> None:
    torch.manual_seed(0)
    kinetics = {k: torch.randn(s) if s else torch.tensor(7) for k, s in r2plus1d_18_shapes().items()}
    encoder = VisualEncoder(MODEL_CONFIGS["base"])
    untouched = load_kinetics_weights(encoder, kinetics)
    assert untouched == ["project.bias", "project.weight"]  # only our token projection stays new
    ours = encoder.state_dict()
    for key, tensor in kinetics.items():
        if kinetics_key(key) is not None:
            assert torch.equal(ours[kinetics_key(key)], tensor), key


def test_tiny_encoder_refuses_kinetics_weights() -> None:
    kinetics = {k: torch.zeros(s) for k, s in r2plus1d_18_shapes().items()}
    with pytest.raises(ValueError, match="does not fit"):
        load_kinetics_weights(VisualEncoder(MODEL_CONFIGS["tiny"]), kinetics)
