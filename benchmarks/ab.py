"""Two model repositories served side by side and loaded in turns: a change measured before and after in one run.

    python -m benchmarks.ab --repositories before=build/perf/before after=model_repository --concurrency 1 2 4

On a shared machine the cores' speed drifts by tens of percent within an hour, so numbers from two
runs cannot be compared; here each round loads one server, then the other, with the same video and
concurrency, and each row reports the medians over the rounds. Both servers stay up (an idle one
costs no CPU); besides latency and throughput, each run records the CPU seconds the server's whole
process tree spent per video, which does not depend on how busy the other cores were.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import ExitStack
from pathlib import Path

from devtools.local_triton import LocalTriton, free_port

from .load_suite import markdown_table
from .loadgen import closed_loop, triton_detector
from .videos import make_videos


def compare(repositories: dict[str, Path], video: Path, concurrency: list[int], rounds: int, requests_per_worker: int,
            workdir: Path) -> list[dict[str, object]]:
    """Median p50 latency, throughput and server CPU per video of each repository at each concurrency."""
    data = video.read_bytes()
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with ExitStack() as stack:
        servers = {}
        for name, repository in repositories.items():
            server = LocalTriton(repository, free_port(), free_port(), free_port(), workdir=workdir / name)
            servers[name] = stack.enter_context(server)
        for server in servers.values():
            triton_detector(f"127.0.0.1:{server.grpc_port}")(data)  # warm-up: first-request costs are not the change's
        for _ in range(rounds):
            for c in concurrency:
                for name, server in servers.items():
                    run = closed_loop(name, lambda s=server: triton_detector(f"127.0.0.1:{s.grpc_port}"), video.stem, data, c,
                                      requests_per_worker, server.process.pid)
                    if run.errors:
                        raise RuntimeError(f"{name} failed: {run.errors[0]}")
                    cpu = run.server_cpu_s_per_video
                    results.setdefault((name, c), []).append((run.percentile_s(50), run.throughput_per_s, cpu))
                    print(f"{name:12s} c={c}: p50 {run.percentile_s(50):.2f} s, {run.throughput_per_s:.3f} videos/s, "
                          f"{cpu:.2f} CPU-s/video", flush=True)
    return [
        {"repository": name, "concurrency": c, "rounds": len(v),
         "p50 s": f"{statistics.median(x[0] for x in v):.2f}", "videos/s": f"{statistics.median(x[1] for x in v):.3f}",
         "server CPU s/video": f"{statistics.median(x[2] for x in v):.2f}"}
        for (name, c), v in sorted(results.items(), key=lambda kv: (kv[0][1], list(repositories).index(kv[0][0])))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", nargs=2, required=True, metavar="NAME=PATH", help="the two repositories to compare")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the benchmark video (benchmarks.videos)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-per-worker", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("build/perf/ab"))
    args = parser.parse_args()
    repositories = {name: Path(path) for name, path in (r.split("=", 1) for r in args.repositories)}
    video = make_videos(args.workdir / "videos", {args.seconds})[args.seconds]
    rows = compare(repositories, video, args.concurrency, args.rounds, args.requests_per_worker, args.workdir)
    print(markdown_table(rows, rows[0].keys()))


if __name__ == "__main__":
    main()
