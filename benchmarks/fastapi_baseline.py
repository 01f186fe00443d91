"""The seed's serving stack, rebuilt honestly as the baseline Triton is measured against.

    python -m benchmarks.fastapi_baseline --port 8080
    curl --data-binary @samples/talking_head.mp4 http://127.0.0.1:8080/detect

FastAPI + uvicorn (one worker, as the seed ran it), the same checkpoint in PyTorch eager
(``served_model``), and the very step functions the Triton ensemble runs — ``preprocess``,
``score`` with PyTorch as the graph runner, ``decide`` (``serving.reference.detect``) — all inside
the request handler. Any difference in the answer is a difference in serving, not in the pipeline.
The handler reads the body and runs the pipeline in FastAPI's thread pool, so concurrent uploads
overlap wherever PyAV, OpenCV, NumPy and PyTorch release the GIL: the most the seed's design gets
from two cores without more processes.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from sync_defense.artifacts import CALIBRATION
from sync_defense.contract import Answer
from sync_defense.inference.decision import DecisionConfig
from sync_defense.model.checkpoint import served_model
from sync_defense.preprocessing import MediaError
from sync_defense.serving.reference import detect

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(checkpoint: Path | None = None, calibration: Path = CALIBRATION) -> FastAPI:
    """``POST /detect`` (the video file as the request body) -> the same JSON answer as Triton's ``RESULT``."""
    model = served_model(checkpoint).eval()
    cfg = DecisionConfig.from_calibration(calibration)
    app = FastAPI(title="Sync-Defense seed baseline")

    def classify(data: bytes) -> Answer:
        with torch.inference_mode():
            return detect(model, data, cfg)

    @app.post("/detect")
    async def detect_video(request: Request) -> dict:
        data = await request.body()
        try:
            return (await run_in_threadpool(classify, data)).to_dict()
        except MediaError as exc:
            raise HTTPException(status_code=400, detail=f"bad video: {exc}") from exc

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


class FastAPIServer:
    """``uvicorn`` serving :func:`create_app` in its own process (so its CPU and memory are its own)."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FastAPIServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.fastapi_baseline", "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the FastAPI baseline did not start; log tail:\n{self.log.read_text(errors='replace')[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the group after 30 s; a no-op once stopped."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--checkpoint", type=Path, help="default: the served checkpoint (checkpoints/tiny.pt)")
    args = parser.parse_args()
    uvicorn.run(create_app(args.checkpoint), host=args.host, port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
