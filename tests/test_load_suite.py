"""The load-test suite end to end at its smallest, and the A/B of two repositories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import pytest

from benchmarks.ab import compare
from benchmarks.load_suite import QUICK, BenchmarkTriton, read_csv, run_suite
from devtools.local_triton import free_port
from sync_defense import contract as c


@pytest.fixture(scope="module")
def benchmark_server(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchmarkTriton]:
    """The suite's own kind of server (perf_analyzer's APIs open, so it sends no operator key), on the
    session's repository. perf_analyzer 2.51 given ``-H`` fails its statistics calls over gRPC."""
    server = BenchmarkTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path_factory.mktemp("bench"))
    with server:
        yield server


def test_load_suite_writes_every_table(benchmark_server: BenchmarkTriton, tmp_path: Path) -> None:
    server = benchmark_server
    summary = run_suite(
        tmp_path, QUICK, url=f"127.0.0.1:{server.grpc_port}", http_url=f"127.0.0.1:{server.http_port}",
        server_pid=server.process.pid, perf_protocols=("grpc", "http"),
    )
    closed = read_csv(tmp_path / "closed_loop.csv")
    assert {(r["server"], int(r["concurrency"])) for r in closed} == {(s, n) for s in ("triton_grpc", "fastapi") for n in QUICK.concurrency}
    assert all(int(r["requests"]) > 0 and int(r["errors"]) == 0 and float(r["p50_ms"]) > 0 for r in closed)
    assert all(float(r["server_cpu_s_per_video"]) > 0.1 for r in closed)  # each server's own process tree, not the client's
    assert all(r["same_verdict"] == "True" and r["under_load_same_as_warmup"] == "True" for r in read_csv(tmp_path / "verdicts.csv"))

    perf = read_csv(tmp_path / "perf_analyzer.csv")
    runs = sorted((p, n) for p in ("grpc", "http") for n in QUICK.concurrency)
    assert sorted((r["protocol"], int(r["concurrency"])) for r in perf) == runs
    assert all(float(r["throughput_per_s"]) > 0 and float(r["p99_ms"]) >= float(r["p50_ms"]) > 0 for r in perf)
    assert {r["model"] for r in read_csv(tmp_path / "composing_models.csv")} == set(c.STEPS) | {c.PHONES} | set(c.GRAPHS)
    assert all((tmp_path / "perf_analyzer" / f"{p}_{perf[0]['video']}_c1.csv").exists() for p in ("grpc", "http"))  # its own CSVs, kept

    (length,) = read_csv(tmp_path / "cost_vs_length.csv")
    assert float(length["latency_s"]) > 0 and float(length["server_peak_pss_mib"]) >= float(length["server_pss_before_mib"]) > 0

    assert matplotlib.image.imread(tmp_path / "latency_vs_throughput.png").ndim == 3
    text = summary.read_text()
    for heading in ("Triton (gRPC) vs the FastAPI", "Same answers?", "perf_analyzer (Triton)", "Composing models", "Cost against length"):
        assert heading in text


def test_ab_loads_two_repositories_in_turns_and_reports_each(triton, tmp_path: Path) -> None:
    video = Path(__file__).resolve().parent.parent / "samples" / "talking_head.mp4"
    rows = compare({"one": triton.repository, "two": triton.repository}, video, [1], rounds=1, requests_per_worker=1,
                   workdir=tmp_path)
    assert [(r["repository"], r["concurrency"], r["rounds"]) for r in rows] == [("one", 1, 1), ("two", 1, 1)]
    assert all(float(r["p50 s"]) > 0 and float(r["videos/s"]) > 0 and float(r["server CPU s/video"]) > 0.1 for r in rows)
