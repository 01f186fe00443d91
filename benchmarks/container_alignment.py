"""Are the genuine copies of one recording in sync with each other? Measured on the content, without the detector.

    python -m benchmarks.container_alignment [--manifest build/realval/manifest.json]

The real validation set labels every genuine copy of a recording "offset 0": the containers a
package ships (Debian's ``movie-hello`` as .mp4, .avi and .mpeg) and the re-encodes and remuxes made
here. Each is decoded exactly as the server decodes it (``scan``: the timeline, and the audio cut on
its clock), and compared with the recording's first copy on the content itself: the video by the
cross-correlation of the frames' mean-brightness changes (whole frames), the audio by the
cross-correlation of the samples (to the sample). A copy whose audio moves against its own video
by more than a frame is not in sync with the first copy, whatever its label says; which copy is
right cannot be told from the files alone.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sync_defense.offline.realdata.sources import by_name
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb
from sync_defense.preprocessing.scan import read_audio, scan_faces

MAX_VIDEO_LAG = 25  # frames
MAX_AUDIO_LAG_S = 1.0
AUDIO_PROBE_S = (1.0, 3.0)  # the stretch of the copy's audio looked for in the first copy's


@dataclass(frozen=True)
class Decoded:
    """One copy on the server's timeline: each frame's mean brightness and the audio samples."""

    brightness: np.ndarray
    samples: np.ndarray

    @classmethod
    def of(cls, data: bytes) -> Decoded:
        scan = scan_faces(data, DEFAULT_CONFIG)
        audio = read_audio(data, scan.timeline, DEFAULT_CONFIG)
        brightness = np.array([to_rgb(frame).astype(np.float32).mean() for _, frame in iter_timeline_frames(data, DEFAULT_CONFIG)])
        return cls(brightness, audio.samples)


def video_lag(reference: np.ndarray, copy: np.ndarray) -> int:
    """Frames ``lag`` for which ``copy[k]`` shows what ``reference[k + lag]`` does (brightness changes)."""
    a, b = np.diff(reference), np.diff(copy)
    n = min(len(a), len(b))

    def r(lag: int) -> float:
        x, y = a[max(0, lag) : n + min(0, lag)], b[max(0, -lag) : n - max(0, lag)]
        return float(np.corrcoef(x, y)[0, 1])

    return max(range(-MAX_VIDEO_LAG, MAX_VIDEO_LAG + 1), key=r)


def audio_lag_s(reference: np.ndarray, copy: np.ndarray, rate: int) -> float:
    """Seconds ``lag`` for which ``copy[t]`` sounds as ``reference[t + lag]`` does."""
    start, end = (int(s * rate) for s in AUDIO_PROBE_S)
    reach = int(MAX_AUDIO_LAG_S * rate)
    probe = copy[start:end]
    window = reference[max(0, start - reach) : end + reach]
    score = np.correlate(window, probe, mode="valid")
    return (int(np.argmax(score)) + max(0, start - reach) - start) / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("build/realval/manifest.json"))
    args = parser.parse_args()
    fps, rate = DEFAULT_CONFIG.timeline.fps, DEFAULT_CONFIG.audio.sample_rate
    first: dict[str, tuple[str, Decoded]] = {}
    for case in json.loads(args.manifest.read_text())["cases"]:
        if case["label"] != "real":
            continue
        recording = by_name(case["sources"][0]).recording_id
        copy = Decoded.of((args.manifest.parent / case["file"]).read_bytes())
        if recording not in first:
            first[recording] = (case["case"], copy)
            continue
        name, reference = first[recording]
        frames, seconds = video_lag(reference.brightness, copy.brightness), audio_lag_s(reference.samples, copy.samples, rate)
        drift = seconds - frames / fps  # > 0: against its picture, this copy's sound comes earlier than the first copy's
        print(f"{case['case']} against {name}: video {frames:+d} frames, audio {1000 * seconds:+.0f} ms; "
              f"audio against video {1000 * drift:+.0f} ms ({drift * fps:+.1f} frames)", flush=True)


if __name__ == "__main__":
    main()
