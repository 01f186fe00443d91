"""Decoding on the CPU against NVDEC: frames per second, CPU seconds, and whether the frames are the same.

    python -m benchmarks.decode_speed VIDEO [VIDEO ...] [--repeats 3]

Each video is decoded onto the server's timeline (``decode.iter_timeline_frames``) and every timeline frame
converted to RGB, as pass 2 does: once with the CPU default and once with the setting
``SYNC_DEFENSE_DECODE_HWACCEL=cuda`` gives (NVDEC through PyAV's FFmpeg, frames copied back to memory). It
prints the median wall and CPU seconds of ``--repeats`` passes, frames per second, whether both give the
same timeline, and the largest pixel difference (NV12 to RGB may round differently from YUV 4:2:0 on the
CPU). Where no GPU decoder can be opened, the CUDA row says why: ``tests/test_decode.py`` checks that an
upload is then refused, never decoded on the CPU unnoticed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sync_defense.preprocessing.config import DEFAULT_CONFIG, DecodeConfig, PreprocessConfig
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb

SETTINGS = {"cpu": DEFAULT_CONFIG, "cuda": replace(DEFAULT_CONFIG, decode=DecodeConfig("cuda"))}


def decoded(data: bytes, cfg: PreprocessConfig) -> list[tuple[int, float, np.ndarray]]:
    """``(k, frame time, RGB)`` of every timeline frame."""
    return [(k, frame.time, to_rgb(frame)) for k, frame in iter_timeline_frames(data, cfg)]


def timed(data: bytes, cfg: PreprocessConfig, repeats: int) -> tuple[dict, list[tuple[int, float, np.ndarray]]]:
    walls, cpus, frames = [], [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        frames = decoded(data, cfg)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall_s = statistics.median(walls)
    return {"frames": len(frames), "wall_s": round(wall_s, 3), "cpu_s": round(statistics.median(cpus), 3),
            "frames_per_s": round(len(frames) / wall_s, 1)}, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for video in args.videos:
        data = video.read_bytes()
        cpu_row, cpu_frames = timed(data, SETTINGS["cpu"], args.repeats)
        rows.append({"video": str(video), "decoder": "cpu", **cpu_row})
        print(json.dumps(rows[-1]), flush=True)
        try:
            gpu_row, gpu_frames = timed(data, SETTINGS["cuda"], args.repeats)
        except RuntimeError as error:
            rows.append({"video": str(video), "decoder": "cuda", "error": str(error)})
        else:
            same = [(k, t) for k, t, _ in gpu_frames] == [(k, t) for k, t, _ in cpu_frames]
            pixels = max((int(np.abs(a.astype(np.int16) - b).max()) for (_, _, a), (_, _, b) in zip(cpu_frames, gpu_frames, strict=True)),
                         default=0) if same else None  # frames of two timelines are not the same frames
            rows.append({"video": str(video), "decoder": "cuda", **gpu_row, "same_timeline": same, "max_pixel_difference": pixels})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
