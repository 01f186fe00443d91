"""Load-test the ``sync_defense`` ensemble with NVIDIA's perf_analyzer and a real video as input.

    python -m benchmarks.perf_analyzer --video samples/talking_head.mp4 --url 127.0.0.1:8001

Writes perf_analyzer's JSON input file (the video base64-encoded as the ``VIDEO`` BYTES tensor),
runs perf_analyzer over gRPC and prints its report: throughput, latency percentiles, and the
per-step breakdown of the ensemble's composing models.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sync_defense import contract as c


def write_input_data(video: Path, out: Path) -> Path:
    """perf_analyzer ``--input-data`` JSON holding one real video.

    ``b64`` carries the tensor's raw bytes; a BYTES element is serialised as a 4-byte
    little-endian length followed by the data, as on the wire.
    """
    data = video.read_bytes()
    tensor = struct.pack("<I", len(data)) + data
    payload = {"data": [{c.VIDEO: {"b64": base64.b64encode(tensor).decode()}}]}
    out.write_text(json.dumps(payload))
    return out


def perf_analyzer_environment() -> dict[str, str]:
    """perf_analyzer links libcudart even for CPU-only runs; the pip CUDA runtime provides it."""
    import nvidia.cuda_runtime

    lib = Path(next(iter(nvidia.cuda_runtime.__path__))) / "lib"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(lib), env.get("LD_LIBRARY_PATH")) if p)
    return env


def perf_analyzer_executable() -> str:
    """The perf_analyzer of this environment (tritonclient's wheel puts it beside the interpreter), else on PATH."""
    exe = shutil.which("perf_analyzer", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if exe is None:
        raise RuntimeError("perf_analyzer not found: pip install 'tritonclient[all]==2.51.0'")
    return exe


def pinned_models(composing: tuple[str, ...] = ()) -> list[str]:
    """perf_analyzer's model arguments: the ensemble and the models its steps call by BLS, each at
    ``contract.MODEL_VERSION``. Unpinned, perf_analyzer 2.51 guesses a composing model's version from
    whose queue count rose in a window, and a window in which one had none stops the run."""
    pinned = ["-m", c.ENSEMBLE, "-x", str(c.MODEL_VERSION)]
    if composing:  # named so that their statistics are reported too
        pinned += ["--bls-composing-models", ",".join(f"{m}:{c.MODEL_VERSION}" for m in composing)]
    return pinned


@dataclass(frozen=True)
class PerfResult:
    concurrency: int
    throughput_per_s: float
    p50_ms: float
    p99_ms: float
    report: str  # perf_analyzer's own text output


def run_perf_analyzer(
    video: Path, url: str, workdir: Path, concurrency: int = 1, requests_per_window: int = 4, max_trials: int = 6,
    composing: tuple[str, ...] = (*c.GRAPHS, c.PHONES),
) -> PerfResult:
    """One perf_analyzer run at a fixed concurrency; windows of ``requests_per_window`` requests. ``composing``: the
    models the steps call by BLS, reported per model (add ``c.FACE_GRAPHS`` where ``preprocess`` calls them)."""
    exe = perf_analyzer_executable()
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_input_data(video, workdir / "perf_input.json")
    csv_path = workdir / "perf.csv"
    command = [
        exe, *pinned_models(composing), "-u", url, "-i", "grpc", "--input-data", str(data),
        "--concurrency-range", str(concurrency), "--measurement-mode", "count_windows",
        "--measurement-request-count", str(requests_per_window), "--max-trials", str(max_trials),
        "--stability-percentage", "100", "--percentile", "99", "-f", str(csv_path), "--verbose-csv",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=perf_analyzer_environment(), timeout=900)
    if done.returncode != 0 and not csv_path.exists():
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    with csv_path.open() as f:
        row = next(csv.DictReader(f))
    return PerfResult(
        concurrency=int(row["Concurrency"]),
        throughput_per_s=float(row["Inferences/Second"]),
        p50_ms=float(row["p50 latency"]) / 1000.0,
        p99_ms=float(row["p99 latency"]) / 1000.0,
        report=done.stdout,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=Path("samples/talking_head.mp4"))
    parser.add_argument("--url", default="127.0.0.1:8001", help="gRPC HOST:PORT")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=8, help="requests per measurement window")
    parser.add_argument("--workdir", type=Path, default=Path("build/perf"))
    parser.add_argument("--face-graphs", action="store_true", help="the server's preprocess calls the face graphs (face_models: graphs)")
    args = parser.parse_args()
    composing = (*c.GRAPHS, c.PHONES) + (c.FACE_GRAPHS if args.face_graphs else ())
    for concurrency in args.concurrency:
        result = run_perf_analyzer(args.video, args.url, args.workdir, concurrency, args.requests, composing=composing)
        print(result.report)
        print(
            f"concurrency {result.concurrency}: {result.throughput_per_s:.2f} videos/s, "
            f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms"
        )


if __name__ == "__main__":
    main()
