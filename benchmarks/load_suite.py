"""The load-test suite: Triton against the seed's FastAPI stack, perf_analyzer sweeps, cost against length.

    python -m benchmarks.load_suite --out build/perf            # full run (about half an hour on 2 cores)
    python -m benchmarks.load_suite --out build/perf --quick    # minutes: the same pieces, smaller

Steps, every result written to ``--out`` as it comes:

1. Videos: the 640x480, 25 fps, H.264 + AAC talking head at 5, 10 and 30 s (``benchmarks.videos``,
   made once) and real-people clips from ``build/realval`` when present.
2. Servers: tritonserver (``LocalTriton``, free ports, the CPU repository built from the served
   checkpoint) unless ``--url``; the FastAPI + PyTorch baseline (``benchmarks.fastapi_baseline``).
3. ``closed_loop.csv``: one Python closed-loop generator (``benchmarks.loadgen``) drives both
   servers with the same videos at each concurrency, Triton and FastAPI alternating so that drift in
   the machine's load hits both; ``verdicts.csv`` compares their answers.
4. ``perf_analyzer/``: NVIDIA perf_analyzer over gRPC and HTTP at each concurrency, its CSV and
   report kept; ``perf_analyzer.csv`` gathers p50/p90/p99 and throughput, ``composing_models.csv``
   the per-model breakdown (the BLS-called graphs and the phone decoder through ``--bls-composing-models``).
5. ``cost_vs_length.csv``: one request at a time per length (5 s .. 10 min), latency and the peak
   PSS of the server's process tree.
6. ``latency_vs_throughput.png`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from devtools.local_triton import ADMIN_HEADER, RESTRICTED, LocalTriton, free_port
from sync_defense import contract as c
from sync_defense.contract import Answer

from .fastapi_baseline import FastAPIServer
from .loadgen import LoadRun, closed_loop, fastapi_detector, triton_detector
from .memory import PeakMemory
from .perf_analyzer import perf_analyzer_environment, perf_analyzer_executable, pinned_models, write_input_data
from .videos import make_videos, real_videos

MIB = 1 << 20
# perf_analyzer measures exactly this many windows: on cores shared with other jobs latency never settles
# into a tight band, so its stability test is made to always pass (a huge tolerance) rather than retry.
PERF_WINDOWS = 3
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SuiteConfig:
    """How big a run is; ``--quick`` is the same pipeline on less."""

    seconds: tuple[float, ...]  # synthetic videos for the load tests
    real_clips: int  # real-people clips from build/realval, when present
    concurrency: tuple[int, ...]
    requests_per_worker: int  # closed loop
    perf_window_requests: int  # perf_analyzer requests per measurement window (times the concurrency)
    lengths: tuple[float, ...]  # cost against length


FULL = SuiteConfig((5, 10, 30), 2, (1, 2, 4), 2, 1, (5, 10, 30, 60, 600))
QUICK = SuiteConfig((5,), 0, (1, 2), 1, 1, (5,))
LENGTH_REPEATS = 3  # timed requests per length up to a minute



def write_csv(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def machine() -> str:
    """What the numbers were measured on, including how busy it was (other jobs share these cores)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}; load average at start {load}"


# --- the servers -----------------------------------------------------------------------------

PERF_ANALYZER_NEEDS = ("metadata", "model-config", "statistics")  # what perf_analyzer calls besides inference


class BenchmarkTriton(LocalTriton):
    """The served tritonserver, except that perf_analyzer's APIs are open on gRPC too.

    perf_analyzer 2.51 cannot send the operator header over gRPC (``-H`` is HTTP-only), so the
    APIs it reads are left unrestricted on this benchmark-only server; the rest stay behind the
    key. Access control costs nothing per request, so the numbers are the served server's.
    """

    def command(self) -> list[str]:
        closed = ",".join(api for api in RESTRICTED.split(",") if api not in PERF_ANALYZER_NEEDS)
        flags = (f"--http-restricted-api={closed}:{ADMIN_HEADER}={self.admin_key}",
                 f"--grpc-restricted-protocol={closed}:{ADMIN_HEADER}={self.admin_key}")
        kept = [a for a in super().command() if not a.startswith(("--http-restricted-api", "--grpc-restricted-protocol"))]
        return kept + list(flags)


def triton_repository(out: Path) -> Path:
    """The CPU repository for the served checkpoint: graphs exported once into ``out/onnx``."""
    from sync_defense.export.model_repository import build_repository
    from sync_defense.export.onnx_export import export_all
    from sync_defense.model.checkpoint import served_model

    model = served_model()
    onnx_dir = out / "onnx"
    if not all((onnx_dir / f"{g}.onnx").exists() for g in c.GRAPHS):
        export_all(model, onnx_dir)
    return build_repository("cpu", model.config, onnx_dir, out / "model_repository")


# --- 3. closed loop: Triton and FastAPI side by side --------------------------------------------


def compare_answers(video: str, triton: Answer, fastapi: Answer) -> dict[str, object]:
    """Same verdict, and how far the probabilities are apart (ONNX Runtime vs PyTorch)."""
    def windows(a: Answer) -> list[float]:
        return [w.fake_probability for w in a.windows if w.fake_probability is not None]

    diffs = [abs(x - y) for x, y in zip(windows(triton), windows(fastapi), strict=False)]
    p_diff = (abs(triton.fake_probability - fastapi.fake_probability)
              if triton.fake_probability is not None and fastapi.fake_probability is not None else None)
    return {
        "video": video, "triton_verdict": triton.verdict, "fastapi_verdict": fastapi.verdict,
        "same_verdict": triton.verdict == fastapi.verdict, "same_windows": len(windows(triton)) == len(windows(fastapi)),
        "fake_probability_diff": None if p_diff is None else f"{p_diff:.2e}",
        "max_window_diff": f"{max(diffs):.2e}" if diffs else None,
    }


def run_closed_loop(videos: dict[str, bytes], triton_url: str, fastapi_url: str, cfg: SuiteConfig, out: Path,
                    pids: dict[str, int | None] | None = None) -> list[LoadRun]:
    """Both servers, each video, each concurrency; a warm-up request per server and video first.
    With the servers' ``pids``, each run also records the CPU seconds their process trees used.

    ``verdicts.csv``: the warm-up answers of the two servers compared, and whether every answer
    under load repeated its server's warm-up verdict.
    """
    servers = {"triton_grpc": lambda: triton_detector(triton_url, "grpc"), "fastapi": lambda: fastapi_detector(fastapi_url)}
    runs: list[LoadRun] = []
    verdicts = []
    for name, data in videos.items():
        warm = {server: make()(data) for server, make in servers.items()}
        video_runs = []
        for concurrency in cfg.concurrency:
            for server, make in servers.items():
                run = closed_loop(server, make, name, data, concurrency, cfg.requests_per_worker, (pids or {}).get(server))
                print(f"closed loop  {server:12s} {name:40s} c={concurrency}: {run.throughput_per_s:.3f}/s, "
                      f"p50 {run.percentile_s(50):.2f} s, errors {len(run.errors)}", flush=True)
                video_runs.append(run)
        repeats = {server: all(a.verdict == warm[server].verdict for r in video_runs if r.server == server for a in r.answers)
                   for server in servers}
        verdicts.append({**compare_answers(name, warm["triton_grpc"], warm["fastapi"]),
                         "under_load_same_as_warmup": all(repeats.values())})
        runs += video_runs
        write_csv(out / "closed_loop.csv", [r.row() for r in runs])
        write_csv(out / "verdicts.csv", verdicts)
    return runs


# --- 4. perf_analyzer sweeps ---------------------------------------------------------------------

COMPOSING = re.compile(
    r"^\s*(?P<model>\w+), version: \d+\s+Inference count: (?P<inferences>\d+)\s+Execution count: (?P<executions>\d+)"
    r"\s+Successful request count: \d+\s+Avg request latency: (?P<latency>\d+) usec \(overhead \d+ usec \+ queue (?P<queue>\d+) usec"
    r" \+ compute input (?P<input>\d+) usec \+ compute infer (?P<infer>\d+) usec \+ compute output (?P<output>\d+) usec\)",
    re.MULTILINE,
)


def composing_models(report: str) -> list[dict[str, object]]:
    """perf_analyzer's "Composing models" breakdown (its CSV has only the ensemble's totals), in ms."""
    rows = []
    for m in COMPOSING.finditer(report):
        inferences, executions = int(m["inferences"]), int(m["executions"])
        rows.append({"model": m["model"], "inferences": inferences, "executions": executions,
                     "rows_per_execution": round(inferences / executions, 1) if executions else 0.0,
                     **{f"{k}_ms": round(int(m[k]) / 1000, 1) for k in ("latency", "queue", "infer")}})
    return rows


def perf_analyzer_run(data_json: Path, model_url: str, protocol: str, concurrency: int, cfg: SuiteConfig, stem: Path,
                      admin_key: str | None) -> str:
    """One perf_analyzer measurement; keeps ``<stem>.csv`` and ``<stem>.txt`` (its report).

    ``admin_key`` opens the server's restricted APIs (metadata, statistics) over HTTP. Over gRPC
    perf_analyzer 2.51 cannot send it (given ``-H`` there, its statistics calls fail), so a gRPC run
    needs a server that leaves those open (:class:`BenchmarkTriton`).
    """
    exe = perf_analyzer_executable()
    command = [
        exe, *pinned_models((*c.GRAPHS, c.PHONES)), "-u", model_url, "-i", protocol, "--input-data", str(data_json),
        "--concurrency-range", str(concurrency),
        "--measurement-mode", "count_windows", "--measurement-request-count", str(cfg.perf_window_requests * concurrency),
        "--max-trials", str(PERF_WINDOWS), "--stability-percentage", "100000", "--percentile", "99",
        "-f", str(stem.with_suffix(".csv")), "--verbose-csv",
    ] + (["-H", f"{ADMIN_HEADER}:{admin_key}"] if admin_key and protocol == "http" else [])
    done = subprocess.run(command, capture_output=True, text=True, env=perf_analyzer_environment(), timeout=3600)
    stem.with_suffix(".txt").write_text(done.stdout + done.stderr)
    if not stem.with_suffix(".csv").exists():
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def run_perf_analyzer(video_paths: dict[str, Path], urls: dict[str, str], cfg: SuiteConfig, out: Path,
                      admin_key: str | None = None) -> list[dict[str, object]]:
    """gRPC and HTTP, each video, each concurrency: one row per run with the client's percentiles."""
    folder = out / "perf_analyzer"
    folder.mkdir(parents=True, exist_ok=True)
    rows, breakdown = [], []
    for name, path in video_paths.items():
        data_json = write_input_data(path, folder / f"input_{name}.json")
        for protocol, url in urls.items():
            for concurrency in cfg.concurrency:
                stem = folder / f"{protocol}_{name}_c{concurrency}"
                report = perf_analyzer_run(data_json, url, protocol, concurrency, cfg, stem, admin_key)
                row = read_csv(stem.with_suffix(".csv"))[0]
                rows.append({
                    "protocol": protocol, "video": name, "concurrency": concurrency,
                    "throughput_per_s": round(float(row["Inferences/Second"]), 4),
                    **{f"{p}_ms": round(float(row[f"{p} latency"]) / 1000, 1) for p in ("p50", "p90", "p99")},
                    "server_queue_ms": round(float(row["Server Queue"]) / 1000, 1),
                    "server_compute_ms": round(float(row["Server Compute Infer"]) / 1000, 1),
                })
                breakdown += [{"protocol": protocol, "video": name, "concurrency": concurrency, **m} for m in composing_models(report)]
                print(f"perf_analyzer {protocol:4s} {name:40s} c={concurrency}: {rows[-1]['throughput_per_s']}/s, "
                      f"p50 {rows[-1]['p50_ms']} ms", flush=True)
                write_csv(out / "perf_analyzer.csv", rows)
                write_csv(out / "composing_models.csv", breakdown)
    return rows


# --- 5. cost against length ------------------------------------------------------------------------


def run_cost_vs_length(lengths: dict[float, Path], triton_url: str, server_pid: int | None, out: Path) -> list[dict[str, object]]:
    """One request at a time per length: latency, windows scored, and the server tree's PSS before and at peak.

    The PSS is sampled during a first request, which also warms the server up for that size (as the
    closed loop's warm-up does); latency is the median of ``LENGTH_REPEATS`` further requests (one past a
    minute), unsampled: reading ``smaps_rollup`` of a dozen stub processes ten times a second takes a
    good part of a core.
    """
    rows = []
    detect = triton_detector(triton_url, "grpc")
    for seconds, path in sorted(lengths.items()):
        data = path.read_bytes()
        with ExitStack() as stack:
            peak = stack.enter_context(PeakMemory(server_pid)) if server_pid else None
            before = peak.bytes if peak else None
            detect(data)
        latencies = []
        for _ in range(LENGTH_REPEATS if seconds <= 60 else 1):
            began = time.perf_counter()
            answer = detect(data)
            latencies.append(time.perf_counter() - began)
        latency = statistics.median(latencies)
        rows.append({
            "seconds": seconds, "file_mib": round(len(data) / MIB, 1), "latency_s": round(latency, 2),
            "latency_per_video_second_s": round(latency / seconds, 3), "verdict": answer.verdict, "windows": len(answer.windows),
            "sampled": answer.sampled, "server_pss_before_mib": round(before / MIB) if before else None,
            "server_peak_pss_mib": round(peak.bytes / MIB) if peak else None,
        })
        print(f"cost vs length {seconds:6g} s: {latency:.2f} s, peak {rows[-1]['server_peak_pss_mib']} MiB", flush=True)
        write_csv(out / "cost_vs_length.csv", rows)
    return rows


# --- 6. plots and summary ---------------------------------------------------------------------------


def plot(closed: list[dict[str, str]], perf: list[dict[str, str]], path: Path) -> Path:
    """p50 latency against throughput: the closed loop (Triton vs FastAPI) and perf_analyzer (gRPC vs HTTP), one panel per video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = list(dict.fromkeys(r["video"] for r in closed + perf))
    fig, axes = plt.subplots(2, len(videos), figsize=(4.5 * len(videos), 8), squeeze=False)
    for row, (rows, key, title) in enumerate(((closed, "server", "closed loop"), (perf, "protocol", "perf_analyzer"))):
        for col, video in enumerate(videos):
            ax = axes[row][col]
            for series in dict.fromkeys(r[key] for r in rows):
                points = [r for r in rows if r["video"] == video and r[key] == series]
                x = [float(r["throughput_per_s"]) for r in points]
                y = [float(r["p50_ms"]) / 1000 for r in points]
                ax.plot(x, y, marker="o", label=series)
                for r, xi, yi in zip(points, x, y, strict=True):
                    ax.annotate(f"c={r['concurrency']}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
            ax.set_title(f"{title}: {video}", fontsize=9)
            ax.set_xlabel("throughput (videos/s)")
            ax.set_ylabel("p50 latency (s)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(rows: Sequence[dict[str, object]], columns: Iterable[str]) -> str:
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def side_by_side(closed: list[dict[str, str]]) -> list[dict[str, object]]:
    """One row per video and concurrency: Triton and FastAPI next to each other, and the ratios."""
    table = []
    for r in closed:
        if r["server"] != "triton_grpc":
            continue
        f = next((x for x in closed
                  if x["server"] == "fastapi" and x["video"] == r["video"] and x["concurrency"] == r["concurrency"]), None)
        if f is None:
            continue
        t_thr, f_thr = float(r["throughput_per_s"]), float(f["throughput_per_s"])
        table.append({
            "video": r["video"], "c": r["concurrency"], "Triton p50 s": f"{float(r['p50_ms']) / 1000:.2f}",
            "Triton p99 s": f"{float(r['p99_ms']) / 1000:.2f}", "Triton videos/s": f"{t_thr:.3f}",
            "FastAPI p50 s": f"{float(f['p50_ms']) / 1000:.2f}", "FastAPI p99 s": f"{float(f['p99_ms']) / 1000:.2f}",
            "FastAPI videos/s": f"{f_thr:.3f}", "throughput ×": f"{t_thr / f_thr:.2f}" if f_thr else "",
            "CPU s/video (T/F)": f"{r.get('server_cpu_s_per_video') or '-'}/{f.get('server_cpu_s_per_video') or '-'}",
            "requests (T/F)": f"{r['requests']}/{f['requests']}", "errors (T/F)": f"{r['errors']}/{f['errors']}",
        })
    return table


def log_run(out: Path, command: str, sections: Sequence[str], started: dt.datetime, seconds_taken: float, machine_at_start: str) -> None:
    """Append this invocation to ``runs.md``: the tables in ``out`` may come from several (``--sections``)."""
    with (out / "runs.md").open("a") as f:
        f.write(f"- `{command}` ({', '.join(sections)}): {started:%Y-%m-%d %H:%M}, {seconds_taken / 60:.1f} min; "
                f"{machine_at_start}; load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")


def summary(out: Path) -> Path:
    """``summary.md`` from the CSVs that exist in ``out``."""
    runs = (out / "runs.md").read_text() if (out / "runs.md").exists() else ""
    parts = [f"# Load-test suite\n\n{runs}\n"
             "The machine's cores are shared with other jobs: numbers move with their load. The load generator runs on the same cores.\n"]
    if (out / "closed_loop.csv").exists():
        parts.append("## Triton (gRPC) vs the FastAPI + PyTorch baseline, one closed-loop generator\n\n"
                     + markdown_table(side_by_side(read_csv(out / "closed_loop.csv")),
                                      ["video", "c", "Triton p50 s", "Triton p99 s", "Triton videos/s", "FastAPI p50 s",
                                       "FastAPI p99 s", "FastAPI videos/s", "throughput ×", "CPU s/video (T/F)", "requests (T/F)",
                                       "errors (T/F)"]))
    if (out / "verdicts.csv").exists():
        parts.append("## Same answers?\n\n" + markdown_table(read_csv(out / "verdicts.csv"), read_csv(out / "verdicts.csv")[0].keys()))
    if (out / "perf_analyzer.csv").exists():
        perf = read_csv(out / "perf_analyzer.csv")
        parts.append("## perf_analyzer (Triton), ms\n\n" + markdown_table(perf, perf[0].keys()))
    if (out / "composing_models.csv").exists():
        rows = read_csv(out / "composing_models.csv")
        protocol = "grpc" if any(r["protocol"] == "grpc" for r in rows) else rows[0]["protocol"]
        rows = [r for r in rows if r["protocol"] == protocol]
        parts.append(f"## Composing models (perf_analyzer, {protocol}), average per request, ms\n\n"
                     + markdown_table(rows, rows[0].keys()))
    if (out / "cost_vs_length.csv").exists():
        rows = read_csv(out / "cost_vs_length.csv")
        parts.append("## Cost against length (Triton, gRPC, one request at a time; PSS of the server's process tree)\n\n"
                     + markdown_table(rows, rows[0].keys()))
    if (out / "latency_vs_throughput.png").exists():
        parts.append("![latency vs throughput](latency_vs_throughput.png)")
    path = out / "summary.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


SECTIONS = ("closed-loop", "perf", "length")


def run_suite(out: Path, cfg: SuiteConfig, url: str | None = None, http_url: str | None = None, server_pid: int | None = None,
              admin_key: str | None = None, perf_protocols: Sequence[str] = ("grpc", "http"), command: str = "",
              sections: Sequence[str] = SECTIONS) -> Path:
    """The suite's ``sections``; returns ``summary.md`` (from every table in ``out``, so a section can be rerun alone).
    Starts tritonserver unless ``url`` (gRPC) is given."""
    started, began = time.perf_counter(), dt.datetime.now()
    out.mkdir(parents=True, exist_ok=True)
    at_start = machine()
    synthetic = make_videos(out / "videos", set(cfg.seconds) | (set(cfg.lengths) if "length" in sections else set()))
    paths = {p.stem: p for s, p in synthetic.items() if s in cfg.seconds}
    paths.update({p.stem: p for p in real_videos()[: cfg.real_clips]})
    with ExitStack() as stack:
        if url is None:
            triton = stack.enter_context(BenchmarkTriton(triton_repository(out), free_port(), free_port(), free_port(),
                                                         workdir=out / "server"))
            url, http_url, server_pid = f"127.0.0.1:{triton.grpc_port}", f"127.0.0.1:{triton.http_port}", triton.process.pid
            admin_key = triton.admin_key
        if "closed-loop" in sections:
            with FastAPIServer(free_port(), out / "server" / "fastapi.log") as fastapi:
                run_closed_loop({name: p.read_bytes() for name, p in paths.items()}, url, fastapi.url, cfg, out,
                                {"triton_grpc": server_pid, "fastapi": fastapi.process.pid})
        if "perf" in sections:
            urls = {"grpc": url, "http": http_url}
            run_perf_analyzer(paths, {p: urls[p] for p in perf_protocols if urls[p]}, cfg, out, admin_key)
        if "length" in sections:
            run_cost_vs_length({s: synthetic[s] for s in cfg.lengths}, url, server_pid, out)
    if (out / "closed_loop.csv").exists() and (out / "perf_analyzer.csv").exists():
        plot(read_csv(out / "closed_loop.csv"), read_csv(out / "perf_analyzer.csv"), out / "latency_vs_throughput.png")
    log_run(out, command, sections, began, time.perf_counter() - started, at_start)
    return summary(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/perf"))
    parser.add_argument("--quick", action="store_true", help="5-s video, concurrency 1 and 2, one request per worker")
    parser.add_argument("--url", help="gRPC HOST:PORT of a running server (default: start one)")
    parser.add_argument("--http-url", help="HTTP HOST:PORT of that server (perf_analyzer over HTTP)")
    parser.add_argument("--server-pid", type=int, help="that server's pid, for its peak memory")
    parser.add_argument("--admin-key", help="that server's operator key (perf_analyzer over HTTP reads statistics with it)")
    parser.add_argument("--perf-protocols", nargs="+", choices=("grpc", "http"), default=["grpc", "http"],
                        help="perf_analyzer over these (gRPC needs a server with metadata and statistics open)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these (the summary still shows every table already in --out)")
    parser.add_argument("--seconds", type=float, nargs="+", help="lengths of the load-test videos (default 5 10 30)")
    parser.add_argument("--real-clips", type=int, help="how many build/realval clips to add (default 2)")
    parser.add_argument("--lengths", type=float, nargs="+", help="video lengths for cost against length (default 5 10 30 60 600)")
    args = parser.parse_args()
    command = "python -m benchmarks.load_suite " + " ".join(sys.argv[1:])
    cfg = QUICK if args.quick else FULL
    real = cfg.real_clips if args.real_clips is None else args.real_clips
    cfg = replace(cfg, seconds=tuple(args.seconds or cfg.seconds), real_clips=real, lengths=tuple(args.lengths or cfg.lengths))
    path = run_suite(args.out, cfg, args.url, args.http_url, args.server_pid, args.admin_key,
                     args.perf_protocols, command, args.sections)
    print(path.read_text())


if __name__ == "__main__":
    main()
