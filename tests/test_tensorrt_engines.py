"""The engine-build step up to the TensorRT call, here where neither TensorRT nor a GPU exists.

The TensorRT build itself stands in as a function that returns fixed bytes: what is tested is the key, the
profile, the cache and the rewritten repository around it, and the parity inputs from real windows.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sync_defense import contract as c
from sync_defense.export import tensorrt_engines as te
from sync_defense.export.model_repository import GPU_PREFERRED_BATCHES, build_repository, repository_configs
from sync_defense.export.parity import parity_error, real_feeds
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video

TARGET = te.Target("10.5.0", "NVIDIA H100 80GB HBM3", "9.0", "fp16")


@pytest.fixture()
def gpu_repository(onnx_dir: Path, tmp_path: Path) -> Path:
    return build_repository("gpu", MODEL_CONFIGS["tiny"], onnx_dir, tmp_path / "models")


class RecordingBuilder:
    """Stands in for TensorRT: returns bytes derived from the graph, remembers which graphs it was asked for."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, job: te.GraphJob, timing_cache: Path) -> tuple[bytes, dict[str, float]]:
        self.built.append(job.name)
        return f"plan of {job.name} {job.onnx_sha256}".encode(), {"batch_7": 1e-3, "batch_32": 2e-3}


def test_missing_tensorrt_is_a_clear_message(gpu_repository: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    for module in ("tensorrt", "tensorrt_bindings"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError, whatever is installed
    before = {name: (gpu_repository / name / "config.pbtxt").read_text() for name in c.GRAPHS}
    assert te.main(["--repository", str(gpu_repository), "--cache", str(tmp_path / "engines")]) == 1
    message = capsys.readouterr().err
    assert "TensorRT's Python API is not installed" in message
    assert "tensorrt-cu12-bindings==10.5.0" in message and "SYNC_DEFENSE_TENSORRT=0" in message
    assert {name: (gpu_repository / name / "config.pbtxt").read_text() for name in c.GRAPHS} == before


def test_profiles_come_from_the_contract_and_the_preferred_batch() -> None:
    for size in ("tiny", "base"):
        configs = repository_configs("gpu", MODEL_CONFIGS[size])
        for name, spec in c.graph_specs(DEFAULT_CONFIG, MODEL_CONFIGS[size].d_model).items():
            config = text_format.Parse(configs[name], mc.ModelConfig())
            assert te.contract_spec(config) == spec
            assert te.preferred_batch(config) == GPU_PREFERRED_BATCHES[0]
            profile = te.optimization_profile(spec, te.preferred_batch(config))
            assert profile == {t.name: ((1, *t.dims), (GPU_PREFERRED_BATCHES[0], *t.dims), (c.MAX_BATCH, *t.dims)) for t in spec.inputs}
    with pytest.raises(te.EngineBuildError, match="outside 1..32"):
        te.optimization_profile(spec, c.MAX_BATCH + 1)


def test_a_config_that_is_not_the_contract_is_refused() -> None:
    config = text_format.Parse(repository_configs("gpu", MODEL_CONFIGS["tiny"])[c.VISUAL_ENCODER], mc.ModelConfig())
    config.input[0].dims[-1] = 96
    with pytest.raises(te.EngineBuildError, match="match no graph"):
        te.contract_spec(config)


def test_cache_key_changes_with_everything_a_plan_depends_on() -> None:
    spec = c.graph_specs(DEFAULT_CONFIG, 64)[c.AUDIO_ENCODER]
    profile = te.optimization_profile(spec, 16)
    key = te.cache_key("ab" * 32, TARGET, profile)
    assert key == te.cache_key("ab" * 32, TARGET, profile)
    others = [
        te.cache_key("cd" * 32, TARGET, profile),
        te.cache_key("ab" * 32, replace(TARGET, tensorrt_version="10.6.0"), profile),
        te.cache_key("ab" * 32, replace(TARGET, gpu_name="NVIDIA L4", compute_capability="8.9"), profile),
        te.cache_key("ab" * 32, replace(TARGET, precision="fp32"), profile),
        te.cache_key("ab" * 32, TARGET, te.optimization_profile(spec, 32)),
    ]
    assert len({key, *others}) == 6
    assert TARGET.slug == "trt10.5.0-nvidia-h100-80gb-hbm3-sm90"


def test_rewritten_config_is_a_tensorrt_plan_with_everything_else_kept() -> None:
    for name, text in repository_configs("gpu", MODEL_CONFIGS["tiny"]).items():
        if name not in c.GRAPHS:
            continue
        onnx_config = text_format.Parse(text, mc.ModelConfig())
        plan_config = text_format.Parse(te.tensorrt_config(onnx_config), mc.ModelConfig())
        assert plan_config.platform == "tensorrt_plan" and plan_config.backend == ""
        assert plan_config.default_model_filename == te.PLAN_FILE
        assert not plan_config.HasField("optimization")
        for field in ("name", "max_batch_size", "input", "output", "dynamic_batching", "instance_group", "model_warmup"):
            assert getattr(plan_config, field) == getattr(onnx_config, field), field


def test_cache_miss_builds_and_records_a_hit_reuses(gpu_repository: Path, tmp_path: Path) -> None:
    cache, builder = tmp_path / "engines", RecordingBuilder()
    plans = te.prepare_plans(gpu_repository, cache, TARGET, builder)
    assert builder.built == list(c.GRAPHS) and not any(hit for _, hit in plans.values())
    for name, (cached, _) in plans.items():
        record = json.loads(cached.record.read_text())
        onnx = gpu_repository / name / "1" / "model.onnx"
        assert record["onnx_sha256"] == te.sha256(onnx) and record["tensorrt_version"] == "10.5.0"
        assert record["gpu_name"] == TARGET.gpu_name and record["compute_capability"] == "9.0"
        assert record["precision"] == "fp16" and record["parity"]["tolerance"] == te.TOLERANCE["fp16"]
        assert record["profile"][c.graph_specs(DEFAULT_CONFIG, 64)[name].inputs[0].name]["max"][0] == c.MAX_BATCH

    again = RecordingBuilder()
    assert all(hit for _, hit in te.prepare_plans(gpu_repository, cache, TARGET, again).values()) and again.built == []

    fp32 = RecordingBuilder()
    te.prepare_plans(gpu_repository, cache, replace(TARGET, precision="fp32"), fp32)
    assert fp32.built == list(c.GRAPHS)  # another precision is another plan

    plans[c.AUDIO_ENCODER][0].plan.write_bytes(b"truncated")  # a damaged plan is rebuilt, not served
    repair = RecordingBuilder()
    te.prepare_plans(gpu_repository, cache, TARGET, repair)
    assert repair.built == [c.AUDIO_ENCODER]


def test_installed_plans_are_served_as_tensorrt(gpu_repository: Path, tmp_path: Path) -> None:
    plans = te.prepare_plans(gpu_repository, tmp_path / "engines", TARGET, RecordingBuilder())
    te.install_plans(gpu_repository, plans)
    for name in c.GRAPHS:
        version = gpu_repository / name / "1"
        config = te.read_config(gpu_repository / name / "config.pbtxt")
        assert config.platform == "tensorrt_plan" and config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        assert (version / te.PLAN_FILE).read_bytes() == plans[name][0].plan.read_bytes()
        assert json.loads((version / "model.plan.json").read_text())["graph"] == name
        assert not (version / "model.onnx").exists()
    for step in c.STEPS:  # the Python steps and the ensemble are untouched
        assert 'backend: "python"' in (gpu_repository / step / "config.pbtxt").read_text()


def test_parity_inputs_are_real_windows_at_the_video_batch_and_the_largest(onnx_dir: Path, talking_mp4: bytes) -> None:
    paths = {name: onnx_dir / f"{name}.onnx" for name in c.GRAPHS}
    feeds = real_feeds(paths, preprocess_video(talking_mp4).window_inputs())
    specs = c.graph_specs(DEFAULT_CONFIG, 64)
    for name, batches in feeds.items():
        sizes = [len(next(iter(inputs.values()))) for inputs in batches]
        assert 1 < sizes[0] <= c.MAX_BATCH and sizes[1] == c.MAX_BATCH
        session = onnx_session(paths[name])
        for inputs in batches:
            assert {k: v.shape[1:] for k, v in inputs.items()} == {t.name: t.dims for t in specs[name].inputs}
            assert np.std(next(iter(inputs.values()))) > 0  # real content, not zeros
            outputs = session.run(None, inputs)
            assert parity_error(outputs, outputs) == 0.0
    assert parity_error([np.array([0.5, 0.2])], [np.array([0.51, 0.2])]) == pytest.approx(0.01)
    assert parity_error([np.array([40.0])], [np.array([39.0])]) == pytest.approx(1 / 39)
