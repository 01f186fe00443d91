"""The model repository generated for both profiles from one description."""

from __future__ import annotations

from pathlib import Path

from avsync.model import MODEL_CONFIGS
from export.model_repository import ENSEMBLE, SOURCE, build_repository, repository_configs


def test_committed_cpu_configs_are_the_generated_ones() -> None:
    """model_repository/*/config.pbtxt cannot drift from the constants: regenerate with
    ``python -m export.model_repository --write-source-configs``."""
    for name, text in repository_configs("cpu", MODEL_CONFIGS["tiny"]).items():
        assert (SOURCE / name / "config.pbtxt").read_text() == text, name


def test_profiles_share_pipeline_and_differ_in_the_graph_runtime() -> None:
    cpu = repository_configs("cpu", MODEL_CONFIGS["tiny"])
    gpu = repository_configs("gpu", MODEL_CONFIGS["tiny"])
    assert cpu.keys() == gpu.keys()
    for name in (ENSEMBLE, "preprocess", "decision"):
        assert cpu[name] == gpu[name]
    for name in ("visual_encoder", "audio_encoder", "fusion_classifier"):
        assert 'backend: "python"' in cpu[name] and "KIND_CPU" in cpu[name]
        assert 'platform: "onnxruntime_onnx"' in gpu[name] and '"tensorrt"' in gpu[name] and '"FP16"' in gpu[name]
        assert "dynamic_batching" in cpu[name] and "dynamic_batching" in gpu[name]


def test_base_model_changes_token_dims() -> None:
    assert "dims: [ 25, 256 ]" in repository_configs("gpu", MODEL_CONFIGS["base"])["visual_encoder"]


def test_built_repository_has_every_file_triton_needs(onnx_dir: Path, tmp_path: Path) -> None:
    for profile in ("cpu", "gpu"):
        out = build_repository(profile, MODEL_CONFIGS["tiny"], onnx_dir, tmp_path / profile)
        for graph in ("visual_encoder", "audio_encoder", "fusion_classifier"):
            assert (out / graph / "1" / "model.onnx").stat().st_size > 10_000
            assert (out / graph / "1" / "model.py").exists() == (profile == "cpu")
        for step in ("preprocess", "decision"):
            assert (out / step / "1" / "model.py").exists()
        assert (out / ENSEMBLE / "1").is_dir()
