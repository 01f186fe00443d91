"""The mouth-artefact detector (offline, not served): its self-blended training pairs, its network, its training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sync_defense.model.artefact import MouthArtefactNet, load_artefact_net, save_artefact_net
from sync_defense.offline.realdata.forgeries import load_recording
from sync_defense.offline.training.artefact_threshold import fit
from sync_defense.offline.training.self_blended import (
    Frame,
    blend_mask,
    example,
    examples,
    frames_of,
    photo_frames,
    predict,
    self_blend,
    served_crops,
    train,
)
from sync_defense.preprocessing import DEFAULT_CONFIG

SQUARE, UPPER = DEFAULT_CONFIG.texture.square_px, DEFAULT_CONFIG.texture.upper_px


@pytest.fixture(scope="module")
def face_frames(talking_mp4: bytes) -> list[Frame]:
    """Every 3rd frame of the rendered talking face: a face the detector never trained on."""
    return frames_of(load_recording(talking_mp4, "talking", "rendered", 0, 120), 3)


def test_a_self_blended_frame_differs_only_where_its_mask_reaches(face_frames: list[Frame]) -> None:
    target = face_frames[0]
    for seed in range(5):
        mask = blend_mask(target.rgb.shape[:2], target.points, np.random.default_rng(seed))
        blended = self_blend(target, face_frames[3], np.random.default_rng(seed))
        changed = np.abs(blended.astype(int) - target.rgb.astype(int)).max(axis=2) > 0
        assert changed.any(), seed
        assert not changed[mask == 0].any(), seed  # outside the mask the picture is the recording's, bit for bit
        mouth_y = target.points[13, 1]
        assert mask[int(mouth_y), int(target.points[13, 0])] > 0  # the mask covers the lips


def test_the_corpus_photos_add_identities_each_with_its_mesh() -> None:
    photos = photo_frames(1, np.random.default_rng(0))
    assert len(photos) >= 50 and "photo_astronaut" in photos and "photo_grace_hopper" in photos
    frame = photos["photo_astronaut"][0]
    x, y, w, h = frame.box
    assert frame.points.shape == (478, 2) and x <= frame.points[13, 0] <= x + w and y <= frame.points[13, 1] <= y + h


def test_examples_are_the_served_crops(face_frames: list[Frame]) -> None:
    genuine = example(face_frames, 0, False, np.random.default_rng(0))
    assert genuine[0].shape == (SQUARE, SQUARE, 3) and genuine[1].shape == (UPPER, UPPER, 3)
    assert all(a.dtype == np.uint8 for a in genuine)
    served = served_crops(face_frames[0])
    assert served[0].shape == genuine[0].shape and served[1].shape == genuine[1].shape


def test_the_network_batches_and_gives_probabilities() -> None:
    net = MouthArtefactNet().eval()
    mouths, uppers = torch.rand(5, SQUARE, SQUARE, 3) * 255, torch.rand(5, UPPER, UPPER, 3) * 255
    with torch.no_grad():
        out = net(mouths, uppers)
        one = net(mouths[:1], uppers[:1])
    assert out.shape == (5, 1) and bool(((out >= 0) & (out <= 1)).all())
    assert torch.allclose(out[:1], one, atol=1e-5)  # a row's answer does not depend on its batch


def test_a_few_training_steps_learn_and_the_checkpoint_round_trips(face_frames: list[Frame], tmp_path: Path) -> None:
    """A smoke test of ``make artefact``'s training (CI does not train): the loss falls, the held-out AUC is
    measured, and the saved detector answers as the trained one."""
    rng = np.random.default_rng(0)
    half = len(face_frames) // 2
    model, history = train(examples(face_frames[:half], 1, rng), examples(face_frames[half:], 1, rng), epochs=2, seed=0)
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"] and 0.0 <= history[1]["held_out_auc"] <= 1.0
    save_artefact_net(model, tmp_path / "artefact.pt", epochs=2)
    mouths, uppers, _ = examples(face_frames[:2], 1, rng)
    loaded = load_artefact_net(tmp_path / "artefact.pt")
    np.testing.assert_allclose(predict(loaded, mouths, uppers), predict(model, mouths, uppers), atol=1e-6)


def test_the_threshold_clears_every_genuine_training_face_by_the_margin() -> None:
    assert fit([0.1, 0.42, 0.3], 0.1) == pytest.approx(0.52)
