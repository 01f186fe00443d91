"""Every generated ``config.pbtxt`` read with Triton's own protobuf schema and checked against the graphs and the contract.

The text generator writes pbtxt by hand; a typo in a field name, a tensor the ONNX graph does not have, a dtype or
dim that differs from the exported graph, or an ensemble step reading a tensor nobody writes would otherwise only
show when Triton loads the repository on a GPU node.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sync_defense import contract as c
from sync_defense.export.model_repository import CPU_GRAPH_INSTANCES, GPU_PREFERRED_BATCHES, GRAPH_QUEUE, build_repository
from sync_defense.export.tensorrt_engines import tensorrt_config
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.preprocessing import DEFAULT_CONFIG

ONNX_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.UINT8: "TYPE_UINT8"}
TINY = MODEL_CONFIGS["tiny"]


def _parse(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())  # unknown fields and bad enums raise


def _tensors(tensors) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, mc.DataType.Name(t.data_type), tuple(t.dims)) for t in tensors]


def _spec(tensors: tuple[c.TensorSpec, ...]) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, f"TYPE_{t.dtype}", t.dims) for t in tensors]


def _onnx(values) -> list[tuple[str, str, tuple[int, ...]]]:
    """Name, Triton dtype and per-item dims of ONNX graph inputs/outputs; the first axis must be a symbolic batch."""
    out = []
    for value in values:
        shape = value.type.tensor_type.shape.dim
        assert shape[0].dim_param and not shape[0].dim_value, f"{value.name}: the batch axis is not dynamic"
        out.append((value.name, ONNX_TYPES[value.type.tensor_type.elem_type], tuple(d.dim_value for d in shape[1:])))
    return out


def _check_graph(config: mc.ModelConfig, graph: onnx.ModelProto, spec: c.ModelSpec, profile: str) -> None:
    assert config.max_batch_size == c.MAX_BATCH
    assert _tensors(config.input) == _onnx(graph.graph.input) == _spec(spec.inputs)
    assert _tensors(config.output) == _onnx(graph.graph.output) == _spec(spec.outputs)
    kind = mc.ModelInstanceGroup.KIND_GPU if profile == "gpu" else mc.ModelInstanceGroup.KIND_CPU
    assert [g.kind for g in config.instance_group] == [kind]
    assert config.HasField("dynamic_batching")
    if profile == "cpu":  # ONNX Runtime in a Python step: its pool must not spin on cores that preprocessing needs
        assert {k: v.string_value for k, v in config.parameters.items()} == {"intra_op_threads": "1", "allow_spinning": "0"}
        assert [g.count for g in config.instance_group] == [CPU_GRAPH_INSTANCES] and CPU_GRAPH_INSTANCES > 1
    if profile == "gpu":
        batching = config.dynamic_batching
        assert list(batching.preferred_batch_size) == list(GPU_PREFERRED_BATCHES)
        assert all(1 <= b <= c.MAX_BATCH for b in batching.preferred_batch_size)
        assert batching.default_queue_policy.max_queue_size == GRAPH_QUEUE > 0
        [warmup] = config.model_warmup
        assert warmup.batch_size == c.MAX_BATCH
        assert [(k, mc.DataType.Name(v.data_type), tuple(v.dims)) for k, v in warmup.inputs.items()] == _spec(spec.inputs)
        assert all(v.random_data for v in warmup.inputs.values())


def _check_ensemble(config: mc.ModelConfig, steps: dict[str, mc.ModelConfig]) -> None:
    """Each step's maps name exactly its own tensors, and every tensor read was an ensemble input or written before."""
    assert config.platform == "ensemble"
    assert _tensors(config.input) == _spec(c.ensemble_spec(DEFAULT_CONFIG).inputs)
    assert _tensors(config.output) == _spec(c.ensemble_spec(DEFAULT_CONFIG).outputs)
    available = {t.name for t in config.input}
    for step in config.ensemble_scheduling.step:
        model = steps[step.model_name]
        assert set(step.input_map) == {t.name for t in model.input}
        assert set(step.output_map) == {t.name for t in model.output}
        assert set(step.input_map.values()) <= available, step.model_name
        available |= set(step.output_map.values())
    assert {t.name for t in config.output} <= available
    assert [s.model_name for s in config.ensemble_scheduling.step] == list(c.STEPS)
    # pinned (perf_analyzer cannot always guess an unnamed version: contract.MODEL_VERSION)
    assert {s.model_version for s in config.ensemble_scheduling.step} == {c.MODEL_VERSION}


@pytest.mark.parametrize(("profile", "face_models", "face_graphs"), [
    ("cpu", None, False),  # the CPU default: MediaPipe in the preprocess step
    ("cpu", "graphs", True),
    ("gpu", None, True),  # the GPU default: the face models are graphs, on the GPU
])
def test_every_config_parses_and_matches_graphs_and_contract(profile: str, face_models: str | None, face_graphs: bool,
                                                             all_onnx_dir: Path, tmp_path: Path) -> None:
    repository = build_repository(profile, TINY, all_onnx_dir, tmp_path / profile, face_models=face_models)
    configs = {p.name: _parse(p / "config.pbtxt") for p in repository.iterdir() if p.is_dir()}
    served_face_graphs = c.FACE_GRAPHS if face_graphs else ()
    assert set(configs) == {c.ENSEMBLE, *c.STEPS, c.PHONES, *c.GRAPHS, *served_face_graphs}
    assert all(config.name == name for name, config in configs.items())
    preprocess = {k: v.string_value for k, v in configs[c.PREPROCESS].parameters.items()}
    assert preprocess == {"face_models": "graphs" if face_graphs else "mediapipe"}

    steps = c.step_specs(DEFAULT_CONFIG)
    for name, spec in steps.items():
        config = configs[name]
        assert config.backend == "python" and config.max_batch_size == 0
        assert _tensors(config.input) == _spec(spec.inputs) and _tensors(config.output) == _spec(spec.outputs)
        assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    _check_ensemble(configs[c.ENSEMBLE], {name: configs[name] for name in c.STEPS})
    assert all((repository / name / str(c.MODEL_VERSION)).is_dir() for name in configs)
    phones, phones_spec = configs[c.PHONES], c.phones_spec()  # called by preprocess, one instance per preprocess instance
    assert phones.backend == "python" and phones.max_batch_size == 0
    assert _tensors(phones.input) == _spec(phones_spec.inputs) and _tensors(phones.output) == _spec(phones_spec.outputs)
    assert [g.count for g in phones.instance_group] == [g.count for g in configs[c.PREPROCESS].instance_group]

    graphs = {**c.graph_specs(DEFAULT_CONFIG, TINY.d_model), **{g: c.face_graph_specs()[g] for g in served_face_graphs}}
    for name, spec in graphs.items():
        graph = onnx.load(str(repository / name / "1" / "model.onnx"))
        _check_graph(configs[name], graph, spec, profile)
        if profile == "cpu":
            assert configs[name].backend == "python"
        else:
            assert configs[name].platform == "onnxruntime_onnx"
            # The engine-build step's rewrite keeps every checked property.
            plan = text_format.Parse(tensorrt_config(configs[name]), mc.ModelConfig())
            assert plan.platform == "tensorrt_plan"
            _check_graph(plan, graph, spec, profile)
