"""Run NVIDIA's real ``tritonserver`` 2.51 (the 24.10 release) from the ``nvidia-pytriton`` wheel.

Machines without Docker or a GPU still get the real server: the wheel ships the binary, the
Python backend and a backend stub per Python version. This module lays them out as Triton
expects and starts, waits for and stops the server.

    python -m devtools.local_triton up --repository model_repository
    python -m devtools.local_triton down
    python -m devtools.local_triton flags     # the closed-by-default flags, for SYNC_DEFENSE_TRITON_ARGS
    python -m devtools.local_triton up --open metadata,model-config,statistics   # for perf_analyzer over gRPC

Closed by default: clients reach inference and health; metadata, model configs, the repository,
shared-memory registration, statistics, trace and logging need the header ``sync-defense-admin``
with the operator key (``build/server/admin_key``). ``up`` returns when a real upload has been
answered (``syncdefense health``), not at ``/v2/health/ready``; ``down`` drains in-flight requests
(no SIGKILL) and removes the shared-memory regions a dead stub leaves in ``/dev/shm``; logs are
rotated, never truncated.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sync_defense.serving.watchdog import stub_processes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_ROOT / "build" / "server"
SHM_BYTES = 16 * 1024 * 1024  # Python-backend shared memory per model, and its growth step
EXIT_TIMEOUT_S = 20  # Triton's drain of in-flight requests on SIGTERM; it then exits by itself
LOG_GENERATIONS = 3  # tritonserver.log.1 .. .3 keep the previous runs
SHM_DIR = Path("/dev/shm")
ADMIN_HEADER = "sync-defense-admin"
# Everything but inference and health needs the operator key (Triton 2.51 has no per-model ACL: see errors.py / docs/reliability.md).
RESTRICTED = "metadata,model-config,model-repository,shared-memory,statistics,trace,logging"


def restricted_flags(admin_key: str, open_apis: tuple[str, ...] = ()) -> list[str]:
    """The closed-by-default flags: the same APIs behind ``ADMIN_HEADER: admin_key`` on HTTP and gRPC,
    but ``open_apis`` (perf_analyzer over gRPC needs metadata, model-config and statistics and can
    send no header there: ``make perf`` opens those on its own server)."""
    closed = ",".join(api for api in RESTRICTED.split(",") if api not in open_apis)
    return [f"--http-restricted-api={closed}:{ADMIN_HEADER}={admin_key}",
            f"--grpc-restricted-protocol={closed}:{ADMIN_HEADER}={admin_key}",
            "--model-control-mode=none", f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]


def _wheel_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent


def prepare_server(workdir: Path) -> Path:
    """A copy of the wheel's server with this interpreter's backend stub; returns its root."""
    root = workdir / "tritonserver"
    stub = root / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(_wheel_dir() / "tritonserver", root, ignore=shutil.ignore_patterns("python_backend_stubs"))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy(_wheel_dir() / "tritonserver" / "python_backend_stubs" / version / stub.name, stub)
    return root


def server_environment() -> dict[str, str]:
    """The wheel's libraries on the loader path and this venv first on PATH: the stub finds its
    site-packages, and so the installed ``sync_defense``, from there."""
    env = dict(os.environ)
    libs = (_wheel_dir().parent / "nvidia_pytriton.libs").as_posix()
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def free_port() -> int:
    """A loopback port nobody listens on now (for servers beside ``make up``'s: tests, benchmarks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalTriton:
    """One ``tritonserver`` process on loopback ports."""

    repository: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    workdir: Path = STATE_DIR
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))
    open_apis: tuple[str, ...] = ()  # restricted APIs left open on this server (see ``restricted_flags``)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def command(self) -> list[str]:
        root = prepare_server(self.workdir)
        return [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={root / 'backends'}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            f"--backend-config=python,shm-default-byte-size={SHM_BYTES}",
            f"--backend-config=python,shm-growth-byte-size={SHM_BYTES}",
            "--log-verbose=0",
            *restricted_flags(self.admin_key, self.open_apis),
        ]

    def admin_headers(self, protocol: str = "http") -> dict[str, str]:
        """What an operator's tritonclient call passes (``headers=``) to reach the restricted APIs
        (Triton reads the gRPC one with the prefix ``triton-grpc-protocol-``)."""
        return {("triton-grpc-protocol-" if protocol == "grpc" else "") + ADMIN_HEADER: self.admin_key}

    def start(self) -> None:
        """Launch the server; refuses when one of its ports is taken, so that another server's
        readiness is never mistaken for this one's."""
        busy = [port for port in (self.http_port, self.grpc_port, self.metrics_port) if _port_in_use(port)]
        if busy:
            raise RuntimeError(f"port(s) {busy} already in use: another server is running (python -m devtools.local_triton down?)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        _rotate(self.log_path)
        key_file = self.workdir / "admin_key"
        key_file.write_text(self.admin_key)
        key_file.chmod(0o600)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=server_environment(), start_new_session=True
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def healthy(self) -> bool:
        """A tiny real upload answered through every step (``syncdefense health``)."""
        from sync_defense.client import DetectionError, SyncDefenseClient

        try:
            with SyncDefenseClient(f"127.0.0.1:{self.grpc_port}", timeout_s=30.0, retry=False) as client:
                client.health()
            return True
        except (DetectionError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Block until ``/v2/health/ready`` and then a real answer; a server that exits or never gets
        there raises with its log. Notes the stubs' shared-memory regions for ``stop``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process is not None and self.process.poll() is None:
            if self.ready():
                _shm_file(self.workdir).write_text("\n".join(s.shm_region for s in stub_processes(self.process.pid).values()))
                if self.healthy():
                    return
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
        exited = self.process is not None and self.process.poll() is not None
        reason = f"exited with code {self.process.returncode}" if exited else f"did not answer within {timeout_s:.0f} s"
        self.stop()
        raise RuntimeError(f"tritonserver {reason}; log tail:\n{tail}")

    def stop(self) -> str:
        """SIGTERM: Triton drains in-flight requests for up to ``EXIT_TIMEOUT_S`` and exits by itself
        (a dead stub makes it wait that long); then the stubs a crashed server stranded are killed and its
        stale shared memory is removed."""
        if self.process is None:
            return "not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(EXIT_TIMEOUT_S + 15)
            except subprocess.TimeoutExpired:  # not seen with --exit-timeout-secs; a hung server must still go
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return _stranded(self.process.pid) + _clear_shm(self.workdir)

    def __enter__(self) -> LocalTriton:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_file(workdir: Path) -> Path:
    return workdir / "tritonserver.pid"


def _shm_file(workdir: Path) -> Path:
    return workdir / "shm_regions"


def _rotate(log: Path) -> None:
    """tritonserver.log -> .1 -> .2 ...: the log of a server that failed survives the next ``up``."""
    for i in range(LOG_GENERATIONS - 1, 0, -1):
        older = log.with_name(f"{log.name}.{i}")
        if older.exists():
            older.replace(log.with_name(f"{log.name}.{i + 1}"))
    if log.exists():
        log.replace(log.with_name(f"{log.name}.1"))


def _stat_fields(stat: Path) -> list[str]:
    """A ``/proc/<pid>/stat``'s fields after the command name (which may hold spaces and parentheses): state, ppid, pgrp, ..."""
    return stat.read_text().rsplit(")", 1)[1].split()


def process_group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (a server started with ``start_new_session`` and its stubs)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = _stat_fields(stat)[:3]
        except OSError:  # the process ended while we looked
            continue
        if int(pgrp) == pgid and state not in "ZXx":
            members.append(int(stat.parent.name))
    return members


def _stranded(pgid: int) -> str:
    """SIGKILL what is left of an exited server's process group. A server that exits cleanly takes its stubs
    with it, but after the Python backend crashed the server (SIGSEGV with a ``boost::interprocess::lock_exception``
    under load, seen once in CI; triton-inference-server/server#8882) two stubs stayed blocked on its
    shared-memory locks, holding their memory, and never left."""
    members = process_group(pgid)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_group(pgid) and time.monotonic() < deadline:  # SIGKILL takes effect when the kernel gets to it
        time.sleep(0.1)
    return f"killed {len(members)} stranded stub(s); " if members else ""


def _clear_shm(workdir: Path) -> str:
    """Remove the regions this server's stubs used that are still in ``/dev/shm`` once it has exited
    (Triton removes those of live stubs; a killed stub's stays, 16 MiB to GiBs). Only this server's:
    other servers on the machine share ``/dev/shm``."""
    names = _shm_file(workdir).read_text().split() if _shm_file(workdir).exists() else []
    stale = [SHM_DIR / name for name in names if (SHM_DIR / name).exists()]
    freed = sum(path.stat().st_size for path in stale)
    for path in stale:
        path.unlink()
    _shm_file(workdir).unlink(missing_ok=True)
    return f"removed {len(stale)} stale shared-memory region(s), {freed / 2**20:.0f} MiB"


def up(server: LocalTriton) -> None:
    """Start in the background, wait for readiness, remember the pid for ``down``."""
    server.start()
    server.wait_ready()
    _pid_file(server.workdir).write_text(str(server.process.pid))
    print(f"tritonserver answering: http 127.0.0.1:{server.http_port}, grpc 127.0.0.1:{server.grpc_port}, "
          f"log {server.log_path}, admin key in {server.workdir / 'admin_key'}")


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent has)."""
    try:
        return _stat_fields(Path(f"/proc/{pid}/stat"))[0] not in "ZXx"
    except OSError:
        return False


def _wait_gone(pid: int) -> str:
    """Wait for the server to exit after SIGTERM; SIGKILL its group only if it hangs past its own exit timeout."""
    started = time.monotonic()
    while time.monotonic() - started < EXIT_TIMEOUT_S + 15:
        if not _running(pid):
            return f"stopped in {time.monotonic() - started:.1f} s"
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    return "killed after the drain timeout"


def down(workdir: Path) -> None:
    """Stop the server ``up`` started (SIGTERM and its drain; SIGKILL only past ``EXIT_TIMEOUT_S`` + 15 s)."""
    pid_file = _pid_file(workdir)
    if not pid_file.exists():
        print("no server started by 'up' is running")
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
        outcome = _wait_gone(pid)
    except ProcessLookupError:
        outcome = "had already exited (its log says why)"
    print(f"tritonserver {outcome}; {_stranded(pid)}{_clear_shm(workdir)}; log {workdir / 'tritonserver.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down", "flags"))
    parser.add_argument("--repository", type=Path, default=PROJECT_ROOT / "model_repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--open", default="", metavar="APIS", help=f"comma-separated restricted APIs to leave open (of {RESTRICTED})")
    args = parser.parse_args()
    if args.action == "up":
        opened = tuple(api for api in args.open.split(",") if api)
        up(LocalTriton(args.repository, args.http_port, args.grpc_port, args.metrics_port, open_apis=opened))
    elif args.action == "down":
        down(STATE_DIR)
    else:
        print(" ".join(restricted_flags(os.environ.get("SYNC_DEFENSE_ADMIN_KEY", "${SYNC_DEFENSE_ADMIN_KEY}"))))


if __name__ == "__main__":
    main()
