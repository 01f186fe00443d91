"""Two CPU-profile Triton replicas behind nginx (deploy/nginx/) on loopback: HTTP and gRPC through the balancer,
perf_analyzer through it against one replica, and one replica killed under load without a failed request.

Who covers a killed replica: nginx re-sends an HTTP request that was in flight on it (the body is buffered) and
every request that finds it refusing connections (HTTP and gRPC). A gRPC request in flight cannot be re-sent by
nginx (``grpc_pass`` streams the body to the replica unbuffered): nginx answers it with 502, which gRPC reads as
UNAVAILABLE, and the client's own retry sends it again. So the HTTP clients here never retry and the gRPC clients
use the client library's retry. Print the figures with ``pytest -s tests/test_balancer.py``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pytest
import tritonclient.http as httpclient

from benchmarks.load_suite import BenchmarkTriton
from benchmarks.perf_analyzer import run_perf_analyzer
from devtools.local_triton import LocalTriton, free_port
from sync_defense import contract as c
from sync_defense.client import DetectionError, SyncDefenseClient
from sync_defense.export.model_repository import build_repository

pytestmark = pytest.mark.server  # starts real servers (`make test-fast` leaves it out)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "sync-defense.conf.template"
SAMPLE = ROOT / "samples" / "talking_head.mp4"
PERF_CONCURRENCY = 2  # one upload per replica through the balancer
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# nginx's log when a replica dies with an HTTP request in flight (then re-sent to the other one)
HTTP_IN_FLIGHT = "while reading response header from upstream, client: 127.0.0.1, server: , request: \"POST /v2/models/"


@dataclass
class Balancer:
    http: str
    grpc: str
    state: Path
    process: subprocess.Popen

    def url(self, protocol: str) -> str:
        return self.http if protocol == "http" else self.grpc

    @property
    def error_log(self) -> str:
        return (self.state / "error.log").read_text()

    @property
    def access_log(self) -> list[str]:
        return (self.state / "access.log").read_text().splitlines()


def render(state: Path, http: str, grpc: str, replicas: list[LocalTriton]) -> str:
    servers = {port: " ".join(f"server 127.0.0.1:{getattr(r, port)} max_fails=1 fail_timeout=10s;" for r in replicas)
               for port in ("http_port", "grpc_port")}
    statistics = " ".join(f"server 127.0.0.1:{r.grpc_port}{' backup' if i else ''};" for i, r in enumerate(replicas))
    return Template(TEMPLATE.read_text()).substitute(
        NGINX_STATE=state, LISTEN_HTTP=http, LISTEN_GRPC=grpc, HTTP_SERVERS=servers["http_port"], GRPC_SERVERS=servers["grpc_port"],
        GRPC_STATISTICS_SERVERS=statistics,
    )


@pytest.fixture(scope="module")
def replicas(onnx_dir: Path, model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalTriton]]:
    """Two servers of the same CPU repository, each with its own ports and work folder, one operator key.

    ``BenchmarkTriton``: the served server with perf_analyzer's APIs open on gRPC (it cannot send the key there).
    """
    work = tmp_path_factory.mktemp("replicas")
    repository = build_repository("cpu", model.config, onnx_dir, work / "model_repository")
    key = secrets.token_hex(16)
    servers = [BenchmarkTriton(repository, free_port(), free_port(), free_port(), workdir=work / name, admin_key=key)
               for name in "ab"]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(600)  # two servers starting on a loaded 2-core machine
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def balancer(replicas: list[LocalTriton], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balancer]:
    state = tmp_path_factory.mktemp("nginx")
    http, grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config = state / "nginx.conf"
    config.write_text(render(state, http, grpc, replicas))
    checked = subprocess.run([NGINX, "-t", "-p", str(state), "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([NGINX, "-p", str(state), "-c", str(config), "-g", "daemon off;"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield Balancer(http, grpc, state, process)
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish in-flight requests
        process.wait(30)


def _served(replica: LocalTriton) -> int:
    """Uploads this replica has answered (Triton's own statistics of the ensemble)."""
    with httpclient.InferenceServerClient(f"127.0.0.1:{replica.http_port}") as client:
        stats = client.get_inference_statistics(c.ENSEMBLE, headers=replica.admin_headers())
    return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])


def test_http_and_grpc_through_the_balancer_reach_both_replicas(balancer: Balancer, replicas: list[LocalTriton]) -> None:
    before = [_served(r) for r in replicas]
    answers = {}
    for protocol in ("http", "grpc"):
        with SyncDefenseClient(balancer.url(protocol), protocol, retry=False) as client:
            assert client.ready()
            answers[protocol] = [client.detect(SAMPLE) for _ in range(4)]
    verdicts = {d.verdict for run in answers.values() for d in run}
    probabilities = [d.fake_probability for run in answers.values() for d in run]
    assert len(verdicts) == 1 and max(probabilities) - min(probabilities) < 1e-4  # the replicas serve one model
    deadline = time.monotonic() + 10
    while sum(served := [_served(r) - b for r, b in zip(replicas, before, strict=True)]) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)  # Triton counts a request after its response is sent: the last ones can lag the answers
    assert sum(served) == 8 and min(served) >= 2, served  # least_conn spreads sequential requests over both


def test_the_balancer_refuses_the_internal_models_over_http(balancer: Balancer) -> None:
    """A forged ``decision`` call (a made-up verdict) or a direct graph call does not pass the front proxy."""
    for model in (*c.STEPS, *c.GRAPHS, f"{c.ENSEMBLE}_copy"):
        request = urllib.request.Request(f"http://{balancer.http}/v2/models/{model}/infer", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403 and b"only the sync_defense model" in refused.value.read()
    for path in (f"/v2/models/{c.ENSEMBLE}/ready", f"/v2/models/{c.ENSEMBLE}", "/v2/health/live"):
        with urllib.request.urlopen(f"http://{balancer.http}{path}", timeout=10) as reply:
            assert reply.status == 200


def test_perf_analyzer_through_the_balancer_and_against_one_replica(balancer: Balancer, replicas: list[LocalTriton],
                                                                    tmp_path: Path) -> None:
    rows = []
    for target, url in (("one replica", f"127.0.0.1:{replicas[0].grpc_port}"), ("nginx, 2 replicas", balancer.grpc)):
        result = run_perf_analyzer(SAMPLE, url, tmp_path / target[:3], PERF_CONCURRENCY, requests_per_window=4)
        assert result.throughput_per_s > 0 and result.p50_ms > 0
        rows.append(f"{target:18s} concurrency {PERF_CONCURRENCY}: {result.throughput_per_s:.2f} videos/s, "
                    f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms")
    print(f"\nperf_analyzer over gRPC, {SAMPLE.name}, {os.cpu_count()} CPU cores shared by both replicas:")
    print("\n".join(rows))


def test_a_replica_killed_under_load_loses_no_request(balancer: Balancer, replicas: list[LocalTriton]) -> None:
    """Two clients per protocol keep both replicas busy (least_conn: one of each on each replica); replica A is
    SIGKILLed with requests in flight, and every request is still answered."""
    video = SAMPLE.read_bytes()
    results: list[tuple[str, bool, str]] = []  # protocol, started after the kill, verdict or error
    killed, stop = threading.Event(), threading.Event()
    lock = threading.Lock()

    def load(protocol: str) -> None:
        with SyncDefenseClient(balancer.url(protocol), protocol, timeout_s=180, retry=protocol == "grpc") as client:
            while not stop.is_set():
                after = killed.is_set()
                try:
                    outcome = client.detect(video).verdict
                except DetectionError as error:
                    outcome = f"error: {error}"
                with lock:
                    results.append((protocol, after, outcome))

    threads = [threading.Thread(target=load, args=(p,), daemon=True) for p in ("http", "grpc", "http", "grpc")]
    for thread in threads:
        thread.start()
    _wait(lambda: {p for p, _, _ in results} == {"http", "grpc"}, 300)
    os.killpg(replicas[0].process.pid, signal.SIGKILL)  # the server and its Python stubs, mid-request
    replicas[0].process.wait()
    killed.set()
    _wait(lambda: replicas[1].process.poll() is not None  # B gone too: stop and say how (below), not after 600 s
          or all(sum(p == q and after for p, after, _ in results) >= 3 for q in ("http", "grpc")), 600)
    stop.set()
    for thread in threads:
        thread.join(300)

    errors = [r for r in results if r[2].startswith("error")]
    in_flight = balancer.error_log.count(HTTP_IN_FLIGHT)
    grpc_502 = sum("ModelInfer HTTP/2.0\" 502 " in line for line in balancer.access_log)
    print(f"\n{len(results)} requests ({sum(a for _, a, _ in results)} started after the kill), {len(errors)} failed; "
          f"nginx re-sent {in_flight} HTTP request(s) that were in flight on the killed replica; "
          f"{grpc_502} gRPC request(s) in flight answered 502 by nginx and sent again by the client")
    # A count and the distinct errors, not the list: with replica B gone too the HTTP clients fail fast.
    distinct = Counter(f"{protocol} {error}" for protocol, _, error in errors).most_common(5)
    assert len(errors) == 0, f"{len(errors)} of {len(results)} requests failed: {distinct}{_exit_report(replicas[1])}"
    assert replicas[1].process.poll() is None, _exit_report(replicas[1])
    assert in_flight >= 1  # the kill did hit an HTTP request in flight, and replica B answered it
    assert f"127.0.0.1:{replicas[0].grpc_port}" in balancer.error_log and f"127.0.0.1:{replicas[0].http_port}" in balancer.error_log


def _exit_report(replica: LocalTriton, lines: int = 30) -> str:
    """How a replica that should still be serving ended: its exit status and the end of its log."""
    if replica.process.poll() is None:
        return ""
    tail = replica.log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"\nreplica B exited with {replica.process.returncode}; its log ends:\n" + "\n".join(tail)


def _wait(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the load"
        time.sleep(0.2)
