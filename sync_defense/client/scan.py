"""``syncdefense scan``: score a whole archive of videos against one or more servers, resumably.

    syncdefense scan --out results.jsonl --concurrency 8 --url node-a:8001 --url node-b:8001 /archive
    syncdefense scan --out results.jsonl paths.txt          # one path per line ('#' comments, blank lines skipped)

Each video's answer is one JSON line, the object ``detect --json`` prints (``file`` is the absolute path); a video
the server refuses is a line ``{"file": ..., "error": ...}``. Every line is appended with one write and fsync'd
before the next, so a rerun with the same ``--out`` skips every video that already has a line and scores the rest:
nothing twice, nothing lost on Ctrl-C (the first stops handing out videos and waits for those in flight, a second
quits at once; an unfinished video simply has no line yet). A failure is the video's when its server is still
ready afterwards; a server that is not is skipped for the other URLs, and when none is ready the scan stops without
writing a line for that video.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sync_defense.contract import VERDICTS

from .api import DEFAULT_URLS, DetectionError, SyncDefenseClient

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv"})


def find_videos(source: Path) -> list[Path]:
    """A directory's videos (recursively, sorted), the paths listed in a text file (relative to its folder), or one video."""
    if source.is_dir():
        paths = sorted(p.resolve() for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        paths = [source.resolve()]
    else:
        lines = (line.strip() for line in source.read_text().splitlines())
        paths = [(source.parent / line).resolve() for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(paths))


def read_done(out: Path) -> dict[str, dict]:
    """The lines already in ``out`` by file; a last line cut short by a crash is removed so the file stays JSONL."""
    if not out.exists():
        return {}
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with out.open("r+b") as f:
            f.truncate(len(complete))
    done = {}
    for line in complete.decode().splitlines():
        if line.strip():
            record = json.loads(line)
            done[record["file"]] = record
    return done


class ResultLog:
    """Append-only JSONL: one ``os.write`` per line, then fsync, so an interrupt never leaves half a line."""

    def __init__(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def _alive(client: SyncDefenseClient) -> bool:
    """Whether the server still answers readiness: after a failure, tells the video's fault from the server's."""
    try:
        return client.ready()
    except Exception:  # any failure to answer (refused, reset, timed out, 5xx) means not alive
        return False


class ServersUnreachable(RuntimeError):
    pass


class Worker(threading.Thread):
    """Scores videos from a shared queue; starts at its own URL and moves to the next when a server is gone."""

    def __init__(self, index: int, urls: list[str], protocol: str, timeout_s: float, todo: queue.Queue, results: queue.Queue,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"scan-{index}")  # daemon: a second Ctrl-C does not wait for a request
        self.urls = urls[index % len(urls):] + urls[: index % len(urls)]
        self.protocol, self.timeout_s = protocol, timeout_s
        self.todo, self.results, self.stop = todo, results, stop
        self.clients: dict[str, SyncDefenseClient] = {}

    def _client(self, url: str) -> SyncDefenseClient:
        """No retries inside the client: a failed server is left for the next URL at once."""
        if url not in self.clients:
            self.clients[url] = SyncDefenseClient(url, self.protocol, self.timeout_s, retry=False)
        return self.clients[url]

    def score(self, path: Path) -> dict:
        """The video's line: its answer, or its error (unreadable, too large, refused by a server that is fine)."""
        for url in self.urls:
            client = self._client(url)
            try:
                return client.detect(path).to_dict()
            except (DetectionError, OSError) as error:
                if _alive(client):
                    return {"file": str(path), "error": str(error)}
                self.clients.pop(url).close()
        raise ServersUnreachable(f"no server is ready at {', '.join(self.urls)}")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                path = self.todo.get_nowait()
            except queue.Empty:
                break
            try:
                self.results.put(self.score(path))
            except ServersUnreachable as error:
                self.results.put(error)
                break
        for client in self.clients.values():
            client.close()
        self.results.put(None)  # this worker is finished


@dataclass
class Progress:
    """A one-line progress report on stderr (redrawn on a terminal, one line per video otherwise)."""

    total: int
    started: float
    done: int = 0

    def update(self, counts: Counter) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        tally = " ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        line = f"[{self.done}/{self.total}] {100 * self.done / self.total:5.1f}%  {rate:.2f} videos/s  ETA {eta:4.0f} s  {tally}"
        if sys.stderr.isatty():
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def summary_table(records: dict[str, dict], scored_now: int, skipped: int, seconds: float) -> str:
    """Verdict counts over the whole results file, and what this run did."""
    counts = Counter("error" if "error" in r else r["verdict"] for r in records.values())
    rows = [(k, counts[k]) for k in (*VERDICTS, "error")]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'verdict':{width}s}  videos", *(f"{k:{width}s}  {n:6d}" for k, n in rows), f"{'total':{width}s}  {len(records):6d}"]
    rate = f", {scored_now / seconds:.2f} videos/s" if scored_now and seconds > 0 else ""
    lines.append(f"this run: {scored_now} scored in {seconds:.1f} s{rate}; {skipped} already in the results file")
    return "\n".join(lines)


def _drain(results: queue.Queue, log: ResultLog, progress: Progress, counts: Counter, stop: threading.Event) -> str:
    """Handle one message of the workers; returns what it was: "", "finished", "unreachable", "scored" or "error"."""
    try:
        item = results.get(timeout=0.5)
    except queue.Empty:
        return ""
    if item is None:
        return "finished"
    if isinstance(item, ServersUnreachable):
        stop.set()
        print(f"scan: {item}", file=sys.stderr)
        return "unreachable"
    log.append(item)
    counts["error" if "error" in item else item["verdict"]] += 1
    progress.update(counts)
    return "error" if "error" in item else "scored"


def scan(args: argparse.Namespace) -> int:
    if not args.source.exists() or args.concurrency < 1:
        print(f"scan: {args.source} does not exist" if not args.source.exists() else "scan: --concurrency must be >= 1",
              file=sys.stderr)
        return 2
    videos = find_videos(args.source)
    done = read_done(args.out)
    todo: queue.Queue = queue.Queue()
    for path in videos:
        if str(path) not in done:
            todo.put(path)
    pending, skipped = todo.qsize(), len(videos) - todo.qsize()
    urls = args.url or [DEFAULT_URLS[args.protocol]]
    print(f"scan: {len(videos)} videos, {skipped} already in {args.out}, {pending} to score on {', '.join(urls)}", file=sys.stderr)
    results: queue.Queue = queue.Queue()
    stop = threading.Event()
    workers = [Worker(i, urls, args.protocol, args.timeout, todo, results, stop) for i in range(min(args.concurrency, pending))]
    for worker in workers:
        worker.start()
    log, started = ResultLog(args.out), time.monotonic()
    progress, counts = Progress(pending, started), Counter()
    running, events, interrupted = len(workers), Counter(), False
    try:
        while running:
            try:
                event = _drain(results, log, progress, counts, stop)
                events[event] += 1
                running -= event == "finished"
            except KeyboardInterrupt:
                if interrupted:
                    print("\nscan: stopped; rerun the same command to score the rest", file=sys.stderr)
                    return 130
                interrupted = True
                stop.set()
                print("\nscan: interrupted, waiting for the videos in flight (Ctrl-C again to quit now)", file=sys.stderr)
    finally:
        log.close()
    if sys.stderr.isatty() and progress.done:
        print(file=sys.stderr)
    print(summary_table(read_done(args.out), progress.done, skipped, time.monotonic() - started))
    if interrupted or events["unreachable"]:
        print("scan: not finished; rerun the same command to score the rest", file=sys.stderr)
        return 130 if interrupted else 2
    return 1 if events["error"] else 0


def add_scan_command(commands: argparse._SubParsersAction) -> None:
    """The ``scan`` subcommand of the ``syncdefense`` CLI."""
    run = commands.add_parser("scan", help="score a directory or a list of videos into a resumable JSONL file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("source", type=Path, metavar="DIR|LIST", help="a directory (walked for mp4/webm/mov/avi/mkv) or a file of paths")
    run.add_argument("--out", type=Path, required=True, metavar="RESULTS.jsonl", help="appended to; a rerun resumes")
    run.add_argument("--concurrency", type=int, default=2, help="videos in flight at once (workers)")
    run.add_argument("--url", action="append", metavar="HOST:PORT", help="a server; repeat for several, shared by the workers")
    run.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds per video")
    run.set_defaults(handler=scan)
