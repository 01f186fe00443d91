"""``syncdefense detect`` against the real server: JSON output, exit codes, server messages on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sync_defense.client.cli", "detect", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_json_for_each_video_over_both_protocols(triton, talking_mp4: bytes, tmp_path: Path) -> None:
    video = tmp_path / "talk.mp4"
    video.write_bytes(talking_mp4)
    for protocol, port in (("grpc", triton.grpc_port), ("http", triton.http_port)):
        done = run_cli("--url", f"127.0.0.1:{port}", "--protocol", protocol, "--json", str(video), str(video))
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
        assert [r["file"] for r in results] == [str(video)] * 2
        assert results[0]["verdict"] in {"real", "fake", "uncertain"}


def test_failed_video_gives_nonzero_exit_and_the_server_message(triton, talking_mp4: bytes, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    good.write_bytes(talking_mp4)
    bad.write_bytes(b"\x00" * 4096)
    done = run_cli("--url", f"127.0.0.1:{triton.grpc_port}", "--json", str(bad), str(good))
    assert done.returncode == 1
    assert "bad.mp4: error:" in done.stderr and "bad video" in done.stderr
    assert [r["file"] for r in json.loads(done.stdout)] == [str(good)]


def test_human_readable_line(triton, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "samples" / "talking_head.mp4"
    done = run_cli("--url", f"127.0.0.1:{triton.grpc_port}", str(sample))
    assert done.returncode == 0 and "talking_head.mp4:" in done.stdout and "fake probability" in done.stdout


def test_plot_draws_each_videos_timeline(triton, talking_mp4: bytes, tmp_path: Path) -> None:
    video = tmp_path / "talk.mp4"
    video.write_bytes(talking_mp4)
    done = run_cli("--url", f"127.0.0.1:{triton.grpc_port}", "--plot", str(tmp_path / "timeline.png"), str(video))
    assert done.returncode == 0, done.stderr
    image = (tmp_path / "timeline.png").read_bytes()
    assert image.startswith(b"\x89PNG") and len(image) > 10_000
