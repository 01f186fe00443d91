"""Do the containers of one recording agree on where the sound sits against the picture?

Some validation recordings come in several containers (Debian's ``movie-hello`` as MP4, AVI and
MPEG-PS), each labelled genuine with an offset of 0, which assumes every container kept the
recording's own alignment. This measures that without any detector: the same picture is found in
both files (frame matching on small grey thumbnails), the same sound by cross-correlating the
waveforms, and the difference of the two time offsets is how much later the sound sits against the
picture in ``other`` than in ``reference``.

    python -m sync_defense.offline.realdata.alignment REFERENCE OTHER [OTHER ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from sync_defense.preprocessing import DEFAULT_CONFIG

from .compose import decode_audio

RATE = 16_000
THUMBNAIL = (96, 54)  # enough to tell frames of one recording apart, small enough to compare every pair
FPS = DEFAULT_CONFIG.timeline.fps


@dataclass(frozen=True)
class Alignment:
    picture_s: float  # reference time minus other's time of the same picture (median over matched frames)
    picture_spread_s: float  # p90 - p10 of those differences: how sure the frame matching is
    sound_s: float  # reference time minus other's time of the same sound

    @property
    def sound_later_s(self) -> float:
        """How much later the sound sits against the picture in ``other`` than in the reference."""
        return self.picture_s - self.sound_s


def _thumbnails(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Display time and mean-free grey thumbnail of every decoded frame."""
    times, pictures = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            grey = cv2.resize(frame.to_ndarray(format="gray"), THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32)
            times.append(float(frame.time))
            pictures.append(grey - grey.mean())
    return np.array(times), np.stack(pictures)


def picture_offset_s(reference: Path, other: Path, every: int = 3) -> tuple[float, float]:
    """Median and p10-p90 spread of (reference time - other's time) for the same picture, over every
    ``every``-th frame of ``other`` (its first and last 10 frames left out: fades and partial GOPs)."""
    ref_times, ref_pictures = _thumbnails(reference)
    times, pictures = _thumbnails(other)
    picked = range(10, len(times) - 10, every) if len(times) > 30 else range(len(times))
    deltas = [ref_times[int(np.argmin(((ref_pictures - pictures[i]) ** 2).mean(axis=(1, 2))))] - times[i] for i in picked]
    return float(np.median(deltas)), float(np.percentile(deltas, 90) - np.percentile(deltas, 10))


def sound_offset_s(reference: Path, other: Path) -> float:
    """Reference time minus other's time of the same sound, from the peak of the waveforms' cross-correlation."""
    (ref, ref_start), (oth, oth_start) = decode_audio(reference, RATE), decode_audio(other, RATE)
    n = len(ref) + len(oth)
    correlation = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(oth, n)), n)
    lag = int(np.argmax(np.abs(correlation)))
    lag = lag - n if lag > len(ref) else lag  # ref[k] ~ oth[k - lag]
    return ref_start - (oth_start - lag / RATE)


def align(reference: Path, other: Path) -> Alignment:
    picture, spread = picture_offset_s(reference, other)
    return Alignment(picture, spread, sound_offset_s(reference, other))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("others", type=Path, nargs="+")
    args = parser.parse_args()
    print(f"reference: {args.reference}")
    print("| container | picture offset | frame-match spread | sound offset | sound later than in the reference |")
    print("| --- | --- | --- | --- | --- |")
    for other in args.others:
        a = align(args.reference, other)
        print(f"| {other.name} | {a.picture_s:+.3f} s | {a.picture_spread_s:.3f} s | {a.sound_s:+.3f} s "
              f"| {a.sound_later_s:+.3f} s ({a.sound_later_s * FPS:+.1f} frames) |")


if __name__ == "__main__":
    main()
