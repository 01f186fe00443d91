"""Send a video file to the ``sync_defense`` ensemble and read its verdict back.

    from client import SyncDefenseClient
    with SyncDefenseClient("localhost:8001") as sd:
        print(sd.detect("talk.mp4").to_dict())
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

MODEL = "sync_defense"
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
OUTPUTS = (
    "VERDICT", "FAKE_PROBABILITY", "CONFIDENCE", "WINDOW_FAKE_PROBABILITY", "WINDOW_START_S", "WINDOW_SPEECH",
    "FACE_FOUND", "DURATION_S",
)


class DetectionError(RuntimeError):
    """The server refused or failed this video; the message is the server's."""


@dataclass(frozen=True)
class Detection:
    """The verdict on one video, as ``syncdefense detect --json`` prints it."""

    file: str
    verdict: str  # real | fake | uncertain | no_face | no_speech
    fake_probability: float
    confidence: float
    windows: int  # windows scored (0 without a face)
    window_start_s: list[float]
    window_fake_probability: list[float]
    window_speech: list[float]
    duration_s: float
    latency_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def _tritonclient(protocol: str) -> ModuleType:
    if protocol == "grpc":
        import tritonclient.grpc as module
    elif protocol == "http":
        import tritonclient.http as module
    else:
        raise ValueError("protocol must be 'grpc' or 'http'")
    return module


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values.reshape(-1)]


class SyncDefenseClient:
    """One connection to a Triton server that serves the ``sync_defense`` ensemble."""

    def __init__(self, url: str | None = None, protocol: str = "grpc", timeout_s: float = 300.0, model: str = MODEL) -> None:
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
        upload = self._triton.InferInput("VIDEO", [1], "BYTES")
        upload.set_data_from_numpy(np.array([video], dtype=np.object_))
        wanted = [self._triton.InferRequestedOutput(o) for o in OUTPUTS]
        started = time.perf_counter()
        try:
            if self.protocol == "grpc":
                result = self._client.infer(self.model, [upload], outputs=wanted, client_timeout=self.timeout_s)
            else:
                result = self._client.infer(self.model, [upload], outputs=wanted)
        except self._triton.InferenceServerException as exc:
            raise DetectionError(exc.message() or str(exc)) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        out = {o: result.as_numpy(o) for o in OUTPUTS}
        face = bool(out["FACE_FOUND"].reshape(-1)[0])
        rows = slice(None) if face else slice(0)  # a faceless video's placeholder window is no result
        return Detection(
            file=name or "<bytes>",
            verdict=out["VERDICT"].reshape(-1)[0].decode(),
            fake_probability=round(float(out["FAKE_PROBABILITY"][0]), 6),
            confidence=round(float(out["CONFIDENCE"][0]), 6),
            windows=len(out["WINDOW_START_S"][rows]),
            window_start_s=_rounded(out["WINDOW_START_S"][rows]),
            window_fake_probability=_rounded(out["WINDOW_FAKE_PROBABILITY"][rows]),
            window_speech=_rounded(out["WINDOW_SPEECH"][rows]),
            duration_s=round(float(out["DURATION_S"][0]), 3),
            latency_ms=round(latency_ms, 1),
        )

    def ready(self) -> bool:
        return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SyncDefenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
