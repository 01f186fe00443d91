"""The lip-sync detector: R(2+1)D mouth encoder, 2D-ResNet log-mel encoder, cross-modal fusion.

Three modules, three ONNX graphs, three Triton models: ``VisualEncoder`` and ``AudioEncoder`` each
turn one window into one token per video frame, ``FusionClassifier`` compares the two token
sequences and scores the window. Time is never strided away in the encoders: a lip-sync error of
one frame (40 ms) must still be visible to the fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sync_defense.contract import AUDIO_ENCODER, FUSION_CLASSIFIER, VISUAL_ENCODER
from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig

from .config import ModelConfig

# --- visual: R(2+1)D -------------------------------------------------------------------------------


def _midplanes(in_planes: int, out_planes: int) -> int:
    """Width between the spatial and temporal convs that matches a full 3x3x3 conv's parameter count."""
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


class Conv2Plus1D(nn.Sequential):
    """A 3x3x3 convolution factorised into 1x3x3 (space) then 3x1x1 (time); time stride is always 1."""

    def __init__(self, in_planes: int, out_planes: int, mid: int, spatial_stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock3d(nn.Module):
    """Two (2+1)D convolutions with a residual connection.

    Laid out like torchvision's video ``BasicBlock`` (both convs share the block's mid width), so
    Kinetics ``r2plus1d_18`` weights load into the ``base`` config by renaming keys only.
    """

    def __init__(self, in_planes: int, planes: int, spatial_stride: int = 1) -> None:
        super().__init__()
        mid = _midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(Conv2Plus1D(in_planes, planes, mid, spatial_stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid), nn.BatchNorm3d(planes))
        self.downsample = None
        if spatial_stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, stride=(1, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv2(self.conv1(x)) + identity)


class R2Plus1DStem(nn.Sequential):
    """(2+1)D stem: 1x7x7 spatial conv at stride 2, then a 3x1x1 temporal conv."""

    def __init__(self, planes: int, mid: int) -> None:
        super().__init__(
            nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, planes, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )


def _stage(block: type[nn.Module], in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [block(in_planes, planes, stride)] + [block(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class VisualEncoder(nn.Module):
    """Mouth crops ``(B, 3, T, H, W)`` -> one token per frame ``(B, T, D)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = R2Plus1DStem(cfg.visual_stem, cfg.visual_stem_mid)
        planes = [cfg.visual_stem, *cfg.visual_widths]
        self.stages = nn.Sequential(*[
            _stage(BasicBlock3d, planes[i], planes[i + 1], cfg.visual_blocks[i], cfg.visual_strides[i])
            for i in range(len(cfg.visual_widths))
        ])
        self.project = nn.Linear(planes[-1], cfg.d_model)

    def forward(self, mouths: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(mouths))  # (B, C, T, h, w)
        return self.project(features.mean(dim=(3, 4)).transpose(1, 2))


# --- audio: 2D ResNet on the log-mel ---------------------------------------------------------------


class BasicBlock2d(nn.Module):
    """ResNet basic block; the stride halves frequency and time together."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes))
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv2(self.conv1(x)) + identity)


class AudioEncoder(nn.Module):
    """Log-mel ``(B, 1, F, T_mel)`` -> one token per video frame ``(B, T, D)``.

    Two stride-2 stages take the 4 mel frames of each video frame down to 1; later stages keep
    their resolution, and the frequency axis is averaged away at the end.
    """

    def __init__(self, cfg: ModelConfig, mels_per_frame: int = DEFAULT_CONFIG.mels_per_frame) -> None:
        super().__init__()
        if mels_per_frame != 4:
            raise ValueError("the audio encoder reduces time by 4: it needs 4 mel frames per video frame")
        stem = cfg.audio_widths[0]
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        planes = [stem, *cfg.audio_widths]
        strides = [1, 2, 2] + [1] * (len(cfg.audio_widths) - 3)
        self.stages = nn.Sequential(*[
            _stage(BasicBlock2d, planes[i], planes[i + 1], cfg.audio_blocks[i], strides[i]) for i in range(len(cfg.audio_widths))
        ])
        self.project = nn.Linear(planes[-1], cfg.d_model)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(mels))  # (B, C, F', T)
        return self.project(features.mean(dim=2).transpose(1, 2))


# --- fusion ----------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention on ``scaled_dot_product_attention`` (exports cleanly to ONNX/TensorRT)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.query(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.key_value(context).view(b, -1, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))


class TransformerLayer(nn.Module):
    """Pre-norm self-attention and feed-forward over the window's time steps."""

    def __init__(self, d_model: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = Attention(d_model, heads)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.attention(h, h))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class BidirectionalCrossAttention(nn.Module):
    """Video tokens attend to audio and audio tokens attend to video."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.norm_v, self.norm_a = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.audio_to_visual = Attention(d_model, heads)
        self.visual_to_audio = Attention(d_model, heads)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, a = self.norm_v(visual), self.norm_a(audio)
        return self.audio_to_visual(v, a), self.visual_to_audio(a, v)


class FusionClassifier(nn.Module):
    """Per-window fake probability from aligned visual and audio tokens ``(B, T, D)`` each.

    Each time step is fused from ``[v, a, v*a, v<-a, a<-v]`` before the transformer: the
    element-wise product gives the network a direct per-frame agreement signal, which cross-
    attention alone was measured to learn far more slowly.
    """

    def __init__(self, cfg: ModelConfig, clip_frames: int = DEFAULT_CONFIG.timeline.clip_frames) -> None:
        super().__init__()
        d = cfg.d_model
        self.cross = BidirectionalCrossAttention(d, cfg.heads)
        self.fuse = nn.Sequential(nn.Linear(5 * d, d), nn.GELU())
        self.position = nn.Parameter(torch.zeros(1, clip_frames, d))
        self.layers = nn.Sequential(*[TransformerLayer(d, cfg.heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.fusion_layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)

    def logit(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``(B,)`` fake logit (training uses this with BCE-with-logits)."""
        v_from_a, a_from_v = self.cross(visual, audio)
        x = self.fuse(torch.cat([visual, audio, visual * audio, v_from_a, a_from_v], dim=-1)) + self.position
        return self.head(self.norm(self.layers(x).mean(dim=1))).squeeze(-1)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``(B, 1)`` probability that the window's speech and mouth do not belong together.

        The trailing axis is there because a batched Triton tensor needs at least one dimension.
        """
        return torch.sigmoid(self.logit(visual, audio)).unsqueeze(-1)


class SyncDetector(nn.Module):
    """The three parts together, for training and for the PyTorch reference in parity checks."""

    def __init__(self, cfg: ModelConfig, preprocess: PreprocessConfig = DEFAULT_CONFIG) -> None:
        super().__init__()
        self.config = cfg
        self.visual = VisualEncoder(cfg)
        self.audio = AudioEncoder(cfg, preprocess.mels_per_frame)
        self.fusion = FusionClassifier(cfg, preprocess.timeline.clip_frames)

    def logit(self, mouths: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        return self.fusion.logit(self.visual(mouths), self.audio(mels))

    def forward(self, mouths: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """``(B, 1)`` per-window fake probability, as the served fusion-classifier returns it."""
        return self.fusion(self.visual(mouths), self.audio(mels))


def graph_modules(model: SyncDetector) -> dict[str, nn.Module]:
    """The module behind each exported graph, keyed by its Triton model name."""
    return {VISUAL_ENCODER: model.visual, AUDIO_ENCODER: model.audio, FUSION_CLASSIFIER: model.fusion}
