"""Fuzz the upload path: mutated real containers through the ``preprocess`` step, in a worker process.

    python -m benchmarks.fuzz_decode --seconds 600

Seeds are real files in several containers (mp4, mkv, mov, flv, MPEG-TS), written by the project's own
encoder from the liveness probe's video (no espeak needed). Each case is a seed mutated by bit
flips, "interesting" integers written over header-sized fields, cut, duplicated or spliced
chunks, then run through ``sync_defense.serving.preprocess_step.preprocess`` — what the server
runs on an upload — under a wall-clock budget. A case passes when it answers or is refused with a
``MediaError``; it fails when the worker dies (crash), gives no result within budget + grace
(hang), raises anything else (a bug the server would report as an internal error), or the
worker's peak memory passes the bound. Exit status 1 on any failure; failing inputs are saved.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import queue
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import av
import numpy as np

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "mov": "mov", "flv": "flv", "ts": "mpegts"}  # avi takes no AAC remux


def seeds() -> dict[str, bytes]:
    """The liveness probe's mp4 remuxed into each container (same streams, different headers and indexes)."""
    source = resources.files("sync_defense.client").joinpath("health.mp4").read_bytes()
    found = {}
    for name, fmt in CONTAINERS.items():
        buffer = io.BytesIO()
        with av.open(io.BytesIO(source)) as src, av.open(buffer, "w", format=fmt) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
            for packet in src.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
        found[name] = buffer.getvalue()
    return found


def mutate(data: bytes, others: list[bytes], rng: random.Random) -> tuple[bytes, str]:
    """One to four mutations of ``data``; returns the mutant and what was done (to reproduce by hand)."""
    out, done = bytearray(data), []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "int", "cut", "dup", "splice", "zero"))
        at = rng.randrange(len(out))
        if kind == "flip":
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "int":
            width = rng.choice((1, 2, 4))
            value = rng.choice(INTERESTING) & ((1 << 8 * width) - 1)
            out[at : at + width] = value.to_bytes(width, rng.choice(("big", "little")))
        elif kind == "cut":
            del out[at : at + rng.randint(1, max(1, len(out) // 8))]
        elif kind == "dup":
            out[at:at] = out[at : at + rng.randint(1, 4096)]
        elif kind == "splice":
            other = rng.choice(others)
            start = rng.randrange(len(other))
            out[at : at + 4096] = other[start : start + 4096]
        else:
            out[at : at + rng.randint(1, 256)] = bytes(rng.randint(1, 256))
        done.append(f"{kind}@{at}")
        if not out:
            out = bytearray(b"\0")
    return bytes(out), " ".join(done)


def nth_case(seed: int, n: int) -> bytes:
    """The ``n``-th case (1-based, as saved: ``case-<n>.bin``) of a run with ``seed``: failures replay without files."""
    rng, bank = random.Random(seed), list(seeds().values())
    for _ in range(n):
        data, _how = mutate(rng.choice(bank), bank, rng)
    return data


def peak_rss_mib() -> float:
    """This process's own peak resident memory (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux keeps
    that across ``execve``, so a spawned worker would report its parent's size at the fork (the test
    suite's, 2 GiB late in a run) instead of its own."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def _worker(cases: mp.Queue, results: mp.Queue, budget_s: float) -> None:
    """Runs cases until told to stop; reports the outcome and its own peak memory after each."""
    from sync_defense.preprocessing import MediaError
    from sync_defense.preprocessing.decode import wall_clock_budget
    from sync_defense.serving.preprocess_step import preprocess

    while (case := cases.get()) is not None:
        try:
            with wall_clock_budget(budget_s):
                preprocess(np.array([case], dtype=np.object_))
            outcome = "answered"
        except MediaError:
            outcome = "refused"
        except Exception as exc:  # the finding: anything but a clear refusal
            outcome = f"error: {type(exc).__name__}: {exc}"[:300]
        results.put((outcome, peak_rss_mib()))


@dataclass
class Report:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (what, mutation)
    peak_mib: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


class _Worker:
    """A worker process that is replaced after a crash or a hang."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._start()

    def _start(self) -> None:
        context = mp.get_context("spawn")  # no inherited state: a crash here is the decoder's
        self.cases, self.results = context.Queue(), context.Queue()
        self.process = context.Process(target=_worker, args=(self.cases, self.results, self.budget_s), daemon=True)
        self.process.start()

    def run(self, data: bytes, grace_s: float) -> tuple[str, float]:
        """``(outcome, peak MiB)``; outcome ``crash`` or ``hang`` replaces the worker."""
        self.cases.put(data)
        deadline = time.monotonic() + self.budget_s + grace_s
        while time.monotonic() < deadline:
            try:
                return self.results.get(timeout=0.2)
            except queue.Empty:
                if not self.process.is_alive():
                    outcome = f"crash (exit {self.process.exitcode})"
                    self._start()
                    return outcome, 0.0
        self.process.kill()
        self.process.join()
        self._start()
        return "hang", 0.0

    def close(self) -> None:
        self.cases.put(None)
        self.process.join(10)


def fuzz(seconds: float, seed: int = 0, budget_s: float = 10.0, grace_s: float = 20.0, max_rss_mib: float = 2048.0,
         save: Path | None = None) -> Report:
    """Mutated seeds for ``seconds``; every failure recorded (and saved under ``save``)."""
    rng = random.Random(seed)
    bank = list(seeds().values())
    report = Report()
    worker = _Worker(budget_s)
    worker.run(bank[0], grace_s=120.0)  # imports and warm-up are not the first case's budget
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            data, how = mutate(rng.choice(bank), bank, rng)
            outcome, peak_mib = worker.run(data, grace_s)
            report.cases += 1
            report.outcomes[outcome.split(":")[0].split(" (")[0]] += 1
            over_bound = peak_mib > max_rss_mib >= report.peak_mib  # the case that first passed the bound
            report.peak_mib = max(report.peak_mib, peak_mib)
            if outcome not in ("answered", "refused") or over_bound:
                report.failures.append((f"{outcome}, peak {peak_mib:.0f} MiB", how))
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    (save / f"case-{report.cases:05d}.bin").write_bytes(data)
    finally:
        worker.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=10.0, help="wall-clock budget per case (LimitsConfig.max_wall_s on the server)")
    parser.add_argument("--max-rss-mib", type=float, default=2048.0, help="the worker's peak memory bound")
    parser.add_argument("--save", type=Path, default=Path("build/fuzz"), help="failing inputs go here")
    args = parser.parse_args()
    report = fuzz(args.seconds, args.seed, args.budget, max_rss_mib=args.max_rss_mib, save=args.save)
    print(f"{report.cases} cases in {args.seconds:.0f} s: {dict(report.outcomes)}; worker peak {report.peak_mib:.0f} MiB")
    for what, how in report.failures:
        print(f"FAIL {what}: {how}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
