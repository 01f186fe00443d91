"""The benchmark videos: one talking head at 640x480, 25 fps, H.264 + AAC, looped to any length.

    python -m benchmarks.videos --out build/perf/videos --seconds 5 10 30 60 600

The issue's reference upload is a 10-s, 640x480, 25-30 fps mp4 with AAC sound; the other lengths
are the same face and speech repeated, so cost against length compares like with like. One ~10-s
clip is rendered once (sound and picture in sync) and streamed into the encoder frame by frame:
a 10-minute video never exists as a frame array (15 000 frames of 640x480 would be 14 GB).
Sound is written at 48 kHz like a camera's or phone's, so resampling is part of the measured cost.
Files are cached by name and made only when missing.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.signal import resample_poly

from sync_defense.offline.synthetic import scenes
from sync_defense.preprocessing.config import DEFAULT_CONFIG

SIZE = (640, 480)
FPS = 25
AUDIO_RATE = 48_000
AUDIO_CHUNK = 1024  # samples per AAC frame
REAL_DIR = Path("build/realval")  # real-people clips, when the real-recordings work has made them
REAL_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv")


def video_name(seconds: float) -> str:
    return f"talking_{SIZE[0]}x{SIZE[1]}_{seconds:g}s.mp4"


def _base_clip() -> tuple[np.ndarray, np.ndarray]:
    """About 10 s of one face saying two sentences: frames (n, 480, 640, 3) and 48-kHz audio cut to them."""
    audio = scenes.speech(*scenes.SENTENCES[:2])
    frames = scenes.talking_video(audio, fps=FPS, tile=SIZE)
    sr = DEFAULT_CONFIG.audio.sample_rate
    audio = audio[: int(len(frames) / FPS * sr)]
    return frames, resample_poly(audio, AUDIO_RATE, sr).astype(np.float32)


def encode_looped(frames: np.ndarray, audio: np.ndarray, seconds: float, out: Path) -> Path:
    """``seconds`` of ``frames``/``audio`` repeated, encoded straight to ``out`` (written atomically)."""
    n = int(round(seconds * FPS))
    samples = int(round(seconds * AUDIO_RATE))
    partial = out.with_suffix(".part")
    with av.open(str(partial), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        video.options = {"crf": "23", "preset": "veryfast"}
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for i in range(n):
            container.mux(video.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")))
        container.mux(video.encode(None))
        looped = np.resize(audio, samples)[None, :]  # np.resize repeats the clip's sound in step with its frames
        for start in range(0, samples, AUDIO_CHUNK):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(looped[:, start : start + AUDIO_CHUNK]), format="flt", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    partial.rename(out)
    return out


def make_videos(out: Path, seconds: Iterable[float]) -> dict[float, Path]:
    """``{seconds: path}`` of the synthetic videos, rendering the base clip only if one is missing."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {s: out / video_name(s) for s in seconds}
    missing = [s for s, p in paths.items() if not p.exists()]
    if missing:
        frames, audio = _base_clip()
        # The base clip's sound is a whole number of frames long, so every loop starts picture and sound together.
        audio = np.resize(audio, len(frames) * AUDIO_RATE // FPS)
        for s in missing:
            encode_looped(frames, audio, s, paths[s])
    return paths


def real_videos(folder: Path = REAL_DIR) -> list[Path]:
    """Clips of real people, if the real-recordings work has put some there (sorted by name)."""
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in REAL_SUFFIXES) if folder.is_dir() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/perf/videos"))
    parser.add_argument("--seconds", type=float, nargs="+", default=[5, 10, 30])
    args = parser.parse_args()
    for s, path in make_videos(args.out, args.seconds).items():
        print(f"{s:g} s: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
