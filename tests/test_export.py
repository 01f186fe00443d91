"""ONNX graphs: dynamic batch, weights inside, same numbers as PyTorch on random and real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from sync_defense.contract import MAX_BATCH
from sync_defense.export.parity import onnx_against_torch
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video


def test_three_self_contained_graphs(onnx_dir: Path) -> None:
    names = sorted(p.name for p in onnx_dir.glob("*.onnx"))
    assert names == ["audio_encoder.onnx", "fusion_classifier.onnx", "visual_encoder.onnx"]
    for path in onnx_dir.glob("*.onnx"):
        graph = onnx.load(str(path), load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
        batch_axes = {i.type.tensor_type.shape.dim[0].dim_param for i in graph.graph.input}
        assert all(batch_axes), f"{path.name} has a fixed batch axis"


def test_onnx_runtime_matches_pytorch(model, onnx_dir: Path, talking_mp4: bytes) -> None:
    video = preprocess_video(talking_mp4)
    paths = {p.stem: p for p in onnx_dir.glob("*.onnx")}
    reports = onnx_against_torch(model, paths, video.window_inputs())
    assert {r.inputs for r in reports} == {"random", "real"}
    assert {r.batch for r in reports} >= {1, MAX_BATCH}
    assert all(r.ok for r in reports), "\n".join(map(str, reports))


def test_batch_sizes_in_between_run(onnx_dir: Path) -> None:
    sess = onnx_session(onnx_dir / "audio_encoder.onnx")
    for batch in (3, 17):
        out = sess.run(None, {"MELS": np.zeros((batch, 1, DEFAULT_CONFIG.audio.n_mels, DEFAULT_CONFIG.mel_frames), np.float32)})[0]
        assert out.shape[0] == batch
