"""``syncdefense scan``: an archive scored into JSONL through the real server, interrupted and resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.local_triton import free_port
from sync_defense.client.scan import find_videos, read_done, summary_table


def _scan(*args: str) -> list[str]:
    return [sys.executable, "-m", "sync_defense.client.cli", "scan", *args]


def _counts(table: str) -> dict[str, int]:
    """The summary table's rows: verdict (or error, total) -> videos."""
    return {row.split()[0]: int(row.split()[1]) for row in table.splitlines() if len(row.split()) == 2 and row.split()[1].isdigit()}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture()
def archive(tmp_path: Path, talking_mp4: bytes, silent_mp4: bytes, no_face_mp4: bytes) -> Path:
    """Three small videos of three kinds (one in a subfolder), a broken upload and a file that is not a video."""
    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    (root / "talk.mp4").write_bytes(talking_mp4)
    (root / "sub" / "silent.MOV").write_bytes(silent_mp4)
    (root / "noface.mkv").write_bytes(no_face_mp4)
    (root / "zz-broken.webm").write_bytes(b"\x00" * 4096)
    (root / "notes.txt").write_text("not a video")
    return root


def test_sources_and_an_interrupted_results_file(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").touch()
    (tmp_path / "b.txt").touch()
    listing = tmp_path / "list.txt"
    listing.write_text(f"# archive\na.mp4\n\n{tmp_path / 'c.webm'}\na.mp4\n")
    assert find_videos(tmp_path) == [tmp_path / "a.mp4"]
    assert find_videos(listing) == [tmp_path / "a.mp4", tmp_path / "c.webm"]  # relative to the list, deduplicated
    assert find_videos(tmp_path / "a.mp4") == [tmp_path / "a.mp4"]

    out = tmp_path / "results.jsonl"
    out.write_text('{"file": "/x.mp4", "verdict": "real"}\n{"file": "/y.mp4", "ver')  # killed mid-write
    assert list(read_done(out)) == ["/x.mp4"]
    assert out.read_text() == '{"file": "/x.mp4", "verdict": "real"}\n'  # the cut line is gone before appending
    table = summary_table({"/x.mp4": {"verdict": "real"}, "/z.mp4": {"error": "bad video"}}, 1, 1, 2.0)
    assert _counts(table) == {"real": 1, "fake": 0, "uncertain": 0, "no_face": 0, "no_speech": 0, "error": 1, "total": 2}
    assert "this run: 1 scored in 2.0 s, 0.50 videos/s; 1 already in the results file" in table


def test_scan_is_interrupted_and_resumes_scoring_each_file_once(triton, archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    live = f"127.0.0.1:{triton.grpc_port}"
    # A shell that starts jobs in the background (CI runners, nohup) leaves SIGINT ignored in its children:
    # give the scan the terminal's default, as a user's Ctrl-C would find it.
    first = subprocess.Popen(_scan("--out", str(out), "--concurrency", "1", "--url", live, str(archive)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    deadline = time.monotonic() + 300
    while not _lines(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)  # Ctrl-C after the first answer
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 130, stderr
    assert "interrupted" in stderr and "rerun the same command" in stderr
    before = _lines(out)
    assert 1 <= len(before) < 4

    # The rerun shares two URLs between two workers; one of them is down, so its worker moves to the live one.
    dead = f"127.0.0.1:{free_port()}"
    second = subprocess.run(_scan("--out", str(out), "--concurrency", "2", "--url", dead, "--url", live, str(archive)),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 1, second.stderr  # the broken upload is an error line
    assert f"{len(before)} already in {out}" in second.stderr
    records = _lines(out)
    assert records[: len(before)] == before  # appended, never rewritten
    files = [r["file"] for r in records]
    expected = ["noface.mkv", "sub/silent.MOV", "talk.mp4", "zz-broken.webm"]
    assert sorted(files) == [str(archive / name) for name in expected]  # every file exactly once
    by_name = {Path(r["file"]).relative_to(archive).as_posix(): r for r in records}
    assert by_name["talk.mp4"]["verdict"] in {"real", "fake", "uncertain"} and by_name["talk.mp4"]["windows"]
    assert by_name["sub/silent.MOV"]["verdict"] == "no_speech" and by_name["noface.mkv"]["verdict"] == "no_face"
    assert "bad video" in by_name["zz-broken.webm"]["error"]
    assert set(by_name["talk.mp4"]) >= {"file", "verdict", "fake_probability", "faces", "segments", "latency_ms"}
    assert _counts(second.stdout)["total"] == 4 and _counts(second.stdout)["error"] == 1

    third = subprocess.run(_scan("--out", str(out), "--url", live, str(archive)), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "0 to score" in third.stderr and _lines(out) == records


def test_scan_stops_without_a_line_when_no_server_is_ready(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    done = subprocess.run(_scan("--out", str(out), "--url", f"127.0.0.1:{free_port()}", str(archive)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no server is ready" in done.stderr
    assert _lines(out) == []
