"""Is this mouth pasted into the face? A small CNN that reads no audio (issue 22's learned artefact detector).

A lip-sync generator re-makes the mouth and blends it into the frame: the pasted region differs from
the rest of the face in sharpness, colour, noise and at its seam, whatever the generator. The network
sees two crops of one frame at the same pixel scale (``preprocessing.texture.face_crops``): the
mouth's square, where a forgery's artefacts are, and the upper face between the eyes, which no
lip-sync generator touches, so a blur or a grain is judged against the same face's own. It is
trained on real frames against the same frames with their own mouth self-blended back in
(``offline.training.self_blended``, Shiohara and Yamasaki's recipe), never on a forgery tool's output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class ArtefactConfig:
    width: int = 16  # channels of the first stage; each later stage doubles it up to 4x
    stages: int = 4  # stride-2 stages: a 128-px mouth square ends at 8 x 8


DEFAULT_ARTEFACT = ArtefactConfig()


def _stage(in_planes: int, planes: int) -> nn.Sequential:
    """A stride-2 3x3 convolution then a 3x3 one, each with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
    )


class CropFeatures(nn.Sequential):
    """The shared feature extractor of both crops."""

    def __init__(self, cfg: ArtefactConfig) -> None:
        widths = [3] + [cfg.width * min(2**i, 4) for i in range(cfg.stages)]
        super().__init__(*(_stage(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        self.planes = widths[-1]


class MouthArtefactNet(nn.Module):
    """``(mouth, upper)`` float32 NHWC in 0..255 -> ``(B, 1)`` probability that the mouth is pasted.

    The mouth's features are pooled by mean and by max (a seam or a blurred patch may cover a small
    part of the square); the upper face's by mean, as the reference the head compares against.
    """

    def __init__(self, cfg: ArtefactConfig = DEFAULT_ARTEFACT) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = CropFeatures(cfg)
        planes = self.features.planes
        self.head = nn.Sequential(nn.Linear(3 * planes, 32), nn.ReLU(inplace=True), nn.Linear(32, 1))

    @staticmethod
    def _nchw(image: torch.Tensor) -> torch.Tensor:
        return image.permute(0, 3, 1, 2) / 127.5 - 1.0

    def logits(self, mouth: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        m = self.features(self._nchw(mouth))
        u = self.features(self._nchw(upper))
        pooled = torch.cat([m.mean(dim=(2, 3)), m.amax(dim=(2, 3)), u.mean(dim=(2, 3))], dim=1)
        return self.head(pooled)

    def forward(self, mouth: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(mouth, upper))


def save_artefact_net(model: MouthArtefactNet, path: Path, **meta: object) -> None:
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "meta": meta}, path)


def load_artefact_net(path: Path) -> MouthArtefactNet:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = MouthArtefactNet(ArtefactConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
