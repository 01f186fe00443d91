"""Model sizes as plain data: the repository generator and the graph specs read them without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Widths and depths; ``tiny`` trains and serves on 2 CPU cores, ``base`` is for GPUs."""

    name: str
    visual_widths: tuple[int, ...]
    visual_blocks: tuple[int, ...]
    visual_stem: int
    visual_stem_mid: int  # width between the stem's spatial and temporal convs (45 in r2plus1d_18)
    visual_strides: tuple[int, ...]  # spatial stride of each stage (time is never strided)
    audio_widths: tuple[int, ...]
    audio_blocks: tuple[int, ...]
    d_model: int
    heads: int
    fusion_layers: int
    ff_mult: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny", visual_stem=16, visual_stem_mid=16, visual_strides=(2, 2, 2, 1),
        visual_widths=(16, 32, 48, 64), visual_blocks=(1, 1, 1, 1),
        audio_widths=(16, 32, 48, 64), audio_blocks=(1, 1, 1, 1), d_model=64, heads=4, fusion_layers=2,
    ),
    # r2plus1d_18 widths and depths (torchvision's Kinetics model), time kept at frame rate.
    "base": ModelConfig(
        name="base", visual_stem=64, visual_stem_mid=45, visual_strides=(1, 2, 2, 2),
        visual_widths=(64, 128, 256, 512), visual_blocks=(2, 2, 2, 2),
        audio_widths=(64, 128, 256, 512), audio_blocks=(2, 2, 2, 2), d_model=256, heads=8, fusion_layers=4,
    ),
}
