"""Does the lip opening survive a small face and a squeezed picture? Training-role videos only.

    python -m sync_defense.offline.realdata.build --out build/realval   # fetches the training material too
    python -m benchmarks.lip_robustness

The lip-sync test reads the face mesh's inner-lip opening (``landmarks.lip_aperture``) frame by
frame. Here the first 12 s of each silent training video (at least 10 s long) is re-encoded at
its own size (the reference), squeezed to 3/4 of its width (a 16:9 picture stored as 4:3 with
square pixels), shrunk until the face is 40 or 60 px wide, both, and both as MPEG-2 at 1 Mbit/s in
MPEG-PS (what Debian's ``movie-hello.mpeg`` is); each version's opening is
correlated with the reference's, frame by frame. 1 is a perfect copy; the validation set's
squeezed MPEG-PS ``movie-hello`` gave 0.42 against its MP4.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import av
import cv2
import numpy as np

from sync_defense.offline.realdata.rewrite import lip_apertures
from sync_defense.preprocessing import landmarks

SECONDS = 12.0
MIN_SOURCE_S = 10.0


def _frames(path: Path) -> tuple[list[np.ndarray], float]:
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= SECONDS * rate:
                break
    return frames, rate


def _encode(frames: list[np.ndarray], rate: float, scale_x: float, scale_y: float, mpeg2: bool = False) -> bytes:
    """``frames`` resized by ``scale_x`` x ``scale_y``: H.264 (CRF 20) in MP4, or MPEG-2 at 1 Mbit/s in MPEG-PS."""
    height, width = frames[0].shape[:2]
    size = (max(16, int(width * scale_x) // 2 * 2), max(16, int(height * scale_y) // 2 * 2))
    out = io.BytesIO()
    with av.open(out, "w", format="mpeg" if mpeg2 else "mp4") as container:
        stream = container.add_stream("mpeg2video" if mpeg2 else "h264", rate=round(rate))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if mpeg2:
            stream.bit_rate = 1_000_000
        else:
            stream.options = {"crf": "20"}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return out.getvalue()


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Frame-by-frame correlation of two lip openings over the frames both measured (NaN: too few)."""
    n = min(len(reference), len(other))
    a, b = reference[:n], other[:n]
    measured = ~np.isnan(a) & ~np.isnan(b)
    return round(float(np.corrcoef(a[measured], b[measured])[0, 1]), 3) if measured.sum() > 20 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", type=Path, default=Path("build/realdata/training"))
    args = parser.parse_args()
    items = json.loads((args.training / "manifest.json").read_text())["items"]
    for item in items:
        if item["media"] != "video" or item["duration_s"] < MIN_SOURCE_S:
            continue
        frames, rate = _frames(args.training / item["file"])
        faces = landmarks.detect_faces(frames[0])
        if not faces:
            print(json.dumps({"source": item["source"], "face_px": None}))
            continue
        face = faces[0][2]
        reference = lip_apertures(_encode(frames, rate, 1.0, 1.0))
        small = 40 / face
        versions = {"squeezed_3_4": (0.75, 1.0, False), "face_60px": (60 / face, 60 / face, False), "face_40px": (small, small, False),
                    "face_40px_squeezed": (0.75 * small, small, False), "face_40px_squeezed_mpeg2": (0.75 * small, small, True)}
        agreements = {name: agreement(reference, lip_apertures(_encode(frames, rate, *how))) for name, how in versions.items()}
        print(json.dumps({"source": item["source"], "face_px": round(face), **agreements}), flush=True)


if __name__ == "__main__":
    main()
