"""``preprocess`` with ``face_models: graphs``: BlazeFace and the face mesh as batched models of the real server, through BLS."""

from __future__ import annotations

import numpy as np
import tritonclient.http as httpclient

from sync_defense import contract as c
from sync_defense.client import SyncDefenseClient
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video
from sync_defense.preprocessing.landmarks import GRAPH_CHUNK


def statistics(server, model: str) -> tuple[int, int]:
    """(requests answered, rows inferred) of one of the server's models."""
    http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    stats = http.get_inference_statistics(model, headers=server.admin_headers())["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"]), int(stats["inference_count"])


def test_the_face_graphs_give_the_answer_mediapipe_gives(triton, triton_face_graphs, talking_mp4: bytes) -> None:
    """Same verdict, offset, lip test and evidence; probabilities within 1e-3 (the lips are 1e-3 px apart)."""
    expected = SyncDefenseClient(f"127.0.0.1:{triton.grpc_port}", "grpc").detect(talking_mp4)
    got = SyncDefenseClient(f"127.0.0.1:{triton_face_graphs.grpc_port}", "grpc").detect(talking_mp4)
    assert got.verdict == expected.verdict and got.av_offset_frames == expected.av_offset_frames
    assert abs(got.fake_probability - expected.fake_probability) <= 1e-3
    assert len(got.windows) == len(expected.windows)
    assert max(abs(a.fake_probability - b.fake_probability) for a, b in zip(got.windows, expected.windows, strict=True)) <= 1e-3
    (face,), (want,) = got.to_dict()["faces"], expected.to_dict()["faces"]
    assert face["box"] == want["box"]
    assert (face["lip_sync"]["verdict"], face["lip_sync"]["lag_frames"]) == (want["lip_sync"]["verdict"], want["lip_sync"]["lag_frames"])
    assert [(e["name"], e["fired"]) for e in face["forgery_evidence"]] == [(e["name"], e["fired"]) for e in want["forgery_evidence"]]


def test_preprocess_sends_the_face_models_its_frames_in_chunks(triton_face_graphs, talking_mp4: bytes) -> None:
    """Every keyframe reaches the detector graph and every scored frame the mesh graph (none runs MediaPipe
    in the step), ``GRAPH_CHUNK`` frames to a request, as ``score`` sends its windows."""
    before = {graph: statistics(triton_face_graphs, graph) for graph in c.FACE_GRAPHS}
    SyncDefenseClient(f"127.0.0.1:{triton_face_graphs.grpc_port}", "grpc").detect(talking_mp4)
    after = {graph: statistics(triton_face_graphs, graph) for graph in c.FACE_GRAPHS}
    requests, rows = ({g: after[g][i] - before[g][i] for g in c.FACE_GRAPHS} for i in (0, 1))
    video = preprocess_video(talking_mp4)
    keyframes = -(-video.n_frames // DEFAULT_CONFIG.faces.detect_every)
    scored = int(np.isfinite(video.apertures[0]).sum())  # the frames whose lips were measured
    assert rows[c.FACE_DETECTOR] == keyframes and requests[c.FACE_DETECTOR] == -(-keyframes // GRAPH_CHUNK)
    assert rows[c.FACE_MESH] >= keyframes + scored  # the lips of each face found, and of each scored frame
    assert requests[c.FACE_MESH] < rows[c.FACE_MESH] / 4
