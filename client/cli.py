"""``syncdefense detect VIDEO...``: classify videos with a running Sync-Defense server."""

from __future__ import annotations

import argparse
import json
import sys

from .api import DEFAULT_URLS, Detection, DetectionError, SyncDefenseClient


def _line(d: Detection) -> str:
    return (
        f"{d.file}: {d.verdict} (fake probability {d.fake_probability:.3f}, confidence {d.confidence:.2f}, "
        f"{d.windows} windows, {d.latency_ms:.0f} ms)"
    )


def detect(args: argparse.Namespace) -> int:
    failures = 0
    results = []
    with SyncDefenseClient(args.url, args.protocol, args.timeout) as client:
        for path in args.videos:
            try:
                detection = client.detect(path)
            except (DetectionError, OSError) as exc:
                failures += 1
                print(f"{path}: error: {exc}", file=sys.stderr)
                continue
            results.append(detection)
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
    run.add_argument("--timeout", type=float, default=300.0, help="seconds per video")
    run.set_defaults(handler=detect)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
