"""The engine-build step up to the TensorRT call, here where neither TensorRT nor a GPU exists.

The TensorRT build itself stands in as a function that returns fixed bytes: what is tested is the key, the
profile, the cache and the rewritten repository around it, and the parity inputs from real windows.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sync_defense import contract as c
from sync_defense.artifacts import SAMPLE_VIDEO
from sync_defense.export import tensorrt_engines as te
from sync_defense.export.model_repository import GPU_PREFERRED_BATCHES, build_repository, repository_configs
from sync_defense.export.parity import absolute_error, parity_error, real_feeds
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video

TARGET = te.Target("10.5.0", "NVIDIA H100 80GB HBM3", "9.0", "fp16")


@pytest.fixture()
def gpu_repository(onnx_dir: Path, tmp_path: Path) -> Path:
    """A GPU-profile repository whose ``preprocess`` runs MediaPipe itself: the encoder graphs only."""
    return build_repository("gpu", MODEL_CONFIGS["tiny"], onnx_dir, tmp_path / "models", face_models="mediapipe")


@pytest.fixture()
def face_repository(onnx_dir: Path, tmp_path: Path) -> Path:
    """The GPU profile's default repository, the face graphs served too; their ONNX files stand in as bytes
    (the builder below never reads them)."""
    graphs = shutil.copytree(onnx_dir, tmp_path / "onnx")
    for name in c.FACE_GRAPHS:
        (graphs / f"{name}.onnx").write_bytes(f"onnx of {name}".encode())
    return build_repository("gpu", MODEL_CONFIGS["tiny"], graphs, tmp_path / "models", face_models="graphs")


class RecordingBuilder:
    """Stands in for TensorRT: returns bytes derived from the graph, remembers which graphs it was asked for."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.precisions: dict[str, str] = {}

    def __call__(self, job: te.GraphJob, timing_cache: Path) -> tuple[bytes, dict[str, float]]:
        self.built.append(job.name)
        self.precisions[job.name] = job.precision
        return f"plan of {job.name} {job.onnx_sha256} {job.precision}".encode(), {"batch_7": 1e-3, "batch_32": 2e-3}


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
        if name not in (*c.GRAPHS, *c.FACE_GRAPHS):
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


def test_face_graphs_are_built_fp32_beside_the_encoders_and_shared_across_precisions(face_repository: Path, tmp_path: Path) -> None:
    cache, builder = tmp_path / "engines", RecordingBuilder()
    plans = te.prepare_plans(face_repository, cache, TARGET, builder)  # --precision fp16
    assert builder.built == [*c.GRAPHS, *c.FACE_GRAPHS]
    assert builder.precisions == {**dict.fromkeys(c.GRAPHS, "fp16"), **dict.fromkeys(c.FACE_GRAPHS, "fp32")}
    for name in c.FACE_GRAPHS:
        cached = plans[name][0]
        record = json.loads(cached.record.read_text())
        assert cached.plan.name.startswith(f"{name}-fp32-") and record["precision"] == "fp32"
        assert record["precision_reason"] == te.FACE_PRECISION_REASON
        assert record["parity"]["measure"] == "absolute_error" and record["parity"]["tolerance"] == te.FACE_TOLERANCE
        assert record["profile"][c.IMAGE] == {"min": [1, 192, 192, 3], "opt": [16, 192, 192, 3], "max": [32, 192, 192, 3]}
    encoder = json.loads(plans[c.AUDIO_ENCODER][0].record.read_text())
    assert encoder["precision"] == "fp16" and encoder["precision_reason"] == "--precision"
    assert encoder["parity"] == {**encoder["parity"], "measure": "parity_error", "tolerance": te.TOLERANCE["fp16"]}

    fp32 = RecordingBuilder()
    again = te.prepare_plans(face_repository, cache, replace(TARGET, precision="fp32"), fp32)
    assert fp32.built == list(c.GRAPHS)  # the face plans are the same plans whatever --precision says
    assert all(again[name] == (plans[name][0], True) for name in c.FACE_GRAPHS)

    te.install_plans(face_repository, plans)
    for name in c.FACE_GRAPHS:
        assert te.read_config(face_repository / name / "config.pbtxt").platform == "tensorrt_plan"
        assert (face_repository / name / "1" / te.PLAN_FILE).read_bytes().endswith(b" fp32")


def test_without_face_graphs_only_the_encoders_are_built(gpu_repository: Path, tmp_path: Path) -> None:
    assert te.repository_graphs(gpu_repository) == c.GRAPHS
    builder = RecordingBuilder()
    assert list(te.prepare_plans(gpu_repository, tmp_path / "engines", TARGET, builder)) == list(c.GRAPHS)
    assert builder.built == list(c.GRAPHS)


def test_face_configs_are_recognised_by_name_and_tensors() -> None:
    specs, configs = c.face_graph_specs(), repository_configs("gpu", MODEL_CONFIGS["tiny"], face_models="graphs")
    for name, spec in specs.items():
        config = text_format.Parse(configs[name], mc.ModelConfig())
        assert te.contract_spec(config) == spec
        assert te.optimization_profile(spec, te.preferred_batch(config)) == {
            c.IMAGE: ((1, 192, 192, 3), (GPU_PREFERRED_BATCHES[0], 192, 192, 3), (c.MAX_BATCH, 192, 192, 3))}
    mesh = text_format.Parse(configs[c.FACE_MESH], mc.ModelConfig())
    mesh.output[0].dims[0] = 468  # the mesh without the attention refinement is another model
    with pytest.raises(te.EngineBuildError, match="match no graph"):
        te.contract_spec(mesh)
    named_wrong = text_format.Parse(configs[c.FACE_DETECTOR], mc.ModelConfig())
    named_wrong.name = c.FACE_MESH  # the detector's tensors under the mesh's name
    with pytest.raises(te.EngineBuildError, match="match no graph"):
        te.contract_spec(named_wrong)


def test_face_parity_is_an_absolute_bound_in_model_pixels() -> None:
    tolerance, error = te.parity_rule(c.FACE_MESH, te.plan_precision(c.FACE_MESH, "fp16"))
    assert (tolerance, error) == (te.FACE_TOLERANCE, absolute_error) == (0.05, absolute_error)
    points, flag = np.full((2, 478, 2), 190.0, np.float32), np.zeros((2, 1), np.float32)
    moved = points.copy()
    moved[1, 13, 1] += 0.06  # the inner upper lip 0.06 px lower: past the bound, whatever the coordinates' size
    assert error([moved, flag], [points, flag]) > tolerance
    assert parity_error([moved, flag], [points, flag]) < te.TOLERANCE["fp32"]  # which the relative measure lets pass
    moved[1, 13, 1] = 190.04
    assert error([moved, flag], [points, flag]) <= tolerance
    assert te.parity_rule(c.VISUAL_ENCODER, "fp16") == (te.TOLERANCE["fp16"], parity_error)


def test_face_parity_inputs_are_the_sample_videos_frames_and_faces() -> None:
    feeds = te.face_feeds(SAMPLE_VIDEO.read_bytes())
    specs = c.face_graph_specs()
    assert set(feeds) == set(c.FACE_GRAPHS)
    for name, batches in feeds.items():
        assert [len(feed[c.IMAGE]) for feed in batches] == [te.FACE_FEED_FRAMES, c.MAX_BATCH]  # one face per frame
        for feed in batches:
            image = feed[c.IMAGE]
            assert image.dtype == np.float32 and image.shape[1:] == specs[name].input(c.IMAGE).dims
            assert np.std(image) > 0.1  # real pictures, not a constant
    detector, mesh = feeds[c.FACE_DETECTOR][0][c.IMAGE], feeds[c.FACE_MESH][0][c.IMAGE]
    assert detector.min() < -0.5 and detector.max() <= 1.0 and mesh.min() >= 0.0 and mesh.max() <= 1.0
    assert np.abs(np.diff(mesh, axis=0)).mean() > 0.01  # the face moves from one sampled frame to the next
