"""A long video through a running server: latency, windows scored, and peak memory (PSS) of server and client.

    python -m benchmarks.long_video --minutes 10 --url 127.0.0.1:8001 --server-pid "$(cat build/server/tritonserver.pid)"

The video is a 10-s talking-face clip looped (H.264 + AAC, 320x240, 25 fps), so it is real speech
in sync from start to end (its drawn mouth is opened by the loudness itself: ``too_perfect_sync``
fires). The client is the CLI in a subprocess so that its memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sync_defense.offline.synthetic import scenes

from .memory import PeakMemory

MIB = 1 << 20


@dataclass(frozen=True)
class LongVideoRun:
    minutes: float
    file_mib: float
    latency_s: float
    verdict: str
    fake_probability: float | None
    forgery_evidence: list[str]  # the forgery traces that fired on the deciding face
    faces: int
    windows: int
    sampled: bool
    server_pss_before_mib: float
    server_peak_pss_mib: float
    client_peak_pss_mib: float


def run(video: Path, url: str, server_pid: int) -> LongVideoRun:
    """Classify ``video`` with the CLI while sampling both process trees."""
    command = [sys.executable, "-m", "sync_defense.client.cli", "detect", "--json", "--url", url, "--timeout", "1800", str(video)]
    with PeakMemory(server_pid) as server:
        before = server.bytes
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with PeakMemory(child.pid) as client:
            out, err = child.communicate()
        latency = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"the client failed: {err}")
    result = json.loads(out)[0]
    deciding = next((f for f in result["faces"] if f["track_id"] == result["deciding_track_id"]), None)
    return LongVideoRun(
        minutes=round(result["duration_s"] / 60, 2), file_mib=round(video.stat().st_size / MIB, 1), latency_s=round(latency, 1),
        verdict=result["verdict"], fake_probability=result["fake_probability"],
        forgery_evidence=[e["name"] for e in deciding["forgery_evidence"] if e["fired"]] if deciding else [],
        faces=len(result["faces"]), windows=len(result["windows"]), sampled=result["sampled"],
        server_pss_before_mib=round(before / MIB), server_peak_pss_mib=round(server.bytes / MIB),
        client_peak_pss_mib=round(client.bytes / MIB),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--server-pid", type=int, required=True, help="the tritonserver process (its children are counted)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        video.write_bytes(scenes.looped_video(args.minutes * 60))
        print(json.dumps(asdict(run(video, args.url, args.server_pid)), indent=2))


if __name__ == "__main__":
    main()
