"""The CPU budget benchmark counts each part as often as the served path calls it, and prints its table."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from benchmarks.cpu_budget import parts, table
from sync_defense.preprocessing import landmarks, preprocess_video


def test_each_part_is_counted_as_often_as_the_served_path_calls_it(talking_mp4: bytes, onnx_dir: Path) -> None:
    models = landmarks.MediaPipeModels
    with mock.patch.object(models, "detect", autospec=True, side_effect=models.detect) as detections, \
         mock.patch.object(models, "mesh", autospec=True, side_effect=models.mesh) as meshes:
        video = preprocess_video(talking_mp4)
    rows, whole = parts(talking_mp4, onnx_dir, samples=10)
    calls = {p.name.split(" (")[0]: p.calls for p in rows}

    def items(spy: mock.MagicMock) -> int:  # images or ROIs the served path gave the models, whatever the batching
        return sum(len(call.args[1]) for call in spy.call_args_list)

    assert calls["BlazeFace, every 5th frame"] == items(detections)
    assert calls["face mesh on the faces found"] + calls["face mesh on every scored frame"] == items(meshes)
    assert calls["face mesh on every scored frame"] == calls["mouth crop of every scored frame"] > 100
    assert all(p.cpu_per_call_s > 0 for p in rows)
    assert f"visual_encoder ({len(video.window_start)} rows)" in [p.name for p in rows]
    assert sum(p.cpu_s for p in rows) == pytest.approx(whole, rel=0.5)  # the parts are most of the whole
    lines = table(rows, whole, budget=1.0).splitlines()
    assert len(lines) == 2 + len(rows) + 3 and lines[-1] == "| budget | | | 1.000 | 100% |"
