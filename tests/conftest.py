"""Shared fixtures: real videos made by the project's own code, exported graphs, a real Triton server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devtools.local_triton import free_port
from sync_defense.model.checkpoint import served_model
from sync_defense.offline.synthetic import scenes
from sync_defense.preprocessing import DEFAULT_CONFIG

SR = DEFAULT_CONFIG.audio.sample_rate


@pytest.fixture(scope="session")
def sentence_audio() -> np.ndarray:
    return scenes.speech(scenes.SENTENCES[0])


@pytest.fixture(scope="session")
def talking_mp4(sentence_audio: np.ndarray) -> bytes:
    """A ~6.5 s talking face in sync with its speech (H.264 + AAC mp4)."""
    return scenes.mp4(scenes.talking_video(sentence_audio), sentence_audio)


@pytest.fixture(scope="session")
def no_face_mp4(sentence_audio: np.ndarray) -> bytes:
    """Speech over a picture without a face."""
    n = scenes.n_frames(sentence_audio, 25)
    frames = np.broadcast_to(np.linspace(40, 200, 320, dtype=np.uint8)[None, None, :, None], (n, 240, 320, 3))
    return scenes.mp4(np.ascontiguousarray(frames), sentence_audio)


@pytest.fixture(scope="session")
def silent_mp4() -> bytes:
    """A face that does not speak, over a silent audio track."""
    silence = np.zeros(4 * SR, np.float32)
    return scenes.mp4(scenes.talking_video(silence), silence)


@pytest.fixture(scope="session")
def noise_mp4() -> bytes:
    """A face that does not speak, over white noise (which webrtcvad alone calls speech)."""
    noise = (0.1 * np.random.default_rng(0).standard_normal(4 * SR)).astype(np.float32)
    return scenes.mp4(scenes.talking_video(np.zeros_like(noise)), noise)


@pytest.fixture(scope="session")
def model():
    return served_model()


@pytest.fixture(scope="session")
def onnx_dir(model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sync_defense.export.onnx_export import export_all

    out = tmp_path_factory.mktemp("onnx")
    export_all(model, out)
    return out


@pytest.fixture(scope="session")
def face_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BlazeFace and the attention mesh exported from the mediapipe wheel's ``.tflite`` files (batch 1..MAX_BATCH)."""
    from sync_defense.export.tflite_graphs import export_face_detector, export_face_mesh

    out = tmp_path_factory.mktemp("face_onnx")
    export_face_detector(out)
    export_face_mesh(out)
    return out


@pytest.fixture(scope="session")
def all_onnx_dir(onnx_dir: Path, face_onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three encoder graphs and the two face graphs in one folder (a repository whose preprocess calls the face graphs)."""
    import shutil

    out = tmp_path_factory.mktemp("all_onnx")
    for graph in (*onnx_dir.glob("*.onnx"), *face_onnx_dir.glob("*.onnx")):
        shutil.copy(graph, out / graph.name)
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a real server is marked ``server`` (``make test-fast`` leaves them out)."""
    for item in items:
        if {"triton", "triton_face_graphs"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)



@pytest.fixture(scope="session")
def triton(onnx_dir: Path, model, tmp_path_factory: pytest.TempPathFactory):
    """The real tritonserver serving the CPU profile built from this session's export."""
    from devtools.local_triton import LocalTriton
    from sync_defense.export.model_repository import build_repository

    work = tmp_path_factory.mktemp("triton")
    repository = build_repository("cpu", model.config, onnx_dir, work / "model_repository")
    server = LocalTriton(repository, free_port(), free_port(), free_port(), workdir=work)
    with server:
        yield server


@pytest.fixture(scope="session")
def triton_face_graphs(all_onnx_dir: Path, model, tmp_path_factory: pytest.TempPathFactory):
    """A second real tritonserver: the CPU profile with ``preprocess`` calling the face graphs through BLS."""
    from devtools.local_triton import LocalTriton
    from sync_defense.export.model_repository import build_repository

    work = tmp_path_factory.mktemp("triton_face_graphs")
    repository = build_repository("cpu", model.config, all_onnx_dir, work / "model_repository", face_models="graphs")
    server = LocalTriton(repository, free_port(), free_port(), free_port(), workdir=work)
    with server:
        yield server
