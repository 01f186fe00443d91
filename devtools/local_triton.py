"""Run NVIDIA's real ``tritonserver`` 2.51 (the 24.10 release) from the ``nvidia-pytriton`` wheel.

Machines without Docker or a GPU still get the real server: the wheel ships the binary, the
Python backend and a backend stub per Python version. This module lays them out as Triton
expects and starts, waits for and stops the server.

    python -m devtools.local_triton up --repository model_repository
    python -m devtools.local_triton down
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_ROOT / "build" / "server"
SHM_BYTES = 16 * 1024 * 1024  # Python-backend shared memory per model, and its growth step


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
        ]

    def start(self) -> None:
        """Launch the server; refuses when one of its ports is taken, so that another server's
        readiness is never mistaken for this one's."""
        busy = [port for port in (self.http_port, self.grpc_port, self.metrics_port) if _port_in_use(port)]
        if busy:
            raise RuntimeError(f"port(s) {busy} already in use: another server is running (python -m devtools.local_triton down?)")
        self.workdir.mkdir(parents=True, exist_ok=True)
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

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Block until ``/v2/health/ready``; a server that exits or never gets ready raises with its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"tritonserver did not become ready within {timeout_s:.0f} s; log tail:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalTriton:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_file(workdir: Path) -> Path:
    return workdir / "tritonserver.pid"


def up(server: LocalTriton) -> None:
    """Start in the background, wait for readiness, remember the pid for ``down``."""
    server.start()
    server.wait_ready()
    _pid_file(server.workdir).write_text(str(server.process.pid))
    print(f"tritonserver ready: http 127.0.0.1:{server.http_port}, grpc 127.0.0.1:{server.grpc_port}, log {server.log_path}")


def down(workdir: Path, timeout_s: float = 30.0) -> None:
    """Stop the server ``up`` started (SIGTERM, then SIGKILL after ``timeout_s``)."""
    pid_file = _pid_file(workdir)
    if not pid_file.exists():
        print("no server started by 'up' is running")
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            print("tritonserver stopped")
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    print("tritonserver killed after the drain timeout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--repository", type=Path, default=PROJECT_ROOT / "model_repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args()
    if args.action == "up":
        up(LocalTriton(args.repository, args.http_port, args.grpc_port, args.metrics_port))
    else:
        down(STATE_DIR)


if __name__ == "__main__":
    main()
