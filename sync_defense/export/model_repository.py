"""Generate a Triton model repository for a profile from the ensemble's contract.

    python -m sync_defense.export.model_repository --profile cpu --onnx build/onnx --out model_repository
    python -m sync_defense.export.model_repository --profile gpu --onnx build/onnx --out build/model_repository/gpu

The ensemble is ``preprocess -> score -> decision``; ``score`` (Python BLS) sends the upload's
pairs to the three graphs in chunks of at most ``MAX_BATCH``, and ``preprocess`` sends the speech to
the ``phones`` model (Python) while it crops the mouths. Both profiles share these steps and
differ only in how the three graphs run and how many instances run them: ``cpu`` runs them in ONNX
Runtime inside Python-backend models (the CPU server wheel has no ONNX Runtime backend); ``gpu``
gives them to Triton's ONNX Runtime backend on the GPU (``KIND_GPU``, preferred batch sizes, a
bounded queue, warm-up at the largest batch) and prepares ``cores - 1`` uploads at once. On the
GPU node the engine-build step (``sync_defense.export.tensorrt_engines``) then swaps each graph for
a TensorRT plan built there; ONNX Runtime stays as the fallback.

Everything in a repository is written here: ``config.pbtxt`` from ``sync_defense.contract``, the
one-line ``model.py`` adapters, the graphs and the decision's calibration. The committed
``model_repository/`` is this generator's ``cpu`` output without the build artifacts (graphs,
calibration; git-ignored): ``make repository`` fills them in and the server serves it in place.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable
from pathlib import Path

from sync_defense import contract as c
from sync_defense.artifacts import CALIBRATION, MODEL_REPOSITORY
from sync_defense.model.config import MODEL_CONFIGS, ModelConfig
from sync_defense.onnx_session import SINGLE_THREAD
from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig

SOURCE = MODEL_REPOSITORY
PROFILES = ("cpu", "gpu")
# Where ``preprocess`` runs BlazeFace and the face mesh (its ``face_models`` parameter): ``graphs`` serves them as
# batched graphs of the repository, called through BLS, on the GPU on a GPU node; ``mediapipe`` runs MediaPipe in the
# step's process, which costs less CPU where there is no GPU to give them to (docs/performance.md).
DEFAULT_FACE_MODELS = {"cpu": "mediapipe", "gpu": "graphs"}
# The Python-backend models (``contract.python_specs``) and their adapter classes.
PYTHON_ADAPTERS = {c.PREPROCESS: "PreprocessModel", c.SCORE: "ScoreModel", c.DECISION: "DecisionModel", c.PHONES: "PhonesModel"}
# Instances of each step: preprocessing is the slow step (decoding, faces, VAD), so two uploads are prepared at
# once; scoring mostly waits on the graphs. The phone decoder follows ``preprocess`` (``python_instances``).
STEP_INSTANCES = {c.PREPROCESS: 2, c.SCORE: 2, c.DECISION: 1}
BATCH_DELAY_US = 2000
# Bounded queues with a clear rejection: past ``STEP_QUEUE`` uploads waiting at a step, or one waiting longer than
# ``STEP_QUEUE_TIMEOUT_US``, Triton refuses at once (UNAVAILABLE / 503, which the client retries with backoff until
# its deadline) instead of queueing without bound. A step does not batch (max_batch_size 0): the dynamic batcher
# is only its queue.
STEP_QUEUE, STEP_QUEUE_TIMEOUT_US = 8, 60_000_000
STEP_QUEUE_POLICY = (f"dynamic_batching {{ default_queue_policy {{ timeout_action: REJECT default_timeout_microseconds: "
                     f"{STEP_QUEUE_TIMEOUT_US} max_queue_size: {STEP_QUEUE} }} }}\n")
# CPU profile: each graph runs as two instances of one ONNX Runtime thread, not one instance of two. With one
# instance, a chunk that reaches Triton 2.51's dynamic batcher while the instance is busy often waits out the
# batcher's 500-ms idle wait after the instance is free (seen in the step timelines: a 2-row chunk started
# 500 ms after the graph went idle); a second instance usually leaves a slot free, so the batcher is woken at once.
# Measured before and after with `python -m benchmarks.ab` (docs/performance.md).
CPU_GRAPH_INSTANCES = 2
CPU_GRAPH_PARAMETERS = SINGLE_THREAD  # read by sync_defense.onnx_session.onnx_session in the served step
GRAPH_QUEUE = 128  # chunks waiting per graph (an upload sends up to 23): many uploads' worth, never unbounded
GRAPH_BATCHING = (f"dynamic_batching {{ max_queue_delay_microseconds: {BATCH_DELAY_US} "
                  f"default_queue_policy {{ max_queue_size: {GRAPH_QUEUE} }} }}\n")
# GPU profile: ``score`` sends chunks of MAX_BATCH rows, and an upload's last chunk and its visual batch (one row
# per window) are short; the batcher sends at either size. The TensorRT profiles are tuned at the first.
GPU_PREFERRED_BATCHES = (16, c.MAX_BATCH)
CALIBRATION_FILE = "calibration.json"  # read by sync_defense.serving.triton_models.DecisionModel
# The image's repository is written for this many cores (the CPU request of deploy/k8s/base/deployment.yaml); the
# engine-build step rewrites the Python models' instances for the node's (``sync_defense.export.node_cores``).
DEFAULT_GPU_CORES = 4
GENERATED = "Generated by `python -m sync_defense.export.model_repository`; edit the generator, not this file."


def _dims(dims: Iterable[int]) -> str:
    return ", ".join(str(d) for d in dims)


def _tensors(kind: str, tensors: Iterable[c.TensorSpec]) -> str:
    """An ``input [...]`` / ``output [...]`` block (a batching model's batch axis is Triton's)."""
    rows = [f'  {{ name: "{t.name}" data_type: TYPE_{t.dtype} dims: [ {_dims(t.dims)} ] }}' for t in tensors]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _parameters(values: dict[str, str]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in values.items())


def _python_step(spec: c.ModelSpec, instances: int, parameters: dict[str, str]) -> str:
    return (
        f'name: "{spec.name}"\nbackend: "python"\nmax_batch_size: 0\n'
        + _tensors("input", spec.inputs)
        + _tensors("output", spec.outputs)
        + f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
        + STEP_QUEUE_POLICY
        + _parameters(parameters)
    )


def _graph_step(spec: c.ModelSpec, profile: str) -> str:
    head = f'name: "{spec.name}"\n'
    head += 'backend: "python"\n' if profile == "cpu" else 'platform: "onnxruntime_onnx"\n'
    text = head + f"max_batch_size: {c.MAX_BATCH}\n" + _tensors("input", spec.inputs) + _tensors("output", spec.outputs)
    if profile == "cpu":
        return text + GRAPH_BATCHING + (
            f"instance_group [ {{ count: {CPU_GRAPH_INSTANCES} kind: KIND_CPU }} ]\n" + _parameters(CPU_GRAPH_PARAMETERS)
        )
    return text + (
        f"dynamic_batching {{ preferred_batch_size: [ {_dims(GPU_PREFERRED_BATCHES)} ] "
        f"max_queue_delay_microseconds: {BATCH_DELAY_US} default_queue_policy {{ max_queue_size: {GRAPH_QUEUE} }} }}\n"
        "instance_group [ { count: 1 kind: KIND_GPU } ]\n" + _warmup(spec)
    )


def _warmup(spec: c.ModelSpec) -> str:
    """Random inputs at the largest batch: the first upload does not pay for CUDA/TensorRT initialisation."""
    inputs = "".join(
        f'    inputs {{ key: "{t.name}" value: {{ data_type: TYPE_{t.dtype} dims: [ {_dims(t.dims)} ] random_data: true }} }}\n'
        for t in spec.inputs
    )
    return f'model_warmup [ {{\n    name: "largest_batch"\n    batch_size: {c.MAX_BATCH}\n{inputs}}} ]\n'


def _ensemble(pre: PreprocessConfig) -> str:
    """preprocess -> score -> decision, every tensor passed on under its own name."""
    blocks = []
    for spec in c.step_specs(pre).values():
        maps = "".join(f'      input_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in spec.inputs)
        maps += "".join(f'      output_map {{ key: "{t.name}" value: "{t.name}" }}\n' for t in spec.outputs)
        blocks.append(f'    {{\n      model_name: "{spec.name}"\n      model_version: {c.MODEL_VERSION}\n{maps}    }}')
    ensemble = c.ensemble_spec(pre)
    return (
        f'name: "{ensemble.name}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
        + _tensors("input", ensemble.inputs)
        + _tensors("output", ensemble.outputs)
        + "ensemble_scheduling {\n  step [\n" + ",\n".join(blocks) + "\n  ]\n}\n"
    )


def python_instances(profile: str, cores: int) -> dict[str, int]:
    """Instances of each Python-backend model. On a GPU node the graphs are fast and preprocessing (one core per
    upload) is the bottleneck: one instance per core, one core left for ``score``, ``decision`` and Triton itself.
    The phone decoder has one instance per ``preprocess`` instance, each of which has one upload's speech in flight."""
    counts = dict(STEP_INSTANCES)
    if profile == "gpu":
        counts[c.PREPROCESS] = max(1, cores - 1)
    return counts | {c.PHONES: counts[c.PREPROCESS]}


def _face_models(profile: str, face_models: str | None) -> str:
    chosen = face_models or DEFAULT_FACE_MODELS[profile]
    if chosen not in c.FACE_MODELS:
        raise ValueError(f"face_models must be one of {c.FACE_MODELS}")
    return chosen


def served_graphs(profile: str, face_models: str | None = None) -> tuple[str, ...]:
    """The repository's graphs: the three of ``score``, and the face models where ``preprocess`` calls them."""
    return c.GRAPHS + (c.FACE_GRAPHS if _face_models(profile, face_models) == "graphs" else ())


def python_configs(profile: str, pre: PreprocessConfig = DEFAULT_CONFIG, cores: int = DEFAULT_GPU_CORES,
                   face_models: str | None = None) -> dict[str, str]:
    """``config.pbtxt`` text of the Python-backend models (``contract.python_specs``), with their instance counts."""
    python = c.python_specs(pre)
    parameters = {c.PREPROCESS: {"face_models": _face_models(profile, face_models)}}
    return {name: _python_step(python[name], n, parameters.get(name, {})) for name, n in python_instances(profile, cores).items()}


def repository_configs(
    profile: str, model: ModelConfig, pre: PreprocessConfig = DEFAULT_CONFIG, cores: int = DEFAULT_GPU_CORES,
    face_models: str | None = None,
) -> dict[str, str]:
    """``config.pbtxt`` text of every model of the repository, keyed by model name (``cores``: the GPU node's;
    ``face_models``: where ``preprocess`` runs the face models, ``DEFAULT_FACE_MODELS`` of the profile if None)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    configs = {c.ENSEMBLE: _ensemble(pre), **python_configs(profile, pre, cores, face_models)}
    specs = {**c.graph_specs(pre, model.d_model), **c.face_graph_specs()}
    configs.update({name: _graph_step(specs[name], profile) for name in served_graphs(profile, face_models)})
    return configs


def adapters(profile: str, face_models: str | None = None) -> dict[str, str]:
    """The ``model.py`` of every Python-backend model: a one-line import of its adapter class."""
    shims = {name: f'"""{GENERATED}"""\n\nfrom sync_defense.serving.triton_models import {cls} as TritonPythonModel\n\n'
                   '__all__ = ["TritonPythonModel"]\n' for name, cls in PYTHON_ADAPTERS.items()}
    if profile == "cpu":
        shims.update({name: f'"""{GENERATED}"""\n\nfrom sync_defense.serving.onnx_graph import OnnxGraphModel as TritonPythonModel\n\n'
                            '__all__ = ["TritonPythonModel"]\n' for name in served_graphs(profile, face_models)})
    return shims


def write_sources(out: Path, profile: str, model: ModelConfig, cores: int = DEFAULT_GPU_CORES, face_models: str | None = None) -> None:
    """Configs and adapters, the text part of a repository (what ``model_repository/`` commits)."""
    shims = adapters(profile, face_models)
    for name, config in repository_configs(profile, model, cores=cores, face_models=face_models).items():
        version = out / name / str(c.MODEL_VERSION)
        version.mkdir(parents=True, exist_ok=True)
        (out / name / "config.pbtxt").write_text(config)
        if name in shims:
            (version / "model.py").write_text(shims[name])
        elif name == c.ENSEMBLE:
            (version / ".gitkeep").touch()


def build_repository(
    profile: str, model: ModelConfig, onnx_dir: Path, out: Path, calibration: Path = CALIBRATION, cores: int = DEFAULT_GPU_CORES,
    face_models: str | None = None,
) -> Path:
    """A ready-to-serve repository in ``out``: configs, adapters, the ONNX graphs and the calibration."""
    write_sources(out, profile, model, cores, face_models)
    for name in served_graphs(profile, face_models):
        graph = onnx_dir / f"{name}.onnx"
        if not graph.exists():
            exporter = "tflite_graphs" if name in c.FACE_GRAPHS else "onnx_export"
            raise FileNotFoundError(f"{graph} is missing: run python -m sync_defense.export.{exporter} first")
        shutil.copy(graph, out / name / str(c.MODEL_VERSION) / "model.onnx")
    shutil.copy(calibration, out / c.DECISION / str(c.MODEL_VERSION) / CALIBRATION_FILE)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="cpu")
    parser.add_argument("--model", choices=sorted(MODEL_CONFIGS), default="tiny", help="model config of the graphs")
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"))
    parser.add_argument("--calibration", type=Path, default=CALIBRATION, help="the decision's fitted thresholds")
    parser.add_argument("--out", type=Path, help="default: build/model_repository/<profile>")
    parser.add_argument("--sources-only", action="store_true", help="configs and adapters only (refresh model_repository/)")
    parser.add_argument("--cores", type=int, default=DEFAULT_GPU_CORES, help="gpu: the node's CPU cores (preprocess instances: cores - 1)")
    parser.add_argument("--face-models", choices=c.FACE_MODELS,
                        help="where preprocess runs the face models (default: mediapipe for cpu, graphs for gpu)")
    args = parser.parse_args()
    model = MODEL_CONFIGS[args.model]
    out = args.out or Path("build/model_repository") / args.profile
    if args.sources_only:
        write_sources(out, args.profile, model, args.cores, args.face_models)
    else:
        build_repository(args.profile, model, args.onnx, out, args.calibration, args.cores, args.face_models)
    print(out)


if __name__ == "__main__":
    main()
