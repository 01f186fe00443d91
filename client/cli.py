"""``syncdefense detect VIDEO...``: classify videos with a running Sync-Defense server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .api import DEFAULT_URLS, Detection, DetectionError, SyncDefenseClient
from .plot import plot_paths, plot_timeline


def _line(d: Detection) -> str:
    if d.fake_probability is None:
        return f"{d.file}: {d.verdict} ({len(d.faces)} faces, {d.latency_ms:.0f} ms)"
    offset = "" if d.av_offset_frames is None else f", A/V offset {d.av_offset_frames:+d} frames"
    return (
        f"{d.file}: {d.verdict} (fake probability {d.fake_probability:.3f}, confidence {d.confidence:.2f}{offset}, "
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncdefense", description="Lip-sync deepfake detection client.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("detect", help="classify videos (real / fake / uncertain / no_face / no_speech)")
    run.add_argument("videos", nargs="+", metavar="VIDEO")
    run.add_argument("--url", help=f"server HOST:PORT (default {DEFAULT_URLS['grpc']} for grpc, {DEFAULT_URLS['http']} for http)")
    run.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    run.add_argument("--json", action="store_true", help="print one JSON array, one object per video")
    run.add_argument("--plot", type=Path, metavar="PNG", help="draw each video's per-window timeline (several videos: PNG-<name>.png)")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds per video")
    run.set_defaults(handler=detect)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
