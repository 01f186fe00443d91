"""Send a video file to the ``sync_defense`` ensemble and read its verdict back.

    from client import SyncDefenseClient
    with SyncDefenseClient("localhost:8001") as sd:
        print(sd.detect("talk.mp4").to_dict())
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import ModuleType

import numpy as np

MODEL = "sync_defense"
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
RESULT = "RESULT"  # the ensemble's JSON answer; VERDICT, FAKE_PROBABILITY and CONFIDENCE repeat its head as tensors


class DetectionError(RuntimeError):
    """The server refused or failed this video; the message is the server's."""


@dataclass(frozen=True)
class Detection:
    """The answer for one video, as ``syncdefense detect --json`` prints it (see ``avsync.decision.analyse``)."""

    file: str
    verdict: str  # real | fake | uncertain | no_face | no_speech
    fake_probability: float | None  # None for no_face and no_speech
    confidence: float
    av_offset_frames: int | None  # > 0: the audio comes after the mouth
    av_offset_s: float | None
    duration_s: float
    faces: list[dict]  # track_id, box, first_s, last_s, fake_probability, av_offset_frames, speaking, ...
    segments: list[dict]  # track_id, start_s, end_s, fake_probability
    windows: list[dict]  # track_id, start_s, end_s, fake_probability, speech, mouth_motion
    latency_ms: float
    details: dict = field(default_factory=dict)  # the rest of the server's answer (thresholds, sampling, ...)

    @classmethod
    def from_result(cls, file: str, result: dict, latency_ms: float) -> Detection:
        known = {f.name for f in fields(cls)} - {"file", "latency_ms", "details"}
        return cls(file=file, latency_ms=round(latency_ms, 1), details={k: v for k, v in result.items() if k not in known},
                   **{k: result[k] for k in known})

    def to_dict(self) -> dict:
        flat = asdict(self)
        return {**{k: v for k, v in flat.items() if k != "details"}, **flat["details"]}


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
        wanted = [self._triton.InferRequestedOutput(RESULT)]
        started = time.perf_counter()
        try:
            if self.protocol == "grpc":
                result = self._client.infer(self.model, [upload], outputs=wanted, client_timeout=self.timeout_s)
            else:
                result = self._client.infer(self.model, [upload], outputs=wanted)
        except self._triton.InferenceServerException as exc:
            raise DetectionError(exc.message() or str(exc)) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        answer = json.loads(result.as_numpy(RESULT).reshape(-1)[0])
        return Detection.from_result(name or "<bytes>", answer, latency_ms)

    def ready(self) -> bool:
        return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SyncDefenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
