"""The load-test suite end to end at its smallest: both servers, perf_analyzer, cost against length, plot, summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image

from benchmarks.load_suite import QUICK, read_csv, run_suite
from sync_defense import contract as c


def test_load_suite_writes_every_table(triton, tmp_path: Path) -> None:
    summary = run_suite(
        tmp_path, QUICK, url=f"127.0.0.1:{triton.grpc_port}", http_url=f"127.0.0.1:{triton.http_port}",
        server_pid=triton.process.pid, admin_key=triton.admin_key,
        perf_protocols=("http",),  # perf_analyzer 2.51 sends no operator header over gRPC, and this server needs it
    )
    closed = read_csv(tmp_path / "closed_loop.csv")
    assert {(r["server"], int(r["concurrency"])) for r in closed} == {(s, n) for s in ("triton_grpc", "fastapi") for n in QUICK.concurrency}
    assert all(int(r["requests"]) > 0 and int(r["errors"]) == 0 and float(r["p50_ms"]) > 0 for r in closed)
    assert all(r["same_verdict"] == "True" and r["under_load_same_as_warmup"] == "True" for r in read_csv(tmp_path / "verdicts.csv"))

    perf = read_csv(tmp_path / "perf_analyzer.csv")
    assert [int(r["concurrency"]) for r in perf] == list(QUICK.concurrency)
    assert all(float(r["throughput_per_s"]) > 0 and float(r["p99_ms"]) >= float(r["p50_ms"]) > 0 for r in perf)
    assert {r["model"] for r in read_csv(tmp_path / "composing_models.csv")} == set(c.STEPS) | set(c.GRAPHS)
    assert (tmp_path / "perf_analyzer" / f"http_{perf[0]['video']}_c1.csv").exists()  # perf_analyzer's own CSV, kept

    (length,) = read_csv(tmp_path / "cost_vs_length.csv")
    assert float(length["latency_s"]) > 0 and float(length["server_peak_pss_mib"]) >= float(length["server_pss_before_mib"]) > 0

    assert matplotlib.image.imread(tmp_path / "latency_vs_throughput.png").ndim == 3
    text = summary.read_text()
    for heading in ("Triton (gRPC) vs the FastAPI", "Same answers?", "perf_analyzer (Triton)", "Composing models", "Cost against length"):
        assert heading in text
