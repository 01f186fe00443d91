"""The three graphs' speed per batch: PyTorch eager and ONNX Runtime, FP32 and FP16, `tiny` and `base`.

    python -m benchmarks.graph_speed                                   # here: CPU, FP32
    python -m benchmarks.graph_speed --device cuda --configs tiny base # a GPU node: adds FP16 and TensorRT

The GPU check the performance issue asks for, as one prepared command: on a GPU machine it times
each graph of both model sizes at batches 1-64 in PyTorch (FP32, and FP16 with ``.half()``) and in
ONNX Runtime (the CUDA provider in FP32; the TensorRT provider in FP16 where that provider is
installed), and prints one JSON line per measurement plus the GPU's name, then a table. Weights are
a fixed-seed initialisation: speed does not depend on them. Each figure is the median of
``--repeats`` timed calls after ``--warmup`` untimed ones, synchronised on the GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import torch

from sync_defense.contract import graph_specs
from sync_defense.export.onnx_export import export_graph
from sync_defense.export.parity import random_inputs
from sync_defense.model.checkpoint import init_model
from sync_defense.model.network import graph_modules
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG


def median_ms(run: Callable[..., object], args: tuple, warmup: int, repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``run(*args)`` in milliseconds."""
    for _ in range(warmup):
        run(*args)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(*args)
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def ort_providers(device: str) -> dict[str, list]:
    """Precision -> the ONNX Runtime providers that run it on ``device`` (those installed)."""
    available = ort.get_available_providers()
    if device == "cpu":
        return {"fp32": ["CPUExecutionProvider"]}
    if "CUDAExecutionProvider" not in available:
        return {}  # a CPU-only ONNX Runtime beside a GPU (the lent machine's): its CPU figures are not the GPU's
    runs = {"fp32": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    if "TensorrtExecutionProvider" in available:
        runs["fp16"] = [("TensorrtExecutionProvider", {"trt_fp16_enable": True}), "CUDAExecutionProvider"]
    return runs


def row(config: str, graph: str, runtime: str, precision: str, batch: int, ms: float) -> dict:
    return {"config": config, "graph": graph, "runtime": runtime, "precision": precision, "batch": batch, "ms": round(ms, 3)}


def time_graphs(config: str, device: str, batches: list[int], warmup: int, repeats: int, workdir: Path) -> list[dict]:
    model = init_model(config)
    specs = graph_specs(DEFAULT_CONFIG, model.config.d_model)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    for name, module in graph_modules(model).items():
        path = workdir / f"{config}-{name}.onnx"
        runs = ort_providers(device)
        if runs:
            export_graph(module, specs[name], path, max(batches))
        sessions = {p: onnx_session(path, providers=providers) for p, providers in runs.items()}
        for batch in batches:
            feeds = random_inputs(specs[name], batch)
            for precision in ("fp32", "fp16") if cuda else ("fp32",):
                dtype = torch.float16 if precision == "fp16" else torch.float32
                net = module.to(device=device, dtype=dtype).eval()
                inputs = tuple(torch.from_numpy(v).to(device=device, dtype=dtype) for v in feeds.values())
                with torch.inference_mode():
                    rows.append(row(config, name, "pytorch", precision, batch, median_ms(net, inputs, warmup, repeats, sync)))
            for precision, sess in sessions.items():
                ms = median_ms(sess.run, (None, feeds), warmup, repeats, sync)
                rows.append(row(config, name, f"onnxruntime ({sess.get_providers()[0]})", precision, batch, ms))
        module.to(device="cpu", dtype=torch.float32)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| config | graph | runtime | precision | batch | ms per batch | windows/s |", "|---|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['config']} | {r['graph']} | {r['runtime']} | {r['precision']} | {r['batch']} | {r['ms']:.2f} | "
              f"{1000 * r['batch'] / r['ms']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny"], choices=["tiny", "base"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 16, 32, 64])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(json.dumps({"device": where, "torch": torch.__version__, "onnxruntime": ort.__version__,
                      "providers": ort.get_available_providers()}), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            for measured in time_graphs(config, args.device, args.batches, args.warmup, args.repeats, Path(workdir)):
                print(json.dumps(measured), flush=True)
                rows.append(measured)
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": where, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
