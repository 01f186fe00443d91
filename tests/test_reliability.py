"""Liveness, recovery and closed-by-default through the real server: the probe, a killed step, the operator key."""

from __future__ import annotations

import os
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from conftest import free_port
from sync_defense.client import DetectionError, SyncDefenseClient, UploadTooLarge
from sync_defense.client.cli import main as cli
from tritonclient.utils import InferenceServerException

from devtools.local_triton import SHM_DIR, LocalTriton, _rotate
from sync_defense import contract as c
from sync_defense.serving.watchdog import instance_stubs


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_health_probe_exits_0_only_when_the_ensemble_answers(triton, protocol: str, capsys) -> None:
    port = triton.grpc_port if protocol == "grpc" else triton.http_port
    assert cli(["health", "--url", f"127.0.0.1:{port}", "--protocol", protocol]) == 0
    assert "healthy: no_speech" in capsys.readouterr().out
    assert cli(["health", "--url", f"127.0.0.1:{free_port()}", "--protocol", protocol, "--timeout", "5"]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_a_refused_connection_is_retried_until_the_deadline() -> None:
    """Nothing listens: UNAVAILABLE is retried with backoff, then one clear error names the deadline."""
    client = SyncDefenseClient(f"127.0.0.1:{free_port()}", "grpc", timeout_s=2.0)
    with pytest.raises(DetectionError, match=r"no answer within the 2-s deadline after [2-9] attempts"):
        client.health()


def test_an_oversized_upload_is_refused_before_sending(tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:
        f.truncate(c.MAX_UPLOAD_BYTES + 1)  # sparse: no disk, no memory
    with pytest.raises(UploadTooLarge, match="at most"):
        SyncDefenseClient(f"127.0.0.1:{free_port()}").detect(big)


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("path", ["/v2/models/stats", "/v2/models/decision/config", "/v2/logging", "/v2/trace/setting", "/v2"])
def test_admin_apis_need_the_operator_key_over_http(triton, path: str) -> None:
    url = f"http://127.0.0.1:{triton.http_port}{path}"
    assert _status(url) == 403
    assert _status(url, triton.admin_headers()) == 200
    assert _status(f"http://127.0.0.1:{triton.http_port}/v2/health/ready") == 200


def test_admin_protocols_need_the_operator_key_over_grpc(triton) -> None:
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{triton.grpc_port}")
    for call in (grpc.get_inference_statistics, grpc.get_model_repository_index, grpc.get_log_settings):
        with pytest.raises(InferenceServerException, match="restricted"):
            call()
        assert call(headers=triton.admin_headers("grpc")) is not None
    with pytest.raises(InferenceServerException, match="restricted"):
        grpc.unload_model(c.DECISION)
    assert grpc.is_server_ready()


def test_logs_are_rotated_not_truncated(tmp_path: Path) -> None:
    log = tmp_path / "tritonserver.log"
    for run in ("first", "second", "third"):
        _rotate(log)
        log.write_text(run)
    assert [p.read_text() for p in (log, tmp_path / "tritonserver.log.1", tmp_path / "tritonserver.log.2")] == ["third", "second", "first"]


def test_a_killed_step_stops_the_server_so_that_it_is_replaced(triton, talking_mp4: bytes, tmp_path: Path) -> None:
    """Triton 2.51 never restarts a dead Python stub and stays ready; the steps' watchdog makes it leave instead:
    readiness fails, the server drains and exits by itself (no SIGKILL) and its shared memory is cleared."""
    server = LocalTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path)
    with server:
        regions = (tmp_path / "shm_regions").read_text().split()
        victim = next(pid for pid, stub in instance_stubs(server.process.pid).items() if stub.instance == "preprocess_0_0")
        client = SyncDefenseClient(f"127.0.0.1:{server.grpc_port}", retry=False)
        outcome: list[object] = []
        upload = threading.Thread(target=lambda: outcome.append(_attempt(client, talking_mp4)))
        upload.start()
        os.kill(victim, signal.SIGKILL)  # mid-request (one of the two preprocess instances)
        upload.join(120)
        assert server.process.wait(60) != -signal.SIGKILL  # exited by itself, within its drain time
        assert not server.ready()
    log = server.log_path.read_text()
    assert "preprocess_0_0 died and Triton does not restart them" in log
    assert not [r for r in regions if (SHM_DIR / r).exists()]
    assert outcome  # the upload got an answer or a clear error, never a hang


def _attempt(client: SyncDefenseClient, video: bytes) -> object:
    try:
        return client.detect(video).verdict
    except DetectionError as exc:
        return exc
