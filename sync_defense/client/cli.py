"""``syncdefense detect VIDEO...``: classify videos with a running Sync-Defense server;
``syncdefense health``: the liveness probe of compose and Kubernetes (exit 0 only when it answers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .api import DEFAULT_URLS, Detection, DetectionError, SyncDefenseClient
from .plot import plot_paths, plot_timeline
from .scan import add_scan_command


def _line(d: Detection) -> str:
    if d.fake_probability is None:
        return f"{d.file}: {d.verdict} ({len(d.faces)} faces, {d.latency_ms:.0f} ms)"
    offset = "" if d.av_offset_frames is None else f", A/V offset {d.av_offset_frames:+d} frames"
    fired = sorted({e.name for f in d.faces if f.speaking for e in f.forgery_evidence if e.fired})
    evidence = f", forgery evidence: {' '.join(fired)}" if fired else ""
    return (
        f"{d.file}: {d.verdict} (fake probability {d.fake_probability:.3f}, confidence {d.confidence:.2f}{offset}{evidence}, "
        f"{len(d.faces)} faces, {len(d.segments)} fake segments, {len(d.windows)} windows, {d.latency_ms:.0f} ms)"
    )


def detect(args: argparse.Namespace) -> int:
    failures = 0
    results = []
    plots = plot_paths(args.plot, args.videos) if args.plot else None
    with SyncDefenseClient(args.url, args.protocol, args.timeout) as client:
        for i, path in enumerate(args.videos):
            try:
                detection = client.detect(path)
            except (DetectionError, OSError) as exc:
                failures += 1
                print(f"{path}: error: {exc}", file=sys.stderr)
                continue
            results.append(detection)
            if plots:
                plot_timeline(detection.to_dict(), plots[i])
            if not args.json:
                print(_line(detection))
    if args.json:
        print(json.dumps([d.to_dict() for d in results], indent=2))
    return 1 if failures else 0


def health(args: argparse.Namespace) -> int:
    """One tiny real upload through the ensemble, not retried: a probe reports the server as it is now."""
    try:
        with SyncDefenseClient(args.url, args.protocol, args.timeout, retry=False) as client:
            detection = client.health()
    except (DetectionError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"healthy: {detection.verdict} in {detection.latency_ms:.0f} ms")
    return 0


def _server_options(parser: argparse.ArgumentParser, timeout_s: float, timeout_help: str) -> None:
    parser.add_argument("--url", help=f"server HOST:PORT (default {DEFAULT_URLS['grpc']} for grpc, {DEFAULT_URLS['http']} for http)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--timeout", type=float, default=timeout_s, help=timeout_help)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncdefense", description="Lip-sync deepfake detection client.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("detect", help="classify videos (real / fake / uncertain / no_face / no_speech)")
    run.add_argument("videos", nargs="+", metavar="VIDEO")
    _server_options(run, 300.0, "seconds per video, retries of a busy server included")
    run.add_argument("--json", action="store_true", help="print one JSON array, one object per video")
    run.add_argument("--plot", type=Path, metavar="PNG", help="draw each video's per-window timeline (several videos: PNG-<name>.png)")
    run.set_defaults(handler=detect)
    probe = commands.add_parser("health", help="liveness: a tiny real inference through every step; exit 0 when it answers")
    _server_options(probe, 15.0, "seconds before the probe fails")
    probe.set_defaults(handler=health)
    add_scan_command(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
