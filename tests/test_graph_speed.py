"""The prepared graph-speed benchmark (the GPU check) runs end to end here, on the CPU."""

from __future__ import annotations

from pathlib import Path

from benchmarks.graph_speed import table, time_graphs
from sync_defense.contract import AUDIO_ENCODER, FUSION_CLASSIFIER, VISUAL_ENCODER


def test_every_graph_is_timed_in_both_runtimes_at_every_batch(tmp_path: Path) -> None:
    rows = time_graphs("tiny", "cpu", [1, 2], warmup=1, repeats=1, workdir=tmp_path)
    graphs, runtimes = (VISUAL_ENCODER, AUDIO_ENCODER, FUSION_CLASSIFIER), ("pytorch", "onnxruntime")
    timed = {(r["graph"], r["runtime"].split()[0], r["batch"]) for r in rows}
    assert timed == {(g, rt, b) for g in graphs for rt in runtimes for b in (1, 2)}
    assert all(r["ms"] > 0 and r["precision"] == "fp32" for r in rows)
    assert all("CPUExecutionProvider" in r["runtime"] for r in rows if r["runtime"] != "pytorch")
    assert len(table(rows).splitlines()) == len(rows) + 2
