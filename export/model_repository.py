"""Generate the Triton model repository for a profile from one description of the pipeline.

    python -m export.model_repository --profile cpu --onnx build/onnx --out build/model_repository/cpu

Both profiles share the ensemble, ``preprocess`` and ``decision``; they differ only in how the
three graphs run: ``cpu`` runs them in ONNX Runtime inside Python-backend models (the CPU server
wheel has no ONNX Runtime backend), ``gpu`` gives them to Triton's ONNX Runtime backend with the
TensorRT execution accelerator in FP16 (engines are built on the target GPU and cached).
The ``config.pbtxt`` files committed under ``model_repository/`` are this generator's ``cpu``
output for the ``tiny`` model; a test keeps them identical.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable
from pathlib import Path

from avsync.model import MODEL_CONFIGS, ModelConfig
from preprocessing.config import DEFAULT_CONFIG, PreprocessConfig

from .graphs import TensorSpec, graph_specs

SOURCE = Path(__file__).resolve().parent.parent / "model_repository"
ENSEMBLE = "sync_defense"
PROFILES = ("cpu", "gpu")
PYTHON_STEPS = ("preprocess", "decision")
BATCH_DELAY_US = 2000


def _dims(dims: Iterable[int]) -> str:
    return ", ".join(str(d) for d in dims)


def _tensors(kind: str, tensors: Iterable[TensorSpec], batched: bool) -> str:
    """An ``input [...]`` / ``output [...]`` block.

    In a batching model Triton adds the batch axis itself; a non-batching step states the
    variable number of windows as a leading -1 on its per-window tensors.
    """
    rows = []
    for t in tensors:
        dims = t.dims if batched or not _has_rows(t) else (-1, *t.dims)
        rows.append(f'  {{ name: "{t.name}" data_type: TYPE_{t.dtype} dims: [ {_dims(dims)} ] }}')
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _has_rows(t: TensorSpec) -> bool:
    """Per-window tensors carry a row axis; per-video flags and results do not."""
    return t.name not in ("VIDEO", "FACE_FOUND", "DURATION_S", "VERDICT", "FAKE_PROBABILITY", "CONFIDENCE")


def _step_tensors(model: ModelConfig, pre: PreprocessConfig) -> dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """Inputs and outputs of the two non-batching Python steps, per window where they have rows."""
    graphs = graph_specs(model, pre)
    video = TensorSpec("VIDEO", (1,), "STRING")
    per_window = (TensorSpec("WINDOW_START_S", ()), TensorSpec("WINDOW_SPEECH", ()))
    flags = (TensorSpec("FACE_FOUND", (1,), "BOOL"), TensorSpec("DURATION_S", (1,)))
    return {
        "preprocess": (
            (video,),
            graphs["visual_encoder"].inputs + graphs["audio_encoder"].inputs + per_window + flags,
        ),
        "decision": (
            graphs["fusion_classifier"].outputs + (per_window[1], flags[0]),
            (TensorSpec("VERDICT", (1,), "STRING"), TensorSpec("FAKE_PROBABILITY", (1,)), TensorSpec("CONFIDENCE", (1,))),
        ),
    }


def _python_step(name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], instances: int) -> str:
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        + _tensors("input", inputs, False)
        + _tensors("output", outputs, False)
        + f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
    )


def _graph_step(name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], profile: str, pre: PreprocessConfig) -> str:
    head = f'name: "{name}"\n'
    head += 'backend: "python"\n' if profile == "cpu" else 'platform: "onnxruntime_onnx"\n'
    text = (
        head
        + f"max_batch_size: {pre.max_windows}\n"
        + _tensors("input", inputs, True)
        + _tensors("output", outputs, True)
        + f"dynamic_batching {{ max_queue_delay_microseconds: {BATCH_DELAY_US} }}\n"
    )
    if profile == "cpu":
        return text + (
            "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
            'parameters { key: "intra_op_threads" value: { string_value: "2" } }\n'
        )
    return text + (
        "instance_group [ { count: 1 kind: KIND_GPU } ]\n"
        "optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
        '  name: "tensorrt"\n'
        '  parameters { key: "precision_mode" value: "FP16" }\n'
        '  parameters { key: "max_workspace_size_bytes" value: "2147483648" }\n'
        '  parameters { key: "trt_engine_cache_enable" value: "1" }\n'
        '  parameters { key: "trt_engine_cache_path" value: "/engines" }\n'
        "} ] } }\n"
    )


def _ensemble(model: ModelConfig, pre: PreprocessConfig) -> str:
    graphs = graph_specs(model, pre)
    steps = _step_tensors(model, pre)
    order = [
        ("preprocess", steps["preprocess"]),
        *((name, (g.inputs, g.outputs)) for name, g in graphs.items()),
        ("decision", steps["decision"]),
    ]
    blocks = []
    for name, (inputs, outputs) in order:
        maps = "".join(f'      input_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in inputs)
        maps += "".join(f'      output_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in outputs)
        blocks.append(f'    {{\n      model_name: "{name}"\n      model_version: -1\n{maps}    }}')
    pre_out = {t.name: t for t in steps["preprocess"][1]}
    results = (
        *steps["decision"][1],
        graphs["fusion_classifier"].outputs[0],
        pre_out["WINDOW_START_S"],
        pre_out["WINDOW_SPEECH"],
        pre_out["FACE_FOUND"],
        pre_out["DURATION_S"],
    )
    return (
        f'name: "{ENSEMBLE}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
        + _tensors("input", steps["preprocess"][0], False)
        + _tensors("output", results, False)
        + "ensemble_scheduling {\n  step [\n" + ",\n".join(blocks) + "\n  ]\n}\n"
    )


def repository_configs(profile: str, model: ModelConfig, pre: PreprocessConfig = DEFAULT_CONFIG) -> dict[str, str]:
    """``config.pbtxt`` text of every model of the repository, keyed by model name."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    steps = _step_tensors(model, pre)
    configs = {ENSEMBLE: _ensemble(model, pre)}
    configs["preprocess"] = _python_step("preprocess", *steps["preprocess"], instances=2)
    for name, graph in graph_specs(model, pre).items():
        configs[name] = _graph_step(name, graph.inputs, graph.outputs, profile, pre)
    configs["decision"] = _python_step("decision", *steps["decision"], instances=1)
    return configs


def build_repository(profile: str, model: ModelConfig, onnx_dir: Path, out: Path) -> Path:
    """A ready-to-serve repository in ``out``: configs, Python steps and the ONNX graphs."""
    if out.exists():
        shutil.rmtree(out)
    graphs = graph_specs(model, DEFAULT_CONFIG)
    for name, config in repository_configs(profile, model).items():
        version = out / name / "1"
        version.mkdir(parents=True)
        (out / name / "config.pbtxt").write_text(config)
        if name in PYTHON_STEPS or (profile == "cpu" and name in graphs):
            shutil.copy(SOURCE / name / "1" / "model.py", version / "model.py")
        if name in graphs:
            graph = onnx_dir / f"{name}.onnx"
            if not graph.exists():
                raise FileNotFoundError(f"{graph} is missing: run python -m export.onnx_export first")
            shutil.copy(graph, version / "model.onnx")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="cpu")
    parser.add_argument("--model", choices=sorted(MODEL_CONFIGS), default="tiny", help="model config of the graphs")
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"))
    parser.add_argument("--out", type=Path, help="default: build/model_repository/<profile>")
    parser.add_argument("--write-source-configs", action="store_true", help="refresh the committed cpu configs")
    args = parser.parse_args()
    model = MODEL_CONFIGS[args.model]
    if args.write_source_configs:
        for name, config in repository_configs("cpu", model).items():
            (SOURCE / name / "config.pbtxt").write_text(config)
        return
    out = build_repository(args.profile, model, args.onnx, args.out or Path("build/model_repository") / args.profile)
    print(out)


if __name__ == "__main__":
    main()
