"""BlazeFace and the attention mesh per batch: ONNX Runtime (CPU, and CUDA where installed) against TensorRT.

    python -m benchmarks.face_graph_speed --onnx build/onnx [--repository build/model_repository/gpu] [--out rows.json]

The face graphs' part of the GPU check (``deploy/gpu_check.sh``), beside ``benchmarks.graph_speed`` for the
encoders. The inputs are the sample video's real frames and faces (``tensorrt_engines.face_feeds``) at
each ``--batches`` size; each figure is the median of ``--repeats`` calls after ``--warmup``, every call moving
its batch from host memory and its outputs back, as a served request does. TensorRT runs the FP32 plans that
``sync_defense.export.tensorrt_engines`` installed in ``--repository`` (each call also allocates and frees its
device buffers, so its figure is an upper bound); without them only ONNX Runtime is timed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.graph_speed import median_ms, row, table
from sync_defense import contract as c
from sync_defense.artifacts import SAMPLE_VIDEO
from sync_defense.export import tensorrt_engines as te
from sync_defense.onnx_session import onnx_session

CPU_PARAMETERS = {"intra_op_threads": "1", "allow_spinning": "0"}  # as the CPU profile serves a graph


def runners(onnx_dir: Path, repository: Path | None) -> dict[tuple[str, str], object]:
    """(graph, runtime) -> a callable from feeds to outputs, for every runtime installed here."""
    found: dict[tuple[str, str], object] = {}
    for name in c.FACE_GRAPHS:
        path = onnx_dir / f"{name}.onnx"
        cpu = onnx_session(path, CPU_PARAMETERS)
        found[(name, "onnxruntime CPU, 1 thread")] = lambda feed, s=cpu: s.run(None, feed)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            cuda = onnx_session(path, providers=["CUDAExecutionProvider"])
            found[(name, "onnxruntime CUDA")] = lambda feed, s=cuda: s.run(None, feed)
        plan = repository / name / "1" / te.PLAN_FILE if repository else None
        if plan and plan.exists():
            found[(name, "tensorrt plan")] = te.PlanRunner(te.load_tensorrt(), plan.read_bytes())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"), help="folder of face_detector.onnx and face_mesh.onnx")
    parser.add_argument("--repository", type=Path, help="a GPU-profile repository after the engine-build step")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16, c.MAX_BATCH])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    print(json.dumps({"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}), flush=True)
    largest = {name: feeds[-1][c.IMAGE] for name, feeds in te.face_feeds(SAMPLE_VIDEO.read_bytes()).items()}
    rows = []
    for (name, runtime), run in runners(args.onnx, args.repository).items():
        for batch in args.batches:
            feed = {c.IMAGE: np.ascontiguousarray(np.resize(largest[name], (batch, *largest[name].shape[1:])))}
            rows.append(row("face", name, runtime, "fp32", batch, median_ms(run, (feed,), args.warmup, args.repeats, lambda: None)))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
