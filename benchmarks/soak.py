"""Soak: perf_analyzer at saturation for minutes; failed requests and memory growth after warm-up.

    python -m benchmarks.soak --minutes 10                # its own server on model_repository (make repository)
    python -m benchmarks.soak --minutes 10 --concurrency 4 --video samples/talking_head.mp4

The server is started here (``LocalTriton``, closed by default), so its operator key is known:
perf_analyzer runs over HTTP with that header (2.51 sends none over gRPC) for the whole duration,
in windows of a third of it, while the memory of the server and its stubs (PSS, so the shared
memory regions count once) is sampled every few seconds. Failed requests are the server's own
count for ``sync_defense`` (its statistics) over the run. Passes with 0 failed requests and
memory growth from minute 2 to the end under ``--max-growth`` (10 %). Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import tritonclient.http as httpclient

from benchmarks.perf_analyzer import perf_analyzer_environment, perf_analyzer_executable, pinned_models, write_input_data
from devtools.local_triton import ADMIN_HEADER, PROJECT_ROOT, LocalTriton, free_port
from sync_defense import contract as c
from sync_defense.serving.watchdog import stub_processes

WARM_UP_S = 120.0  # growth is measured from here: caches, arenas and shared memory have settled by then
SAMPLE_S = 5.0


def tree_pss_mib(server_pid: int) -> float:
    """PSS of the server and its Python-backend stubs (shared pages split among them, /dev/shm counted once)."""
    total_kib = 0
    for pid in (server_pid, *stub_processes(server_pid)):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # exited between listing and reading
            continue
        total_kib += next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
    return total_kib / 1024


def ensemble_counts(server: LocalTriton) -> tuple[int, int]:
    """``(successes, failures)`` of ``sync_defense`` since the server started (its statistics API)."""
    with httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}") as http:
        stats = http.get_inference_statistics(c.ENSEMBLE, headers=server.admin_headers())["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]), int(stats["fail"]["count"])


@dataclass(frozen=True)
class SoakResult:
    minutes: float
    concurrency: int
    requests: int
    failed: int
    throughput_per_s: float
    pss_mib_at_warm_up: float
    pss_mib_at_end: float
    pss_mib_peak: float
    perf_analyzer_exit: int

    @property
    def growth(self) -> float:
        return self.pss_mib_at_end / self.pss_mib_at_warm_up - 1.0


def soak(server: LocalTriton, video: Path, minutes: float, concurrency: int, workdir: Path) -> SoakResult:
    """perf_analyzer at ``concurrency`` for ``minutes`` against a running ``server``, memory sampled meanwhile."""
    exe = perf_analyzer_executable()
    data = write_input_data(video, workdir / "soak_input.json")
    window_ms = int(minutes * 60_000 / 3)
    command = [  # three windows that always count as stable: one run of exactly ``minutes``
        exe, *pinned_models(), "-u", f"127.0.0.1:{server.http_port}", "-i", "http", "--input-data", str(data),
        "-H", f"{ADMIN_HEADER}:{server.admin_key}", "--concurrency-range", str(concurrency),
        "--measurement-mode", "time_windows", "--measurement-interval", str(window_ms), "--stability-percentage", "999",
        "--max-trials", "3", "-f", str(workdir / "soak.csv"),
    ]
    before = ensemble_counts(server)
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    load = subprocess.Popen(command, stdout=(workdir / "perf_analyzer.log").open("w"), stderr=subprocess.STDOUT,
                            env=perf_analyzer_environment())
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            samples.append((time.monotonic() - started, tree_pss_mib(server.process.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    exit_code = load.wait(minutes * 60 * 2 + 300)
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - started
    after = ensemble_counts(server)
    settled = [pss for t, pss in samples if t >= min(WARM_UP_S, elapsed / 2)]
    requests = (after[0] - before[0]) + (after[1] - before[1])
    return SoakResult(
        minutes=round(elapsed / 60, 2), concurrency=concurrency, requests=requests, failed=after[1] - before[1],
        throughput_per_s=round(requests / elapsed, 3), pss_mib_at_warm_up=round(settled[0], 1),
        pss_mib_at_end=round(settled[-1], 1), pss_mib_peak=round(max(p for _, p in samples), 1), perf_analyzer_exit=exit_code,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4, help="uploads in flight (saturation: more than the 2 preprocess instances)")
    parser.add_argument("--video", type=Path, default=PROJECT_ROOT / "samples" / "talking_head.mp4")
    parser.add_argument("--repository", type=Path, default=PROJECT_ROOT / "model_repository", help="a built repository (make repository)")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed PSS growth from minute 2 to the end")
    parser.add_argument("--workdir", type=Path, default=PROJECT_ROOT / "build" / "soak")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    server = LocalTriton(args.repository, free_port(), free_port(), free_port(), workdir=args.workdir / "server")
    with server:
        result = soak(server, args.video, args.minutes, args.concurrency, args.workdir)
    passed = result.failed == 0 and result.perf_analyzer_exit == 0 and result.growth < args.max_growth
    print(json.dumps({**asdict(result), "growth": round(result.growth, 4), "passed": passed}))
    print(f"{result.requests} requests in {result.minutes} min at concurrency {result.concurrency} "
          f"({result.throughput_per_s} videos/s): {result.failed} failed; PSS {result.pss_mib_at_warm_up} MiB after warm-up, "
          f"{result.pss_mib_at_end} MiB at the end ({100 * result.growth:+.1f} %), peak {result.pss_mib_peak} MiB")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
