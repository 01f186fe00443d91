"""A short perf_analyzer run against the ensemble with the bundled real video as input data."""

from __future__ import annotations

from pathlib import Path

from benchmarks.load_suite import BenchmarkTriton
from benchmarks.perf_analyzer import run_perf_analyzer
from devtools.local_triton import free_port

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "talking_head.mp4"


def test_perf_analyzer_measures_the_ensemble(triton, tmp_path: Path) -> None:
    """On the benchmark server (perf_analyzer 2.51 cannot send the operator key over gRPC)."""
    with BenchmarkTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path / "server") as server:
        result = run_perf_analyzer(SAMPLE, f"127.0.0.1:{server.grpc_port}", tmp_path, concurrency=1, requests_per_window=3)
    print(f"\nperf_analyzer, concurrency 1: {result.throughput_per_s:.2f} videos/s, p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms")
    assert result.throughput_per_s > 0 and result.p50_ms > 0
    for step in ("preprocess", "score", "decision", "visual_encoder", "audio_encoder", "fusion_classifier"):
        assert f"{step}, version: 1" in result.report  # the composing models' breakdown
