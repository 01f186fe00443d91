"""Where preprocessing's time goes, stage by stage, for the videos given.

    python -m benchmarks.preprocess_stages build/perf/videos/talking_640x480_10s.mp4 [VIDEO ...] [--repeats 3]

Per video, in this process with the face models on their worker threads as in the server: one
decoding pass over the whole file (frames only, then with the colour conversion the crops need),
pass 1 (faces and lips on every 5th frame; for a skimmed long video, its stretches), the audio
(decoding, VAD, log-mel), pass 2 (mouth crops and the lip mesh on the scored frames, the windows)
and the whole ``preprocess_video``. Pass 1 and pass 2 are differences of timed calls. Each figure is
the median of ``--repeats`` runs after one warm-up; expect +-30% between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video, warm_up
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb
from sync_defense.preprocessing.pipeline import scan_video
from sync_defense.preprocessing.scan import read_audio

STAGES = ("decode", "decode_rgb", "pass1", "audio", "pass2", "whole")


def median_s(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stages(data: bytes, repeats: int) -> dict[str, float | int | bool]:
    """Seconds per stage for one upload, with its timeline length and whether it was skimmed."""
    cfg = DEFAULT_CONFIG
    scan, _ = scan_video(data, cfg)  # also the warm-up
    decode = median_s(lambda: sum(1 for _ in iter_timeline_frames(data, cfg)), repeats)
    decode_rgb = median_s(lambda: [to_rgb(frame) for _, frame in iter_timeline_frames(data, cfg)], repeats)
    scan_and_audio = median_s(lambda: scan_video(data, cfg), repeats)
    audio = median_s(lambda: read_audio(data, scan.timeline, cfg), repeats)
    whole = median_s(lambda: preprocess_video(data, cfg), repeats)
    return {
        "frames": scan.n_frames, "skimmed": scan.spans is not None, "decode": decode, "decode_rgb": decode_rgb,
        "pass1": scan_and_audio - audio, "audio": audio, "pass2": whole - scan_and_audio, "whole": whole,
    }


def table(rows: dict[str, dict[str, float | int | bool]]) -> str:
    head = ["video", "frames", "skimmed", *(f"{s} s" for s in STAGES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [name, str(r["frames"]), "yes" if r["skimmed"] else "no", *(f"{r[s]:.3f}" for s in STAGES)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warm_up()
    print(table({video.name: stages(video.read_bytes(), args.repeats) for video in args.videos}))


if __name__ == "__main__":
    main()
