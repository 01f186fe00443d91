"""Peak memory and CPU time of a process and its descendants.

Triton's Python backend runs every model instance in its own stub process, so the server's
memory is the sum over the ``tritonserver`` process tree, not the main process alone. The sum is
of PSS (proportional set size): the tensors the steps exchange live in shared memory mapped by
several processes, and summing RSS would count those pages once per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _tree(pid: int) -> Iterator[int]:
    """``pid`` and all its descendants now."""
    tree, todo = _children(), [pid]
    while todo:
        current = todo.pop()
        yield current
        todo += tree.get(current, [])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _summed(pid: int, measure: Callable[[int], float]) -> float:
    total = 0.0
    for current in _tree(pid):
        try:
            total += measure(current)
        except OSError:
            continue  # ended while we looked
    return total


def tree_pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` and all its descendants now."""
    return int(_summed(pid, _pss_bytes))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants: the server's cost per
    upload, where latency alone would hide work done on a second core."""
    return _summed(pid, _cpu_seconds)


class PeakMemory:
    """``with PeakMemory(pid) as peak: ...`` then ``peak.bytes``: the largest tree PSS seen every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s, self.bytes = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, tree_pss_bytes(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self.bytes = tree_pss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, tree_pss_bytes(self.pid))
