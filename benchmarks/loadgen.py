"""A closed-loop load generator that drives Triton and the FastAPI baseline the same way.

perf_analyzer speaks only Triton's protocols, so a like-for-like comparison with the seed's
FastAPI stack needs one generator for both: ``concurrency`` workers, each with its own connection,
each sending the same video bytes again as soon as its previous answer is back. Every answer is
parsed into ``contract.Answer`` so the two servers' verdicts can be compared.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sync_defense.client import SyncDefenseClient
from sync_defense.contract import Answer

from .memory import tree_cpu_seconds

Detector = Callable[[bytes], Answer]  # one connection's "classify these bytes"


def triton_detector(url: str, protocol: str = "grpc", timeout_s: float = 1800.0) -> Detector:
    """A fresh client connection to the Triton ensemble (``sync_defense.client``)."""
    client = SyncDefenseClient(url, protocol, timeout_s=timeout_s)
    return lambda data: client.detect(data).answer


def fastapi_detector(url: str, timeout_s: float = 1800.0) -> Detector:
    """``POST {url}/detect`` with the file as the body (``benchmarks.fastapi_baseline``)."""

    def detect(data: bytes) -> Answer:
        request = urllib.request.Request(f"{url}/detect", data=data, headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return Answer.from_dict(json.loads(reply.read()))

    return detect


@dataclass
class LoadRun:
    """One closed-loop measurement: every request's latency, the wall time, answers and errors."""

    server: str
    video: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server_cpu_s: float | None = None  # CPU seconds the server's process tree used during the run

    @property
    def throughput_per_s(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s else 0.0

    @property
    def server_cpu_s_per_video(self) -> float | None:
        return self.server_cpu_s / len(self.latencies_s) if self.server_cpu_s is not None and self.latencies_s else None

    def percentile_s(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def row(self) -> dict[str, object]:
        """One CSV row (latencies in ms)."""
        return {
            "server": self.server, "video": self.video, "concurrency": self.concurrency, "requests": len(self.latencies_s),
            "errors": len(self.errors), "throughput_per_s": round(self.throughput_per_s, 4),
            **{f"p{q}_ms": round(self.percentile_s(q) * 1000, 1) for q in (50, 90, 99)},
            "mean_ms": round(float(np.mean(self.latencies_s)) * 1000, 1) if self.latencies_s else float("nan"),
            "wall_s": round(self.wall_s, 2),
            "server_cpu_s_per_video": "" if self.server_cpu_s_per_video is None else round(self.server_cpu_s_per_video, 3),
            "first_error": self.errors[0][:300] if self.errors else "",
        }


def closed_loop(server: str, make_detector: Callable[[], Detector], video: str, data: bytes, concurrency: int,
                requests_per_worker: int, server_pid: int | None = None) -> LoadRun:
    """``concurrency`` workers send ``data`` back to back, ``requests_per_worker`` times each.

    Connections are opened before the clock starts; the wall time runs from the common start to
    the last answer, so throughput is answers per second of the whole run. With ``server_pid``, the
    CPU seconds that server's process tree used over the same span are recorded too.
    """
    run = LoadRun(server, video, concurrency)
    detectors = [make_detector() for _ in range(concurrency)]
    start = threading.Barrier(concurrency + 1)
    lock = threading.Lock()

    def worker(detect: Detector) -> None:
        start.wait()
        for _ in range(requests_per_worker):
            began = time.perf_counter()
            try:
                answer = detect(data)
            except Exception as exc:  # a failed request is a result to report, not a crash of the benchmark
                with lock:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - began
            with lock:
                run.latencies_s.append(elapsed)
                run.answers.append(answer)

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in detectors]
    for thread in threads:
        thread.start()
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else None
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    run.wall_s = time.perf_counter() - began
    if cpu_before is not None:
        run.server_cpu_s = tree_cpu_seconds(server_pid) - cpu_before
    return run
