"""BlazeFace and the attention mesh per batch: ONNX Runtime, TensorRT and PyTorch (FP32, and FP16 on a GPU).

    python -m benchmarks.face_graph_speed --onnx build/onnx [--repository build/model_repository/gpu] [--out rows.json]
    python -m benchmarks.face_graph_speed --save-feeds build/lent/face_feeds.npz          # here, for the lent GPU machine
    python -m benchmarks.face_graph_speed --feeds build/lent/face_feeds.npz --tflite build/lent   # there

The face graphs' part of the GPU check (``deploy/gpu_check.sh``), beside ``benchmarks.graph_speed`` for the
encoders. The inputs are the sample video's real frames and faces (``tensorrt_engines.face_feeds``), or the
first ``SAVED_ROWS`` of them saved by ``--save-feeds`` (for a machine without PyAV or MediaPipe), repeated to
each ``--batches`` size; each figure is the median of ``--repeats`` calls after ``--warmup``, every call moving
its batch from host memory and its outputs back, as a served request does. Runtimes, each where it is there:

- ONNX Runtime on the graphs in ``--onnx`` (CPU on one thread as served, and CUDA);
- TensorRT on the FP32 plans that ``sync_defense.export.tensorrt_engines`` installed in ``--repository`` (each
  call also allocates and frees its device buffers, so its figure is an upper bound);
- PyTorch on the modules ``export.tflite_graphs`` builds from the mediapipe wheel's ``.tflite`` files (or the
  copies in ``--tflite``): the weights the graphs hold, FP32, and on a GPU FP16 too (``--precisions``). The
  FP16 rows also give the largest difference from FP32 on the real inputs (model pixels for the mesh's
  points, logits for the detector) and the values that are not finite: whether half precision would keep
  the sub-pixel lip positions the lip test reads.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.graph_speed import median_ms, row, table
from sync_defense import contract as c
from sync_defense.artifacts import SAMPLE_VIDEO
from sync_defense.export.tflite_graphs import face_module
from sync_defense.onnx_session import onnx_session

CPU_PARAMETERS = {"intra_op_threads": "1", "allow_spinning": "0"}  # as the CPU profile serves a graph
SAVED_ROWS = 16  # real rows per graph kept by --save-feeds (float16: 3.5 MB each, small enough to carry)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def torch_runner(module: torch.nn.Module, device: str, dtype: torch.dtype) -> Runner:
    """Inputs from host memory to ``device`` at ``dtype``, outputs back to host memory as float32."""
    module = module.to(device=device, dtype=dtype)

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = module(torch.from_numpy(feed[c.IMAGE]).to(device=device, dtype=dtype))
        return [o.float().cpu().numpy() for o in outputs]

    return run


def runners(onnx_dir: Path | None, repository: Path | None, tflite_dir: Path | None, device: str,
            precisions: tuple[str, ...]) -> dict[tuple[str, str], Runner]:
    """(graph, runtime) -> a callable from feeds to outputs, for every runtime there is here."""
    found: dict[tuple[str, str], Runner] = {}
    for name in c.FACE_GRAPHS:
        path = onnx_dir / f"{name}.onnx" if onnx_dir else None
        if path and path.exists():
            cpu = onnx_session(path, CPU_PARAMETERS)
            found[(name, "onnxruntime CPU, 1 thread")] = lambda feed, s=cpu: s.run(None, feed)
            if "CUDAExecutionProvider" in ort.get_available_providers():
                cuda = onnx_session(path, providers=["CUDAExecutionProvider"])
                found[(name, "onnxruntime CUDA")] = lambda feed, s=cuda: s.run(None, feed)
        if repository:
            from sync_defense.export import tensorrt_engines as te  # needs Triton's protobufs: only with a repository

            plan = repository / name / str(c.MODEL_VERSION) / te.PLAN_FILE
            if plan.exists():
                found[(name, "tensorrt plan")] = te.PlanRunner(te.load_tensorrt(), plan.read_bytes())
        for precision in precisions:
            found[(name, f"pytorch {device} {precision}")] = torch_runner(face_module(name, tflite_dir), device, DTYPES[precision])
    return found


def sample_rows() -> dict[str, np.ndarray]:
    """Each face graph's real input rows from the sample video (PyAV and MediaPipe needed)."""
    from sync_defense.export import tensorrt_engines as te

    return {name: feeds[0][c.IMAGE] for name, feeds in te.face_feeds(SAMPLE_VIDEO.read_bytes()).items()}


def difference(run: Runner, reference: Runner, feed: dict[str, np.ndarray]) -> dict[str, float | int]:
    """How far ``run``'s outputs on ``feed`` are from ``reference``'s: the largest absolute difference where
    both are finite, and how many of ``run``'s values are not (a half-precision overflow)."""
    pairs = list(zip(run(feed), reference(feed), strict=True))
    finite = [np.isfinite(a) & np.isfinite(b) for a, b in pairs]
    return {"max_abs_vs_fp32": round(max(float(np.abs(a - b)[ok].max(initial=0.0)) for (a, b), ok in zip(pairs, finite, strict=True)), 4),
            "non_finite": int(sum((~np.isfinite(a)).sum() for a, _ in pairs))}


def time_runners(found: dict[tuple[str, str], Runner], rows: dict[str, np.ndarray], batches: list[int],
                 warmup: int, repeats: int) -> list[dict]:
    """One row per (graph, runtime, batch); a PyTorch FP16 row also carries its largest difference from FP32."""
    out = []
    for (name, runtime), run in found.items():
        real = {c.IMAGE: np.ascontiguousarray(rows[name], np.float32)}
        fp32 = found.get((name, runtime.replace("fp16", "fp32"))) if runtime.endswith("fp16") else None
        for batch in batches:
            feed = {c.IMAGE: np.ascontiguousarray(np.resize(real[c.IMAGE], (batch, *real[c.IMAGE].shape[1:])))}
            out.append(row("face", name, runtime, "fp16" if runtime.endswith("fp16") else "fp32", batch,
                           median_ms(run, (feed,), warmup, repeats, lambda: None)))
            if fp32 is not None:
                out[-1] |= difference(run, fp32, real)
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"), help="folder of face_detector.onnx and face_mesh.onnx")
    parser.add_argument("--repository", type=Path, help="a GPU-profile repository after the engine-build step")
    parser.add_argument("--tflite", type=Path, help="folder holding the two .tflite files (default: the mediapipe wheel's)")
    parser.add_argument("--feeds", type=Path, help="the inputs saved by --save-feeds, instead of the sample video's")
    parser.add_argument("--save-feeds", type=Path, help="write the sample video's inputs here and stop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), help="PyTorch's (default: fp32, and fp16 on cuda)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16, c.MAX_BATCH])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.save_feeds:
        args.save_feeds.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.save_feeds, **{name: rows[:SAVED_ROWS].astype(np.float16) for name, rows in sample_rows().items()})
        print(args.save_feeds)
        return
    if args.feeds:
        with np.load(args.feeds) as saved:
            rows = {name: saved[name].astype(np.float32) for name in c.FACE_GRAPHS}
    else:
        rows = sample_rows()
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(json.dumps({"device": where, "torch": torch.__version__, "onnxruntime": ort.__version__,
                      "providers": ort.get_available_providers()}), flush=True)
    precisions = tuple(args.precisions or (["fp32", "fp16"] if args.device == "cuda" else ["fp32"]))
    found = runners(args.onnx, args.repository, args.tflite, args.device, precisions)
    measured = time_runners(found, rows, args.batches, args.warmup, args.repeats)
    print(table(measured))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": where, "rows": measured}, indent=1))


if __name__ == "__main__":
    main()
