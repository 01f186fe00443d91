"""Model shapes for both configs, time resolution, and checkpoints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sync_defense.model.checkpoint import init_model, load_checkpoint, save_checkpoint
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.model.network import FusionClassifier, VisualEncoder
from sync_defense.preprocessing import DEFAULT_CONFIG as CFG

MOUTHS = (3, CFG.timeline.clip_frames, CFG.mouth.crop_size, CFG.mouth.crop_size)
MELS = (1, CFG.audio.n_mels, CFG.mel_frames)


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_three_parts_have_the_served_shapes(name: str) -> None:
    model = init_model(name)
    d = MODEL_CONFIGS[name].d_model
    with torch.no_grad():
        visual = model.visual(torch.randn(2, *MOUTHS))
        audio = model.audio(torch.randn(2, *MELS))
        probability = model.fusion(visual, audio)
    assert visual.shape == audio.shape == (2, CFG.timeline.clip_frames, d)
    assert probability.shape == (2, 1) and bool(((probability > 0) & (probability < 1)).all())


def test_base_has_r2plus1d_18_widths() -> None:
    cfg = MODEL_CONFIGS["base"]
    assert cfg.visual_widths == (64, 128, 256, 512) and cfg.visual_blocks == (2, 2, 2, 2)


def test_visual_tokens_keep_per_frame_time_resolution() -> None:
    """Changing frame 10 changes tokens near frame 10 only: time is not pooled in the encoder."""
    encoder = VisualEncoder(MODEL_CONFIGS["tiny"]).eval()
    x = torch.randn(1, *MOUTHS)
    y = x.clone()
    y[:, :, 10] += 3.0
    with torch.no_grad():
        change = (encoder(y) - encoder(x)).abs().sum(dim=-1)[0]
    assert change[10] > 0 and change[0] == 0 and change[-1] == 0


def test_fusion_output_depends_on_alignment() -> None:
    fusion = FusionClassifier(MODEL_CONFIGS["tiny"]).eval()
    v, a = torch.randn(1, CFG.timeline.clip_frames, 64), torch.randn(1, CFG.timeline.clip_frames, 64)
    with torch.no_grad():
        assert not torch.allclose(fusion(v, a), fusion(v, torch.roll(a, 3, dims=1)))


def test_same_seed_same_weights() -> None:
    a, b = init_model("tiny", 7), init_model("tiny", 7)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = init_model("tiny", 3)
    save_checkpoint(model, tmp_path / "m.pt", steps=5)
    loaded = load_checkpoint(tmp_path / "m.pt")
    x, m = torch.randn(1, *MOUTHS), torch.randn(1, *MELS)
    with torch.no_grad():
        assert torch.equal(model(x, m), loaded(x, m))


def test_checkpoint_from_other_preprocessing_is_refused(tmp_path: Path) -> None:
    model = init_model("tiny")
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    state = torch.load(path, weights_only=True)
    state["preprocess"] = replace(CFG, audio=replace(CFG.audio, hop_length=200), timeline=replace(CFG.timeline, fps=20)).model_input()
    torch.save(state, path)
    with pytest.raises(ValueError, match="trained with other preprocessing"):
        load_checkpoint(path)
