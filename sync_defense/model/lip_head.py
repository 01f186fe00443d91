"""The lip-geometry head: the inner-lip opening read from the mouth crop the pipeline already makes.

The lip test (``inference.lipsync``) needs one number per scored frame, the inner-lip opening over
the mouth width (``preprocessing.landmarks.lip_aperture``). Served, it comes from MediaPipe's
478-point face mesh run on the whole face on every scored frame: the largest CPU cost of an upload
(``benchmarks/cpu_budget.py``). The mouth crop is already there, though — 64 px, centred on the
lips, scaled by their width and rotated level (``preprocessing.mouth.crop_mouth``) — so the opening
is a small regression on it. This head is trained to give the refined mesh's answer on the crop
(``offline.training.lip_head``) and compared with it on every validation face by
``benchmarks/lip_head_choice.py``.

The graph reads the crops exactly as the pipeline makes them, uint8 ``(N, S, S, 3)``, and
normalises them itself with ``MouthConfig``'s constants: one source of truth, and a Triton model
that takes the preprocess step's tensor as it is (a quarter of the bytes of float32).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from sync_defense import contract as c
from sync_defense.preprocessing.config import DEFAULT_CONFIG, MouthConfig

LIP_HEAD = "lip_head"
LIP_CROPS, LIP_APERTURE = "LIP_CROPS", "LIP_APERTURE"
MAX_BATCH = 256  # about one 10-s upload's scored frames of one face in one call


@dataclass(frozen=True)
class LipHeadConfig:
    """Channels of the four stride-2 stages (64 -> 32 -> 16 -> 8 -> 4 px) and of the regression layer."""

    channels: tuple[int, ...] = (16, 32, 64, 64)
    hidden: int = 64
    crop_size: int = DEFAULT_CONFIG.mouth.crop_size


def lip_head_spec(config: LipHeadConfig = LipHeadConfig()) -> c.ModelSpec:
    """The exported graph: uint8 crops in, one opening per crop out (batch axis dynamic, 1..MAX_BATCH)."""
    s = config.crop_size
    return c.ModelSpec(LIP_HEAD, (c.TensorSpec(LIP_CROPS, (s, s, 3), "UINT8"),), (c.TensorSpec(LIP_APERTURE, (1,)),))


class Normalise(nn.Module):
    """uint8 ``(N, S, S, 3)`` -> float ``(N, 3, S, S)`` with the visual encoder's pixel constants."""

    def __init__(self, mouth: MouthConfig) -> None:
        super().__init__()
        self.mean, self.std = float(mouth.pixel_mean), float(mouth.pixel_std)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        pixels = crops.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return (pixels - self.mean) / self.std


class Stage(nn.Module):
    """3x3 convolution with stride 2, batch norm, ReLU: halves the picture (ORT folds the norm into the conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class Regressor(nn.Module):
    """The last 4x4 map flattened, not pooled: where the lips' edges are is the answer, so position is kept."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(torch.flatten(x, 1))))


class LipHead(nn.Module):
    """Mouth crop -> inner-lip opening over mouth width (the refined mesh's ``lip_aperture``)."""

    def __init__(self, config: LipHeadConfig = LipHeadConfig(), mouth: MouthConfig = DEFAULT_CONFIG.mouth) -> None:
        super().__init__()
        if config.crop_size != mouth.crop_size:
            raise ValueError(f"the head reads {config.crop_size}-px crops, the pipeline makes {mouth.crop_size}-px ones")
        self.config = config
        self.normalise = Normalise(mouth)
        widths = (3, *config.channels)
        self.stages = nn.Sequential(*(Stage(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        side = config.crop_size // 2 ** len(config.channels)
        self.regressor = Regressor(config.channels[-1] * side * side, config.hidden)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 -> ``(N, 1)`` float32 opening."""
        return self.regressor(self.stages(self.normalise(crops)))


def save_lip_head(model: LipHead, path: Path, extra: dict | None = None) -> None:
    """The weights, the config and the mouth constants they were trained under (``extra``: how)."""
    torch.save({"config": asdict(model.config), "mouth": asdict(DEFAULT_CONFIG.mouth), "state": model.state_dict(), **(extra or {})}, path)


def load_lip_head(path: Path) -> LipHead:
    """The head at ``path``, in eval mode; refused under other mouth-crop constants than it was trained on."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["mouth"] != asdict(DEFAULT_CONFIG.mouth):
        raise ValueError(f"{path} was trained on other mouth crops: {saved['mouth']}")
    config = saved["config"]
    model = LipHead(LipHeadConfig(tuple(config["channels"]), config["hidden"], config["crop_size"]))
    model.load_state_dict(saved["state"])
    return model.eval()
