"""Stop the server when one of its Python-backend stubs dies, so that an orchestrator replaces it.

Triton 2.51's Python backend never restarts a dead stub (its library has no restart path): every
request routed to that instance fails with ``Stub process '<instance>' is not healthy`` while
``/v2/health/ready`` and the model's ready stay 200 — with two ``preprocess`` instances, every
second upload fails forever. A server that cannot serve must say so: each step runs this watchdog,
and the first one that sees a peer stub gone sends the server SIGTERM. Triton then reports not
ready, lets in-flight requests finish (``--exit-timeout-secs``) and exits; Kubernetes, compose
(``restart: unless-stopped``) or ``devtools.local_triton`` start a fresh one. Every step instance
watches, so no single stub's death goes unseen (a one-instance step that dies also fails every
request, which ``syncdefense health`` reports). Stubs also leave when the server stops: a death
counts only while the server still says it is ready, which is the failure described above.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

STUB_BINARY = b"triton_python_backend_stub"
PROC = Path("/proc")
INSTANCE = re.compile(r"_\d+_\d+$")


class Stub(NamedTuple):
    instance: str  # preprocess_0_1
    shm_region: str  # the /dev/shm file it shares with the server (left behind when it is killed)


def stub_processes(server_pid: int) -> dict[int, Stub]:
    """Live Python-backend stubs of the server by pid (Triton passes both names on their command line)."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while being read
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == server_pid and state not in "ZXx" and argv[0].endswith(STUB_BINARY) and len(argv) > 8:
            found[int(entry.name)] = Stub(argv[8].decode(errors="replace"), argv[2].decode(errors="replace"))
    return found


def instance_stubs(server_pid: int) -> dict[int, Stub]:
    """The stubs that serve requests (``<model>_<group>_<n>``); a model's own stub, which only completes
    its config at load time and then exits, is not one of them."""
    return {pid: stub for pid, stub in stub_processes(server_pid).items() if INSTANCE.search(stub.instance)}


def server_ready(server_pid: int) -> bool:
    """The server's ``/v2/health/ready`` (its HTTP port read from its command line); False while it
    starts or stops. A health API behind the operator key (403) counts as serving."""
    try:
        argv = (PROC / str(server_pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:  # gone
        return False
    port = next((int(a.split(b"=", 1)[1]) for a in argv if a.startswith(b"--http-port=")), 8000)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as reply:
            return reply.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 403
    except OSError:  # refused: the server is stopping (or serves no HTTP: then deaths go to the health probe)
        return False


class StubWatchdog:
    """A daemon thread that calls ``on_death(names)`` once when a stub it saw alive is gone."""

    def __init__(self, server_pid: int, on_death: Callable[[list[str]], None], interval_s: float = 1.0) -> None:
        self.server_pid, self.on_death, self.interval_s = server_pid, on_death, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-watchdog", daemon=True)

    def start(self) -> StubWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Called from the step's ``finalize``: stubs leaving at shutdown are not deaths."""
        self._stop.set()

    def _run(self) -> None:
        seen: dict[int, Stub] = {}
        while not self._stop.wait(self.interval_s):
            alive = instance_stubs(self.server_pid)
            dead = [stub.instance for pid, stub in seen.items() if pid not in alive]
            if dead:
                if not self._stop.is_set() and server_ready(self.server_pid):
                    self.on_death(sorted(dead))
                return
            seen.update(alive)


def terminate_server(server_pid: int, log: Callable[[str], None]) -> Callable[[list[str]], None]:
    """The watchdog's action: log which stubs died, then SIGTERM the server (graceful drain)."""

    def act(dead: list[str]) -> None:
        log(f"Python-backend stub(s) {', '.join(dead)} died and Triton does not restart them: "
            "stopping the server so that it is replaced")
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(server_pid, signal.SIGTERM)

    return act
