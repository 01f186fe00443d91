"""The model repository generated for both profiles from one description."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_defense import contract as c
from sync_defense.export.model_repository import SOURCE, adapters, build_repository, repository_configs
from sync_defense.model.config import MODEL_CONFIGS


def test_committed_repository_is_the_generated_one() -> None:
    """model_repository/ cannot drift from the contract: refresh it with
    ``python -m sync_defense.export.model_repository --profile cpu --out model_repository --sources-only``."""
    for name, text in repository_configs("cpu", MODEL_CONFIGS["tiny"]).items():
        assert (SOURCE / name / "config.pbtxt").read_text() == text, name
    for name, text in adapters("cpu").items():
        assert (SOURCE / name / "1" / "model.py").read_text() == text, name
    assert sorted(p.name for p in SOURCE.iterdir() if p.is_dir()) == sorted([c.ENSEMBLE, *c.STEPS, c.PHONES, *c.GRAPHS])


def test_profiles_share_pipeline_and_differ_in_the_graph_runtime() -> None:
    cpu = repository_configs("cpu", MODEL_CONFIGS["tiny"], face_models="graphs")
    gpu = repository_configs("gpu", MODEL_CONFIGS["tiny"])
    assert cpu.keys() == gpu.keys() == {c.ENSEMBLE, *c.STEPS, c.PHONES, *c.GRAPHS, *c.FACE_GRAPHS}
    for name in (c.ENSEMBLE, c.SCORE, c.DECISION):
        assert cpu[name] == gpu[name]
    # Only the preprocess instance count differs among the steps: the GPU node's cores minus one (and the phone
    # decoder's, which follows it).
    assert gpu[c.PREPROCESS] == cpu[c.PREPROCESS].replace("count: 2", "count: 3")
    assert gpu[c.PHONES] == cpu[c.PHONES].replace("count: 2", "count: 3")
    assert "count: 15" in repository_configs("gpu", MODEL_CONFIGS["tiny"], cores=16)[c.PREPROCESS]
    for name in c.GRAPHS + c.FACE_GRAPHS:
        assert 'backend: "python"' in cpu[name] and "KIND_CPU" in cpu[name]
        assert 'platform: "onnxruntime_onnx"' in gpu[name] and "KIND_GPU" in gpu[name] and "model_warmup" in gpu[name]
        assert "dynamic_batching" in cpu[name] and "dynamic_batching" in gpu[name]


def test_base_model_changes_token_dims() -> None:
    assert "dims: [ 25, 256 ]" in repository_configs("gpu", MODEL_CONFIGS["base"])["visual_encoder"]


def test_face_models_stay_in_the_preprocess_step_on_cpu_unless_asked() -> None:
    cpu = repository_configs("cpu", MODEL_CONFIGS["tiny"])
    assert not set(c.FACE_GRAPHS) & cpu.keys()
    assert 'string_value: "mediapipe"' in cpu[c.PREPROCESS]
    assert 'string_value: "graphs"' in repository_configs("gpu", MODEL_CONFIGS["tiny"])[c.PREPROCESS]
    with pytest.raises(ValueError, match="face_models"):
        repository_configs("cpu", MODEL_CONFIGS["tiny"], face_models="opencv")


def test_built_repository_has_every_file_triton_needs(all_onnx_dir: Path, tmp_path: Path) -> None:
    for profile in ("cpu", "gpu"):
        out = build_repository(profile, MODEL_CONFIGS["tiny"], all_onnx_dir, tmp_path / profile, face_models="graphs")
        for graph in c.GRAPHS + c.FACE_GRAPHS:
            assert (out / graph / "1" / "model.onnx").stat().st_size > 10_000
            assert (out / graph / "1" / "model.py").exists() == (profile == "cpu")
        for step in (*c.STEPS, c.PHONES):
            assert (out / step / "1" / "model.py").exists()
        assert (out / c.DECISION / "1" / "calibration.json").exists()
        assert (out / c.ENSEMBLE / "1").is_dir()
