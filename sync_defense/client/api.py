"""Send a video file to the ``sync_defense`` ensemble and read its verdict back.

    from sync_defense.client import SyncDefenseClient
    with SyncDefenseClient("localhost:8001") as sd:
        print(sd.detect("talk.mp4").to_dict())
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np

from sync_defense import contract as c
from sync_defense.contract import Answer

DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
# A 2.4-s silent talking face (22 kB, package data): it passes every step and graph and answers no_speech.
HEALTH_VIDEO = "health.mp4"
# Server busy or restarting (queue full, not ready yet, connection refused): worth another try.
RETRYABLE = {"StatusCode.UNAVAILABLE", "503"}
# A step instance Triton found unresponsive (INTERNAL): its stub missed the 1-s health handshake under CPU
# starvation, or died and the server is being replaced; another try may reach a healthy instance or server.
RETRYABLE_MESSAGES = ("is not healthy",)
BACKOFF_S = (0.25, 4.0)  # first wait, longest wait; doubled after every failed attempt


class DetectionError(RuntimeError):
    """The server refused or failed this video; the message is the server's."""


class UploadTooLarge(DetectionError):
    """Refused before sending: the server would refuse it too, after receiving all of it."""


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

    def __init__(self, url: str | None = None, protocol: str = "grpc", timeout_s: float = 300.0, model: str = c.ENSEMBLE,
                 retry: bool = True) -> None:
        """``timeout_s`` is the deadline of one ``detect``, retries included; ``retry`` retries a busy or
        restarting server (inference has no side effect, so a retried upload is answered once)."""
        self.protocol, self.model, self.timeout_s, self.retry = protocol, model, timeout_s, retry
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
            if Path(video).stat().st_size > c.MAX_UPLOAD_BYTES:
                raise UploadTooLarge(f"{video}: {Path(video).stat().st_size} bytes; the server takes at most {c.MAX_UPLOAD_BYTES}")
            video = Path(video).read_bytes()
        if len(video) > c.MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"upload of {len(video)} bytes; the server takes at most {c.MAX_UPLOAD_BYTES}")
        upload = self._triton.InferInput(c.VIDEO, [1], "BYTES")
        upload.set_data_from_numpy(np.array([video], dtype=np.object_))
        started = time.perf_counter()
        result = self._infer_until_deadline(upload, started + self.timeout_s)
        latency_ms = (time.perf_counter() - started) * 1000.0
        try:
            answer = Answer.from_json(result.as_numpy(c.RESULT).reshape(-1)[0])
        except (ValueError, TypeError, KeyError) as exc:
            raise DetectionError(f"the server's answer does not follow the contract: {exc}") from exc
        return Detection(name or "<bytes>", answer, latency_ms)

    def _infer_until_deadline(self, upload: object, deadline: float) -> object:
        """One inference, retried with exponential backoff while the server is busy or restarting."""
        wanted = [self._triton.InferRequestedOutput(c.RESULT)]
        wait, attempts = BACKOFF_S[0], 0
        while True:
            attempts += 1
            left = deadline - time.perf_counter()
            try:
                if self.protocol == "grpc":
                    return self._client.infer(self.model, [upload], outputs=wanted, client_timeout=max(left, 0.001))
                return self._client.infer(self.model, [upload], outputs=wanted)
            except self._triton.InferenceServerException as exc:
                message = exc.message() or str(exc)
                error = DetectionError(message)
                retryable = str(exc.status()) in RETRYABLE or any(m in message for m in RETRYABLE_MESSAGES)
            except ConnectionError as exc:  # HTTP: the port is closed while the server restarts
                error, retryable = DetectionError(f"cannot reach {self.url}: {exc}"), True
            if not (self.retry and retryable) or time.perf_counter() + wait >= deadline:
                if attempts > 1:
                    raise DetectionError(f"no answer within the {self.timeout_s:.0f}-s deadline after {attempts} attempts; "
                                         f"last error: {error}") from error
                raise error
            time.sleep(wait)
            wait = min(2 * wait, BACKOFF_S[1])

    def health(self) -> Detection:
        """A tiny real upload through the whole ensemble (every step and graph): the liveness check.

        ``/v2/health/ready`` stays 200 while a step's stub is dead; only an answer that parses proves
        the pipeline works. Raises ``DetectionError`` otherwise.
        """
        return self.detect(resources.files(__package__).joinpath(HEALTH_VIDEO).read_bytes(), name="health-check")

    def ready(self) -> bool:
        return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SyncDefenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
