"""Generate the Triton model repository for a profile from one description of the pipeline.

    python -m export.model_repository --profile cpu --onnx build/onnx --out build/model_repository/cpu

The ensemble is ``preprocess -> score -> decision``; ``score`` (Python BLS) sends the upload's
pairs to the three graphs in chunks of at most ``max_batch``. Both profiles share these steps and
differ only in how the three graphs run: ``cpu`` runs them in ONNX Runtime inside Python-backend models (the CPU server
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
# Python steps and their instance counts: preprocessing is the slow step (decoding, faces, VAD), so
# two uploads are prepared at once; scoring mostly waits on the graphs; the decision is numpy.
STEP_INSTANCES = {"preprocess": 2, "score": 2, "decision": 1}
BATCH_DELAY_US = 2000


def _dims(dims: Iterable[int]) -> str:
    return ", ".join(str(d) for d in dims)


def _tensors(kind: str, tensors: Iterable[TensorSpec]) -> str:
    """An ``input [...]`` / ``output [...]`` block (a batching model's batch axis is Triton's)."""
    rows = [f'  {{ name: "{t.name}" data_type: TYPE_{t.dtype} dims: [ {_dims(t.dims)} ] }}' for t in tensors]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _step_tensors(pre: PreprocessConfig) -> dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """Inputs and outputs of the three Python steps of the ensemble (none batches: one upload each)."""
    video = TensorSpec("VIDEO", (1,), "STRING")
    crops = TensorSpec("MOUTH_CROPS", (-1, pre.clip_frames, pre.crop_size, pre.crop_size, 3), "UINT8")
    mel = TensorSpec("MEL", (pre.n_mels, -1))
    windows = tuple(TensorSpec(n, (-1,), t) for n, t in (
        ("WINDOW_TRACK", "INT32"), ("WINDOW_START", "INT32"), ("WINDOW_SPEECH", "FP32"), ("WINDOW_MOTION", "FP32")))
    pairs = (TensorSpec("PAIR_WINDOW", (-1,), "INT32"), TensorSpec("PAIR_SHIFT", (-1,), "INT32"))
    info = TensorSpec("VIDEO_INFO", (1,), "STRING")
    probability = TensorSpec("PAIR_FAKE_PROBABILITY", (-1,))
    return {
        "preprocess": ((video,), (crops, mel, *windows, *pairs, info)),
        "score": ((crops, mel, windows[1], *pairs), (probability,)),
        "decision": (
            (probability, *pairs, *windows, info),
            (TensorSpec("VERDICT", (1,), "STRING"), TensorSpec("FAKE_PROBABILITY", (1,)), TensorSpec("CONFIDENCE", (1,)),
             TensorSpec("RESULT", (1,), "STRING")),
        ),
    }


def _python_step(name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], instances: int) -> str:
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        + _tensors("input", inputs)
        + _tensors("output", outputs)
        + f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
    )


def _graph_step(name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], profile: str, pre: PreprocessConfig) -> str:
    head = f'name: "{name}"\n'
    head += 'backend: "python"\n' if profile == "cpu" else 'platform: "onnxruntime_onnx"\n'
    text = (
        head
        + f"max_batch_size: {pre.max_batch}\n"
        + _tensors("input", inputs)
        + _tensors("output", outputs)
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


def _ensemble(pre: PreprocessConfig) -> str:
    """preprocess -> score -> decision, every tensor passed on under its own name."""
    steps = _step_tensors(pre)
    blocks = []
    for name, (inputs, outputs) in steps.items():
        maps = "".join(f'      input_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in inputs)
        maps += "".join(f'      output_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in outputs)
        blocks.append(f'    {{\n      model_name: "{name}"\n      model_version: -1\n{maps}    }}')
    return (
        f'name: "{ENSEMBLE}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
        + _tensors("input", steps["preprocess"][0])
        + _tensors("output", steps["decision"][1])
        + "ensemble_scheduling {\n  step [\n" + ",\n".join(blocks) + "\n  ]\n}\n"
    )


def repository_configs(profile: str, model: ModelConfig, pre: PreprocessConfig = DEFAULT_CONFIG) -> dict[str, str]:
    """``config.pbtxt`` text of every model of the repository, keyed by model name."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    steps = _step_tensors(pre)
    configs = {ENSEMBLE: _ensemble(pre)}
    for name, instances in STEP_INSTANCES.items():
        configs[name] = _python_step(name, *steps[name], instances=instances)
    for name, graph in graph_specs(model, pre).items():
        configs[name] = _graph_step(name, graph.inputs, graph.outputs, profile, pre)
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
        if name in STEP_INSTANCES or (profile == "cpu" and name in graphs):
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
