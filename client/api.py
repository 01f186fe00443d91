"""Send a video file to the ``sync_defense`` ensemble and read its verdict back.

    from sync_defense.client import SyncDefenseClient
    with SyncDefenseClient("localhost:8001") as sd:
        print(sd.detect("talk.mp4").to_dict())
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from sync_defense import contract as c
from sync_defense.contract import Answer

DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}


class DetectionError(RuntimeError):
    """The server refused or failed this video; the message is the server's."""


@dataclass(frozen=True)
class Detection:
    """The answer for one video (``contract.Answer``), with the file it came from and the round trip."""

    file: str
    answer: Answer
    latency_ms: float

    def __getattr__(self, name: str) -> object:
        """``detection.verdict``, ``detection.faces``, ...: the answer's fields."""
        return getattr(self.__dict__["answer"], name)

    def to_dict(self) -> dict:
        """What ``syncdefense detect --json`` prints: the answer's fields, ``file`` and ``latency_ms``."""
        return {"file": self.file, **asdict(self.answer), "latency_ms": round(self.latency_ms, 1)}


def _tritonclient(protocol: str) -> ModuleType:
    if protocol == "grpc":
        import tritonclient.grpc as module
    elif protocol == "http":
        import tritonclient.http as module
    else:
        raise ValueError("protocol must be 'grpc' or 'http'")
    return module


class SyncDefenseClient:
    """One connection to a Triton server that serves the ``sync_defense`` ensemble."""

    def __init__(self, url: str | None = None, protocol: str = "grpc", timeout_s: float = 300.0, model: str = c.ENSEMBLE) -> None:
        self.protocol, self.model, self.timeout_s = protocol, model, timeout_s
        self._triton = _tritonclient(protocol)
        self.url = url or DEFAULT_URLS[protocol]
        if protocol == "http":
            self._client = self._triton.InferenceServerClient(self.url, connection_timeout=timeout_s, network_timeout=timeout_s)
        else:
            self._client = self._triton.InferenceServerClient(self.url)

    def detect(self, video: bytes | str | Path, name: str | None = None) -> Detection:
        """Classify one video given as a path or as the file's bytes."""
        if isinstance(video, (str, Path)):
            name = name or str(video)
            video = Path(video).read_bytes()
        upload = self._triton.InferInput(c.VIDEO, [1], "BYTES")
        upload.set_data_from_numpy(np.array([video], dtype=np.object_))
        wanted = [self._triton.InferRequestedOutput(c.RESULT)]
        started = time.perf_counter()
        try:
            if self.protocol == "grpc":
                result = self._client.infer(self.model, [upload], outputs=wanted, client_timeout=self.timeout_s)
            else:
                result = self._client.infer(self.model, [upload], outputs=wanted)
        except self._triton.InferenceServerException as exc:
            raise DetectionError(exc.message() or str(exc)) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Detection(name or "<bytes>", Answer.from_json(result.as_numpy(c.RESULT).reshape(-1)[0]), latency_ms)

    def ready(self) -> bool:
        return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SyncDefenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
