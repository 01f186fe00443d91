"""Liveness, recovery and closed-by-default through the real server: the probe, a killed step, the operator key."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from devtools.local_triton import SHM_DIR, LocalTriton, _rotate, down, free_port, process_group, restricted_flags, up
from sync_defense import contract as c
from sync_defense.client import DetectionError, SyncDefenseClient, UploadTooLarge
from sync_defense.client.cli import main as cli
from sync_defense.export.model_repository import STEP_QUEUE
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.serving.watchdog import instance_stubs

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "talking_head.mp4"


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


@pytest.fixture(scope="module")
def second_server(triton, tmp_path_factory: pytest.TempPathFactory):
    """A server of its own (a test kills one of its steps), whose preprocess queue holds a single upload."""
    work = tmp_path_factory.mktemp("second")
    repository = work / "model_repository"
    shutil.copytree(triton.repository, repository)
    config = repository / c.PREPROCESS / "config.pbtxt"
    config.write_text(config.read_text().replace(f"max_queue_size: {STEP_QUEUE}", "max_queue_size: 1"))
    with LocalTriton(repository, free_port(), free_port(), free_port(), workdir=work) as server:
        yield server


def test_a_full_queue_refuses_at_once_and_the_client_retries(second_server) -> None:
    """Two uploads in preprocess and one queued: the others are refused (UNAVAILABLE) instead of waiting without
    bound; the client's backoff then gets every one of them answered before its deadline."""
    url = f"127.0.0.1:{second_server.grpc_port}"
    with ThreadPoolExecutor(6) as pool:
        once = list(pool.map(lambda _: _attempt(SyncDefenseClient(url, retry=False), None), range(6)))
        retried = list(pool.map(lambda _: _attempt(SyncDefenseClient(url, timeout_s=120), None), range(6)))
    refused = [r for r in once if isinstance(r, DetectionError)]
    assert refused and all("Exceeds maximum queue size" in str(r) for r in refused)
    assert retried == ["no_speech"] * 6


def test_a_killed_step_stops_the_server_so_that_it_is_replaced(second_server, talking_mp4: bytes) -> None:
    """Triton 2.51 never restarts a dead Python stub and stays ready; the steps' watchdog makes it leave instead:
    readiness fails, the server drains and exits by itself (no SIGKILL) and its shared memory is cleared."""
    server = second_server
    regions = (server.workdir / "shm_regions").read_text().split()
    victim = next(pid for pid, stub in instance_stubs(server.process.pid).items() if stub.instance == "preprocess_0_0")
    client = SyncDefenseClient(f"127.0.0.1:{server.grpc_port}", retry=False)
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(_attempt, client, talking_mp4)
        os.kill(victim, signal.SIGKILL)  # mid-request (one of the two preprocess instances)
        assert upload.result(120) is not None  # an answer or a clear error, never a hang
    assert server.process.wait(60) != -signal.SIGKILL  # exited by itself, within its drain time
    assert not server.ready()
    server.stop()
    assert "preprocess_0_0 died and Triton does not restart them" in server.log_path.read_text()
    assert not [r for r in regions if (SHM_DIR / r).exists()]


def _attempt(client: SyncDefenseClient, video: bytes | None) -> str | DetectionError:
    """The verdict, or the error (``None``: the health video)."""
    try:
        return (client.health() if video is None else client.detect(video)).verdict
    except DetectionError as exc:
        return exc


def _tensors(model: str, values: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    specs = {t.name: t for t in c.step_specs(DEFAULT_CONFIG)[model].inputs}
    tensors = []
    for name, value in values.items():
        tensor = grpcclient.InferInput(name, list(value.shape), specs[name].dtype.replace("STRING", "BYTES"))
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    return tensors


def test_a_direct_call_to_score_cannot_buy_minutes_of_cpu(triton) -> None:
    """Triton 2.51 has no per-model ACL: ``score`` refuses what ``preprocess`` never sends, before any graph runs."""
    t, s = DEFAULT_CONFIG.timeline.clip_frames, DEFAULT_CONFIG.mouth.crop_size
    pairs = np.zeros(32000, np.int32)
    inputs = {c.MOUTH_CROPS: np.zeros((1, t, s, s, 3), np.uint8), c.MEL: np.zeros((80, 4 * t + 1), np.float32),
              c.WINDOW_START: np.zeros(1, np.int32), c.PAIR_WINDOW: pairs, c.PAIR_SHIFT: pairs}
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{triton.grpc_port}")
    with pytest.raises(InferenceServerException, match=r"score takes at most 240 windows and 720 pairs \(got 1 and 32000\)"):
        grpc.infer(c.SCORE, _tensors(c.SCORE, inputs))


def test_internal_errors_carry_an_incident_id_not_a_traceback(triton) -> None:
    n = np.zeros(1, np.int32)
    inputs = {c.PAIR_FAKE_PROBABILITY: np.ones(1, np.float32), c.PAIR_WINDOW: n, c.PAIR_SHIFT: n, c.WINDOW_TRACK: n,
              c.WINDOW_START: n, c.WINDOW_SPEECH: np.ones(1, np.float32), c.WINDOW_MOTION: np.ones(1, np.float32),
              c.VIDEO_INFO: np.array([b"{not json"], dtype=np.object_)}
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{triton.grpc_port}")
    with pytest.raises(InferenceServerException) as refused:
        grpc.infer(c.DECISION, _tensors(c.DECISION, inputs))
    message = refused.value.message()
    assert re.fullmatch(r"decision failed: internal error [0-9a-f]{12} \(the server log has the details\)", message), message
    assert "Traceback" not in message and "/" not in message


def test_an_operator_can_open_named_apis_for_perf_analyzer() -> None:
    flags = " ".join(restricted_flags("key", open_apis=("metadata", "model-config", "statistics")))
    assert "--grpc-restricted-protocol=model-repository,shared-memory,trace,logging:sync-defense-admin=key" in flags
    assert "statistics" not in flags and "--model-control-mode=none" in flags


def test_up_waits_for_an_answer_and_down_drains_without_a_false_death(triton, tmp_path: Path, capsys) -> None:
    """``up`` returns once a real upload is answered; ``down`` stops it by SIGTERM alone, and the stubs that
    leave at shutdown are not reported as deaths (the watchdog acts only while the server says it is ready)."""
    up(LocalTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path))
    assert "tritonserver answering" in capsys.readouterr().out
    down(tmp_path)
    assert re.search(r"tritonserver stopped in [0-9.]+ s; removed 0 stale shared-memory region", capsys.readouterr().out)
    log = (tmp_path / "tritonserver.log").read_text()
    assert "Signal (15) received." in log and "died" not in log


def test_down_kills_the_stubs_a_crashed_server_strands(triton, tmp_path: Path, capsys) -> None:
    """A crashed server can leave stubs that never leave by themselves (blocked on its shared-memory locks; here
    one is stopped): ``down`` kills what is left of the server's process group and removes their shared memory."""
    up(LocalTriton(triton.repository, free_port(), free_port(), free_port(), workdir=tmp_path))
    server = int((tmp_path / "tritonserver.pid").read_text())
    stuck, stub = next((pid, s) for pid, s in instance_stubs(server).items() if s.instance.startswith(c.PHONES))
    os.kill(stuck, signal.SIGSTOP)
    os.kill(server, signal.SIGKILL)  # the crash: the server goes at once, its stubs are left behind
    down(tmp_path)
    assert re.search(r"killed [1-9]\d* stranded stub\(s\)", capsys.readouterr().out)
    assert process_group(server) == [] and not (SHM_DIR / stub.shm_region).exists()


def _executions(triton, model: str) -> int:
    with grpcclient.InferenceServerClient(f"127.0.0.1:{triton.grpc_port}") as client:
        stats = client.get_inference_statistics(model, headers=triton.admin_headers("grpc"), as_json=True)
    return sum(int(s["inference_stats"][k].get("count", 0)) for s in stats["model_stats"] for k in ("success", "fail"))


def test_a_client_that_gives_up_stops_the_scoring_of_its_upload(triton) -> None:
    """A gRPC deadline cancels the request, and ``score`` sees it: the abandoned upload's pairs never reach
    the graphs, and ``decision`` never runs. The step running when the client gave up (here ``preprocess``)
    runs to its end, bounded by its wall-clock budget: Triton 2.51 does not tell a running Python step
    (triton-inference-server/server#6739)."""
    models = (*c.STEPS, *c.GRAPHS)
    before = {m: _executions(triton, m) for m in models}
    with SyncDefenseClient(f"127.0.0.1:{triton.grpc_port}", timeout_s=0.3, retry=False) as client:
        with pytest.raises(DetectionError, match="Deadline|deadline"):
            client.detect(SAMPLE)
    deadline = time.monotonic() + 120
    while _executions(triton, c.PREPROCESS) == before[c.PREPROCESS] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # time enough for score and decision, had they been started
    after = {m: _executions(triton, m) for m in models}
    assert after[c.PREPROCESS] == before[c.PREPROCESS] + 1
    assert all(after[m] == before[m] for m in (*c.GRAPHS, c.DECISION)), (before, after)
    with SyncDefenseClient(f"127.0.0.1:{triton.grpc_port}") as client:  # and the next upload is served as usual
        assert client.detect(SAMPLE).verdict in ("real", "fake", "uncertain")
