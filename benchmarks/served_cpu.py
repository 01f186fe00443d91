"""CPU-seconds per upload through a running server, model by model, read from its processes.

    python -m benchmarks.served_cpu --url 127.0.0.1:8001 --repository model_repository \
        build/perf/videos/talking_640x480_10s.mp4 [--uploads 10]

``benchmarks.cpu_budget`` adds up the parts of the served path timed alone in one process; this
reads what the server itself spent: the CPU time (user + system) of ``tritonserver`` and of each
model's Python-backend processes (their command line names ``<repository>/<model>/1/model.py``),
before and after ``--uploads`` uploads sent one at a time, divided by the uploads. On a CPU node the
graphs run in Python-backend processes too, so every row is CPU. On a GPU node the graphs run on
the GPU and the rows of the Python steps and the server are what the cores pay: the
``steps and server`` line is that figure for a repository whose face models are graphs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from sync_defense import contract as c
from sync_defense.client import SyncDefenseClient

SERVER = "tritonserver"


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` fields after the command name (which may hold spaces): [state, ppid, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def server_processes(repository: Path) -> dict[str, list[int]]:
    """The pids serving ``repository``, by model (``tritonserver`` for the server itself). Linux: read from /proc."""
    root = str(repository.resolve())
    by_model: dict[str, list[int]] = defaultdict(list)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone, or not ours
        script = next((a for a in args if a.startswith(root + "/") and a.endswith("/model.py")), None)
        if script is not None:
            by_model[Path(script).parent.parent.name].append(int(proc.name))
            parent = int(_stat(int(proc.name))[1])
            if parent not in by_model[SERVER]:
                by_model[SERVER].append(parent)
    if not by_model:
        raise SystemExit(f"no server process serves {root}: start one (python -m devtools.local_triton up --repository ...)")
    return by_model


def cpu_seconds(processes: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds of each group's processes (their threads included)."""
    tick = os.sysconf("SC_CLK_TCK")
    return {model: sum((int(_stat(pid)[11]) + int(_stat(pid)[12])) / tick for pid in pids) for model, pids in processes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--url", default="127.0.0.1:8001", help="the server's gRPC address")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="the repository it serves")
    parser.add_argument("--uploads", type=int, default=10)
    args = parser.parse_args()
    processes = server_processes(args.repository)
    client = SyncDefenseClient(args.url, "grpc")
    data = args.video.read_bytes()
    client.detect(data)  # warm: the first upload pays for lazy imports and caches
    before = cpu_seconds(processes)
    latencies = []
    for _ in range(args.uploads):
        start = time.perf_counter()
        client.detect(data, name=args.video.name)
        latencies.append(time.perf_counter() - start)
    after = cpu_seconds(processes)
    per_upload = {m: (after[m] - before[m]) / args.uploads for m in after}
    graphs = set(c.GRAPHS) | set(c.FACE_GRAPHS)
    print(f"{args.video.name} x {args.uploads} through {args.url} ({args.repository}); "
          f"latency p50 {statistics.median(latencies):.2f} s, one upload at a time")
    print("| process | CPU s per upload |\n|---|---:|")
    for model, seconds in sorted(per_upload.items(), key=lambda kv: -kv[1]):
        print(f"| {model}{' (graph)' if model in graphs else ''} | {seconds:.3f} |")
    print(f"| **all** | **{sum(per_upload.values()):.3f}** |")
    print(f"| steps and server (the graphs excluded) | {sum(s for m, s in per_upload.items() if m not in graphs):.3f} |")


if __name__ == "__main__":
    main()
