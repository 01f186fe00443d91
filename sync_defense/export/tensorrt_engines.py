"""TensorRT plans for the served graphs, built on the serving GPU before Triton starts (the engine-build step).

    python -m sync_defense.export.tensorrt_engines --repository /models --cache /engines [--precision fp16|fp32]

A plan only loads in the TensorRT release and on the GPU model that built it, so plans cannot ship in the image:
``deploy/bin/sync-defense-engine-build`` runs this on the node, over a GPU-profile repository that
``sync_defense.export.model_repository`` wrote: the three encoder graphs, and the face graphs (BlazeFace and the
attention mesh, which ``preprocess`` calls through BLS) where the repository serves them. For each graph it

1. keys the plan by the ONNX file's sha256, the TensorRT version, the GPU (name and compute capability), the
   precision and the optimisation profile (batch min 1 / opt = the first preferred batch / max ``MAX_BATCH``,
   the item shape from ``sync_defense.contract``);
2. takes ``<cache>/<graph>-<precision>-<key>.plan`` when it is there, else builds it with TensorRT's Python API
   (FP16 or FP32, a timing cache per TensorRT version and GPU shared by every build), checks it against ONNX
   Runtime's FP32 run of the same graph on the sample video (its windows for the encoders, its frames and the
   faces found in them for the face graphs), and stores it with a JSON record beside it (versions, GPU,
   precision and why, hashes, parity figures);
3. puts the plan into the repository as ``<graph>/1/model.plan`` (with its record) and rewrites that model's
   ``config.pbtxt`` to ``platform: "tensorrt_plan"``, keeping its tensors, batching, instances and warm-up.

The face graphs are always built FP32 with TF32 off, whatever ``--precision`` says for the encoders: the lip
test reads the mesh's lips to a fraction of a pixel, and what FP16 would change in its answers has not been
measured (it needs a GPU). Their parity is an absolute bound in the graphs' own units (``FACE_TOLERANCE``).

``SYNC_DEFENSE_TENSORRT=0`` in the engine-build step leaves the graphs on ONNX Runtime (the fallback).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from types import ModuleType

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sync_defense import contract as c
from sync_defense.artifacts import SAMPLE_VIDEO
from sync_defense.export.parity import (
    ErrorMeasure,
    Feeds,
    absolute_error,
    check_parity,
    onnx_runner,
    parity_batches,
    parity_error,
    real_feeds,
)
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig

PRECISIONS = ("fp16", "fp32")
TENSORRT_RELEASE = "10.5.0"  # the release in nvcr.io/nvidia/tritonserver:24.10-py3 (deploy/Dockerfile checks it)
WORKSPACE_BYTES = 2 << 30
PLAN_FILE = "model.plan"
ONNX_FILE = "model.onnx"
# Parity of a plan against ONNX Runtime FP32 on the same inputs: max |plan - onnx| / max(1, max |onnx|) over every
# output, so an absolute error for the probabilities (0..1; the decision's uncertain band is 0.07 wide) and a
# relative one for the encoders' tokens. FP16 keeps 10 mantissa bits; FP32 builds run with TF32 off.
TOLERANCE = {"fp16": 2e-2, "fp32": 1e-3}
# The face graphs, whatever --precision says: the lip test reads sub-pixel mesh positions, and FP16's effect on its
# answers is not measured.
FACE_PRECISION = "fp32"
FACE_PRECISION_REASON = "face graphs are always FP32 (TF32 off): the lip test reads sub-pixel mesh positions"
# Their parity: max |plan - onnx| in the outputs' own units (parity.absolute_error), pixels of the 192-px model
# square for the boxes and the landmarks, logits for the scores and the face flag. 0.05 px of the mesh's square is
# 0.08 frame px on a 200-px face (its ROI is 1.5x the face), about 0.1 % of the mouth's width; 0.05 on a logit
# moves its probability by at most 0.0125. The encoders' relative measure would divide by the batch's largest
# value (landmarks up to ~190 px, detector logits up to ~350 on the sample), so its bound in pixels would move with
# the batch. FP32 differences of ~1e-6 relative (3.5e-4 on a logit of 350) would sit two orders under it (not
# yet measured on a GPU: deploy/gpu_check.sh records the figures in each plan's JSON).
FACE_TOLERANCE = 5e-2
FACE_FEED_FRAMES = c.MAX_BATCH - 1  # frames of the sample the face graphs are checked on: a batch besides the largest
MISSING = (
    "TensorRT's Python API is not installed: neither `import tensorrt` nor `import tensorrt_bindings` works ({error}). "
    f"Install the bindings of the image's release (pip install tensorrt-cu12-bindings=={TENSORRT_RELEASE}), or set "
    "SYNC_DEFENSE_TENSORRT=0 to keep the graphs on ONNX Runtime."
)


class EngineBuildError(RuntimeError):
    """A plan cannot be built or fails parity; the message says what to do."""


@dataclass(frozen=True)
class Target:
    """What a plan is only valid for: the TensorRT release, the GPU model and the precision it was built with."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.0", "9.0", ...
    precision: str

    @property
    def slug(self) -> str:
        """File-name safe ``trt<version>-<gpu>-sm<cc>``: the timing cache is shared by every plan of one target."""
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu_name.lower()).strip("-")
        return f"trt{self.tensorrt_version}-{gpu}-sm{self.compute_capability.replace('.', '')}"


Profile = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]  # input -> (min, opt, max) shapes


def load_tensorrt() -> ModuleType:
    """TensorRT's Python module: ``tensorrt``, or ``tensorrt_bindings`` as ``tensorrt-cu12-bindings`` names it."""
    try:
        import tensorrt
    except ImportError:
        try:
            import tensorrt_bindings as tensorrt
        except (ImportError, OSError) as error:
            raise EngineBuildError(MISSING.format(error=error)) from error
    return tensorrt


def _check_cuda(code: int, call: str) -> None:
    if code != 0:
        raise EngineBuildError(f"{call} failed with CUDA error {code}")


def gpu_target(tensorrt_version: str, precision: str, index: int = 0) -> Target:
    """The GPU the plans are built on, from the CUDA driver (no CUDA toolkit or torch needed)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        raise EngineBuildError(f"no NVIDIA driver ({error}): TensorRT plans are built on the GPU that serves them") from error
    device, major, minor, name = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.create_string_buffer(256)
    _check_cuda(cuda.cuInit(0), "cuInit")
    _check_cuda(cuda.cuDeviceGet(ctypes.byref(device), index), "cuDeviceGet")
    _check_cuda(cuda.cuDeviceGetName(name, len(name), device), "cuDeviceGetName")
    _check_cuda(cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device), "cuDeviceGetAttribute(major)")
    _check_cuda(cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device), "cuDeviceGetAttribute(minor)")
    return Target(tensorrt_version, name.value.decode(), f"{major.value}.{minor.value}", precision)


def read_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def contract_specs() -> Iterator[c.ModelSpec]:
    """Every graph the contract knows: the encoders at each known model size, and the face graphs."""
    for d_model in sorted({m.d_model for m in MODEL_CONFIGS.values()}):
        yield from c.graph_specs(DEFAULT_CONFIG, d_model).values()
    yield from c.face_graph_specs().values()


def contract_spec(config: mc.ModelConfig) -> c.ModelSpec:
    """The contract's spec of this graph: the one whose tensors the config carries, for any known model size.

    The engine-build step does not know which model the image was built with; the config does, and a config
    that matches no contract spec is refused rather than built into a plan Triton would reject.
    """
    served = [(t.name, mc.DataType.Name(t.data_type), tuple(t.dims)) for t in (*config.input, *config.output)]
    for spec in contract_specs():
        if spec.name == config.name and served == [(t.name, f"TYPE_{t.dtype}", t.dims) for t in (*spec.inputs, *spec.outputs)]:
            return spec
    raise EngineBuildError(f"{config.name}: its config.pbtxt tensors {served} match no graph of sync_defense.contract")


def repository_graphs(repository: Path) -> tuple[str, ...]:
    """The graphs to build: the encoders (always served) and the face graphs where the repository serves them."""
    return c.GRAPHS + tuple(name for name in c.FACE_GRAPHS if (repository / name).is_dir())


def plan_precision(graph: str, requested: str) -> str:
    """The precision a graph's plan is built in: ``requested`` for the encoders, ``FACE_PRECISION`` for the face graphs."""
    return FACE_PRECISION if graph in c.FACE_GRAPHS else requested


def parity_rule(graph: str, precision: str) -> tuple[float, ErrorMeasure]:
    """The tolerance and the error measure a plan of ``graph`` is judged by against ONNX Runtime FP32."""
    return (FACE_TOLERANCE, absolute_error) if graph in c.FACE_GRAPHS else (TOLERANCE[precision], parity_error)


def optimization_profile(spec: c.ModelSpec, opt_batch: int) -> Profile:
    """Batch 1..MAX_BATCH (Triton's max_batch_size), tuned at ``opt_batch``; the item shape is the contract's."""
    if not 1 <= opt_batch <= c.MAX_BATCH:
        raise EngineBuildError(f"optimisation batch {opt_batch} is outside 1..{c.MAX_BATCH}")
    return {t.name: ((1, *t.dims), (opt_batch, *t.dims), (c.MAX_BATCH, *t.dims)) for t in spec.inputs}


def preferred_batch(config: mc.ModelConfig) -> int:
    """The batch the dynamic batcher prefers most often: its smallest preferred size (else the largest batch)."""
    sizes = config.dynamic_batching.preferred_batch_size
    return min(sizes) if sizes else config.max_batch_size


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(onnx_sha256: str, target: Target, profile: Profile) -> str:
    """Changes whenever the plan would: another graph, TensorRT release, GPU model, precision or profile."""
    fields = {"onnx_sha256": onnx_sha256, **asdict(target), "profile": {k: [list(s) for s in v] for k, v in profile.items()}}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CachedPlan:
    plan: Path
    record: Path

    @property
    def valid(self) -> bool:
        """Both files there and the plan the one recorded (a crash mid-copy never passes as a hit)."""
        if not (self.plan.exists() and self.record.exists()):
            return False
        return json.loads(self.record.read_text()).get("plan_sha256") == sha256(self.plan)


def cached_plan(cache: Path, graph: str, target: Target, key: str) -> CachedPlan:
    stem = cache / f"{graph}-{target.precision}-{key}"
    return CachedPlan(stem.with_suffix(".plan"), stem.with_suffix(".json"))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write then rename: pods sharing one cache volume never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def tensorrt_config(config: mc.ModelConfig) -> str:
    """The graph's config served by Triton's TensorRT backend: same tensors, batching, instances and warm-up."""
    plan = mc.ModelConfig()
    plan.CopyFrom(config)
    plan.ClearField("backend")
    plan.platform = "tensorrt_plan"
    plan.default_model_filename = PLAN_FILE
    plan.optimization.ClearField("execution_accelerators")  # ONNX Runtime's; a plan is already TensorRT
    if plan.optimization == mc.ModelOptimizationPolicy():
        plan.ClearField("optimization")
    header = f"# Rewritten by `python -m sync_defense.export.tensorrt_engines`: {PLAN_FILE} is a TensorRT plan built on this GPU.\n"
    return header + text_format.MessageToString(plan)


def install_plan(model_dir: Path, config: mc.ModelConfig, cached: CachedPlan) -> None:
    """The plan and its record into the model's version folder, the config switched to TensorRT, the ONNX gone."""
    version = model_dir / str(c.MODEL_VERSION)
    shutil.copyfile(cached.plan, version / PLAN_FILE)
    shutil.copyfile(cached.record, version / f"{PLAN_FILE}.json")
    (model_dir / "config.pbtxt").write_text(tensorrt_config(config))
    (version / ONNX_FILE).unlink(missing_ok=True)


# --- the TensorRT calls (a GPU and TensorRT needed from here on) ------------------------------------------------


def build_plan(trt: ModuleType, onnx: Path, profile: Profile, precision: str, timing_cache: Path) -> bytes:
    """Parse the ONNX graph and build a serialized plan; the timing cache is read and written back."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    timing = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    optimisation = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        optimisation.set_shape(name, low, opt, high)
    config.add_optimization_profile(optimisation)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT failed to build {onnx} (see its log above)")
    _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


class _CudaRuntime:
    """The few CUDA runtime calls that running a plan needs, through ctypes: the serving image has no torch."""

    def __init__(self) -> None:
        names = ["libcudart.so.12", "libcudart.so", ctypes.util.find_library("cudart")]
        for name in filter(None, names):
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise EngineBuildError("the CUDA runtime (libcudart.so.12) is missing: cannot run the plan for the parity check")
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]

    def alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        _check_cuda(self.lib.cudaMalloc(ctypes.byref(pointer), max(nbytes, 1)), "cudaMalloc")
        return pointer.value

    def to_device(self, array: np.ndarray) -> int:
        pointer = self.alloc(array.nbytes)
        _check_cuda(self.lib.cudaMemcpy(pointer, array.ctypes.data, array.nbytes, 1), "cudaMemcpy host->device")
        return pointer

    def to_host(self, pointer: int, array: np.ndarray) -> None:
        _check_cuda(self.lib.cudaMemcpy(array.ctypes.data, pointer, array.nbytes, 2), "cudaMemcpy device->host")

    def free(self, pointer: int) -> None:
        self.lib.cudaFree(pointer)

    def synchronize(self) -> None:
        _check_cuda(self.lib.cudaDeviceSynchronize(), "cudaDeviceSynchronize")


class PlanRunner:
    """A plan deserialized once, then run at any batch of its profile on the default stream; each call moves its
    inputs and outputs through buffers of its own (``benchmarks.face_graph_speed`` times the calls as they are)."""

    def __init__(self, trt: ModuleType, plan: bytes) -> None:
        self.trt, self.cuda = trt, _CudaRuntime()
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One execution; outputs in the engine's order."""
        trt, engine, context, cuda = self.trt, self.engine, self.context, self.cuda
        pointers, outputs = [], []
        try:
            for name, array in feeds.items():
                array = np.ascontiguousarray(array)
                context.set_input_shape(name, array.shape)
                pointers.append(cuda.to_device(array))
                context.set_tensor_address(name, pointers[-1])
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            for name in names:
                if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                    outputs.append(np.empty(tuple(context.get_tensor_shape(name)), trt.nptype(engine.get_tensor_dtype(name))))
                    pointers.append(cuda.alloc(outputs[-1].nbytes))
                    context.set_tensor_address(name, pointers[-1])
            if not context.execute_async_v3(0):
                raise EngineBuildError("TensorRT failed to run the plan")
            cuda.synchronize()
            for array, pointer in zip(outputs, pointers[len(feeds):], strict=True):
                cuda.to_host(pointer, array)
        finally:
            for pointer in pointers:
                cuda.free(pointer)
        return outputs


# --- parity on real windows ---------------------------------------------------------------------------------------


def plan_parity(trt: ModuleType, job: GraphJob, plan: bytes, feeds: Feeds) -> dict[str, float]:
    """The plan against ONNX Runtime FP32 at each batch of ``feeds``; raises past the graph's tolerance."""
    tolerance, error = parity_rule(job.name, job.precision)
    reports = check_parity(job.name, PlanRunner(trt, plan), onnx_runner(job.onnx), feeds, "real", tolerance, error)
    worst = max(reports, key=lambda r: r.error)
    if not worst.ok:
        advice = "try --precision fp32, or " if job.precision != "fp32" else ""
        raise EngineBuildError(
            f"{job.name}: the {job.precision} plan differs from ONNX Runtime FP32 by {worst.error:.2e} ({error.__name__}) "
            f"on the sample video (tolerance {worst.tolerance:.0e}); {advice}SYNC_DEFENSE_TENSORRT=0 for ONNX Runtime"
        )
    return {f"batch_{r.batch}": r.error for r in reports}


def face_feeds(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> dict[str, Feeds]:
    """The face graphs' inputs from a real video, made as ``preprocess`` makes them: the detector's from the frames
    it detects on (every ``detect_every``-th, at ``detect_width``), the mesh's from the square around each face
    found there (the first ROI ``landmarks.face_landmarks`` meshes); at the video's batch and at MAX_BATCH."""
    from sync_defense.preprocessing import face_graphs, landmarks
    from sync_defense.preprocessing.decode import iter_timeline_frames, to_small

    sampled = (frame for k, frame in iter_timeline_frames(data, cfg) if k % cfg.faces.detect_every == 0)
    frames = [to_small(frame, cfg.faces.detect_width)[0] for frame in islice(sampled, FACE_FEED_FRAMES)]
    rois = [(rgb, landmarks.face_square(box)) for rgb in frames
            for box in landmarks.detect_faces(rgb, cfg.faces.min_score, cfg.faces.detector)]
    if not rois:
        raise EngineBuildError("no face found in the video: the face mesh's plan cannot be checked without one")
    return {
        c.FACE_DETECTOR: parity_batches({c.IMAGE: np.stack([face_graphs.model_input(rgb, c.FACE_INPUT_PX)[0] for rgb in frames])}),
        c.FACE_MESH: parity_batches({c.IMAGE: np.stack([face_graphs.mesh_input(rgb, roi) for rgb, roi in rois])}),
    }


def sample_feeds(job: GraphJob) -> dict[str, Feeds]:
    """The parity inputs of ``job``'s kind of graph (encoders or face graphs) from the sample video."""
    data = SAMPLE_VIDEO.read_bytes()
    if job.name in c.FACE_GRAPHS:
        return face_feeds(data)
    from sync_defense.preprocessing import preprocess_video

    onnx = {name: job.model_dir.parent / name / str(c.MODEL_VERSION) / ONNX_FILE for name in c.GRAPHS}
    return real_feeds(onnx, preprocess_video(data).window_inputs())


# --- the engine-build step -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphJob:
    """One graph of the repository, with everything its plan depends on."""

    name: str
    model_dir: Path
    config: mc.ModelConfig
    onnx: Path
    onnx_sha256: str
    profile: Profile
    precision: str  # plan_precision: what --precision asks for, except for the face graphs

    @classmethod
    def read(cls, repository: Path, name: str, requested_precision: str) -> GraphJob:
        model_dir = repository / name
        config = read_config(model_dir / "config.pbtxt")
        onnx = model_dir / str(c.MODEL_VERSION) / ONNX_FILE
        if not onnx.exists():
            raise EngineBuildError(f"{onnx} is missing: is {repository} a GPU-profile repository (model_repository --profile gpu)?")
        if config.max_batch_size != c.MAX_BATCH:
            raise EngineBuildError(f"{name}: max_batch_size {config.max_batch_size} differs from the contract's {c.MAX_BATCH}")
        profile = optimization_profile(contract_spec(config), preferred_batch(config))
        return cls(name, model_dir, config, onnx, sha256(onnx), profile, plan_precision(name, requested_precision))

    def record(self, target: Target, key: str, plan: bytes, parity: dict[str, float], seconds: float) -> dict:
        """What the JSON beside a plan says: where it is valid, what it came from, how close it is to ONNX."""
        tolerance, error = parity_rule(self.name, self.precision)
        return {
            "graph": self.name, "key": key, **asdict(target),
            "precision_reason": FACE_PRECISION_REASON if self.name in c.FACE_GRAPHS else "--precision",
            "onnx_sha256": self.onnx_sha256, "plan_sha256": hashlib.sha256(plan).hexdigest(),
            "profile": {k: {"min": v[0], "opt": v[1], "max": v[2]} for k, v in self.profile.items()},
            "parity": {"reference": "ONNX Runtime FP32 (CPU), sample video", "measure": error.__name__,
                       "tolerance": tolerance, "max_error": parity},
            "build_seconds": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


Builder = Callable[[GraphJob, Path], tuple[bytes, dict[str, float]]]  # (job, timing cache) -> (plan, parity figures)


def prepare_plans(repository: Path, cache: Path, target: Target, build: Builder) -> dict[str, tuple[CachedPlan, bool]]:
    """Every graph's plan from the cache or, on a miss, from ``build``; nothing is installed until all exist.

    ``target.precision`` is the one asked for; each graph's plan is keyed and built in its ``plan_precision``.
    Returns each graph's cached plan and whether it was a hit. ``build`` is only called on a miss.
    """
    cache.mkdir(parents=True, exist_ok=True)
    plans = {}
    for name in repository_graphs(repository):
        job = GraphJob.read(repository, name, target.precision)
        graph_target = replace(target, precision=job.precision)
        key = cache_key(job.onnx_sha256, graph_target, job.profile)
        cached = cached_plan(cache, name, graph_target, key)
        hit = cached.valid
        if not hit:
            started = time.monotonic()
            plan, parity = build(job, cache / f"timing-{target.slug}.cache")
            _atomic_write(cached.plan, plan)
            record = job.record(graph_target, key, plan, parity, time.monotonic() - started)
            _atomic_write(cached.record, (json.dumps(record, indent=2) + "\n").encode())
        plans[name] = (cached, hit)
    return plans


def install_plans(repository: Path, plans: dict[str, tuple[CachedPlan, bool]]) -> None:
    for name, (cached, _) in plans.items():
        install_plan(repository / name, read_config(repository / name / "config.pbtxt"), cached)


def tensorrt_builder(trt: ModuleType) -> Builder:
    """Build with TensorRT, then check the plan on the sample video before it is cached (the video is processed
    once for each kind of graph, and only if a plan of that kind is missing)."""
    feeds: dict[str, Feeds] = {}

    def build(job: GraphJob, timing_cache: Path) -> tuple[bytes, dict[str, float]]:
        if job.name not in feeds:
            feeds.update(sample_feeds(job))
        print(f"{job.name}: building a {job.precision} TensorRT plan (minutes on first start) ...", flush=True)
        plan = build_plan(trt, job.onnx, job.profile, job.precision, timing_cache)
        return plan, plan_parity(trt, job, plan, feeds[job.name])

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="a GPU-profile model repository (rewritten in place)")
    parser.add_argument("--cache", type=Path, required=True, help="plans and timing caches, kept across starts")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16", help=f"the encoders' (face graphs: {FACE_PRECISION})")
    args = parser.parse_args(argv)
    try:
        trt = load_tensorrt()
        target = gpu_target(trt.__version__, args.precision)
        print(f"TensorRT {target.tensorrt_version} on {target.gpu_name} (compute capability {target.compute_capability}), "
              f"{args.precision} (face graphs {FACE_PRECISION})", flush=True)
        plans = prepare_plans(args.repository, args.cache, target, tensorrt_builder(trt))
        install_plans(args.repository, plans)
    except EngineBuildError as error:
        print(f"tensorrt_engines: {error}", file=sys.stderr)
        return 1
    for name, (cached, hit) in plans.items():
        print(f"{name}: {'cached' if hit else 'built'} {cached.plan.name} -> {args.repository / name / str(c.MODEL_VERSION) / PLAN_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
