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


def test_the_face_graphs_are_timed_in_pytorch_on_the_served_weights_with_fp16_measured_against_fp32(face_onnx_dir: Path) -> None:
    from benchmarks.face_graph_speed import difference, runners, sample_rows, time_runners
    from sync_defense.contract import FACE_GRAPHS, IMAGE

    rows = {name: real[:2] for name, real in sample_rows().items()}  # two real frames and faces of the sample video
    found = runners(face_onnx_dir, None, None, "cpu", ("fp32", "fp16"))
    assert set(found) == {(g, rt) for g in FACE_GRAPHS for rt in ("onnxruntime CPU, 1 thread", "pytorch cpu fp32", "pytorch cpu fp16")}
    for name in FACE_GRAPHS:  # the modules timed on a GPU are the graphs the server runs
        feed = {IMAGE: rows[name]}
        assert difference(found[(name, "pytorch cpu fp32")], found[(name, "onnxruntime CPU, 1 thread")], feed)["max_abs_vs_fp32"] < 1e-3
    measured = time_runners(found, rows, [1, 2], warmup=0, repeats=1)
    assert len(measured) == len(found) * 2 and all(r["ms"] > 0 for r in measured)
    half = [r for r in measured if r["precision"] == "fp16"]
    assert half and all({"max_abs_vs_fp32", "non_finite"} <= r.keys() for r in half)
    assert not any("max_abs_vs_fp32" in r for r in measured if r["precision"] == "fp32")


def test_decode_speed_times_the_cpu_and_says_what_nvdec_did(tmp_path: Path, monkeypatch) -> None:
    import json

    from benchmarks import decode_speed
    from sync_defense.artifacts import SAMPLE_VIDEO

    monkeypatch.setattr("sys.argv", ["decode_speed", str(SAMPLE_VIDEO), "--repeats", "1", "--out", str(tmp_path / "rows.json")])
    decode_speed.main()
    cpu, cuda = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert cpu["decoder"] == "cpu" and cpu["frames"] > 100 and cpu["frames_per_s"] > 0
    # with a GPU decoder: the same timeline; without one: the reason, never a silent CPU decode
    assert cuda.get("same_timeline") is True or "cannot open a cuda device" in cuda["error"]
