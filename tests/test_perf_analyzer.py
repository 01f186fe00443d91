"""A short perf_analyzer run against the ensemble with the bundled real video as input data."""

from __future__ import annotations

from pathlib import Path

from benchmarks.load_suite import BenchmarkTriton
from benchmarks.perf_analyzer import run_perf_analyzer
from devtools.local_triton import free_port
from sync_defense import contract as c

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "talking_head.mp4"


def test_perf_analyzer_measures_the_ensemble(triton, no_face_mp4: bytes, tmp_path: Path) -> None:
    """On the benchmark server (perf_analyzer 2.51 cannot send the operator key over gRPC).

    An upload with no face never reaches the graphs: perf_analyzer still reports because every version is
    pinned (unpinned, it looks for the version whose queue count rose and stops with "failed to find the
    requested model version", which a loaded machine also hit now and then with one-request windows).
    """
    no_face = tmp_path / "no_face.mp4"
    no_face.write_bytes(no_face_mp4)
    with BenchmarkTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path / "server") as server:
        url = f"127.0.0.1:{server.grpc_port}"
        result = run_perf_analyzer(SAMPLE, url, tmp_path / "sample", concurrency=1, requests_per_window=3)
        skipped = run_perf_analyzer(no_face, url, tmp_path / "no_face", concurrency=1, requests_per_window=2)
    print(f"\nperf_analyzer, concurrency 1: {result.throughput_per_s:.2f} videos/s, p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms")
    assert result.throughput_per_s > 0 and result.p50_ms > 0
    for step in (*c.STEPS, *c.GRAPHS, c.PHONES):
        assert f"{step}, version: {c.MODEL_VERSION}" in result.report  # the composing models' breakdown
    assert skipped.throughput_per_s > 0
    for graph in c.GRAPHS:
        assert f"{graph}, version: {c.MODEL_VERSION}\n      Request count: 0" in skipped.report
