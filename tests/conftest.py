"""Shared fixtures: real videos made by the project's own code, exported graphs, a real Triton server."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from avsync.checkpoint import served_model
from avsync.media import encode_mp4
from avsync.talking_head import TalkingHead, grace_hopper_photo, talking_head_video
from preprocessing import DEFAULT_CONFIG

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it takes a long nap in the warm sun."


@pytest.fixture(scope="session")
def head() -> TalkingHead:
    return TalkingHead.from_photo(grace_hopper_photo())


@pytest.fixture(scope="session")
def talking_mp4(head: TalkingHead) -> bytes:
    """A ~6 s talking head in sync with its speech (H.264 + AAC mp4)."""
    frames, audio = talking_head_video(SENTENCE, head=head)
    return encode_mp4(frames, 25, audio, DEFAULT_CONFIG.sample_rate)


@pytest.fixture(scope="session")
def no_face_mp4(head: TalkingHead) -> bytes:
    """Speech over a picture without a face (the portrait's background colours, blurred away)."""
    _, audio = talking_head_video(SENTENCE, head=head)
    n = int(audio.size / DEFAULT_CONFIG.sample_rate * 25)
    frames = np.broadcast_to(np.linspace(40, 200, 320, dtype=np.uint8)[None, None, :, None], (n, 240, 320, 3))
    return encode_mp4(np.ascontiguousarray(frames), 25, audio, DEFAULT_CONFIG.sample_rate)


@pytest.fixture(scope="session")
def silent_mp4(head: TalkingHead) -> bytes:
    """A face that does not speak, over a silent audio track."""
    frames = head.render(np.zeros(100))
    return encode_mp4(frames, 25, np.zeros(4 * DEFAULT_CONFIG.sample_rate, np.float32), DEFAULT_CONFIG.sample_rate)


@pytest.fixture(scope="session")
def model():
    return served_model()


@pytest.fixture(scope="session")
def onnx_dir(model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.onnx_export import export_all

    out = tmp_path_factory.mktemp("onnx")
    export_all(model, out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def triton(onnx_dir: Path, model, tmp_path_factory: pytest.TempPathFactory):
    """The real tritonserver serving the CPU profile built from this session's export."""
    from export.model_repository import build_repository
    from serving.local_triton import LocalTriton

    work = tmp_path_factory.mktemp("triton")
    repository = build_repository("cpu", model.config, onnx_dir, work / "model_repository")
    server = LocalTriton(repository, free_port(), free_port(), free_port(), workdir=work)
    with server:
        yield server
