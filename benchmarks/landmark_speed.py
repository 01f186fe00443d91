"""Landmark faces and mouths: speed, detection rate, smallest usable face, and a training-free sync check.

    python -m benchmarks.landmark_speed [VIDEO ...]

Without arguments it measures ``samples/talking_head.mp4`` (a drawn face); give it real talking-to-camera
recordings (such as those ``sync_defense.offline.realdata`` fetches) for numbers that mean something. Per clip:
detection time per frame scaled to 640x480 and 320x240, mesh time per face, the share of frames with
a face found and the speaker meshed, how much the mouth width pulses with speech against the eye
corners' distance, and the lag at which the inner-lip aperture best matches the audio's log-energy
over +-20 frames (> 0: the audio comes after the mouth), raw and with slow trends (> 0.3 s) removed.
A genuine recording should peak at 0 +- 1 frame.

The smallest usable face is measured on two real photos (the astronaut, Grace Hopper) pasted at
decreasing sizes into a 640x480 frame: which detectors still find the face, and how far the mesh's
mouth centre, width and aperture land from those of the full-size photo. Timings are medians of
single calls on a shared machine; expect +-30% between runs.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np
from skimage import data

from sync_defense.preprocessing import landmarks as lm

DEFAULT_CLIPS = (Path("samples/talking_head.mp4"),)
MAX_LAG = 20  # frames
SYLLABLE_S = 0.3  # trends slower than this are removed for the second lag (a speech block vs silence)
AUDIO_RATE = 16_000
FACE_WIDTHS = (120, 80, 60, 45, 40, 35, 30, 25, 20)  # pixels, in a 640x480 frame
DETECTORS = (("full", 1), ("short", 1), ("full", 2), ("full", 3))  # model, tiles
# What the mouth crop must hold besides the lips: mesh points of the nostrils' lower edge (both alae and
# the subnasale) and of the chin's top (below the lower lip and the chin's upper boss).
NOSTRILS = (98, 327, 2)
CHIN_TOP = (18, 200)


def read_clip(path: Path) -> tuple[list[np.ndarray], np.ndarray, float]:
    """RGB frames, the audio's log-energy under each frame's display interval, and the frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        decoded = [(frame.to_ndarray(format="rgb24"), float(frame.time)) for frame in container.decode(stream)]
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        chunks, start = [], None
        for frame in container.decode(audio=0):
            start = float(frame.time) if start is None else start
            chunks += [r.to_ndarray().ravel() for r in resampler.resample(frame)]
    audio = np.concatenate(chunks).astype(np.float64)
    energy = []
    for _, t in decoded:
        i = max(0, round((t - start) * AUDIO_RATE))
        window = audio[i : i + int(AUDIO_RATE / fps)]
        energy.append(math.log(np.mean(window**2) + 1e-8) if len(window) else np.nan)
    return [rgb for rgb, _ in decoded], np.array(energy), fps


def peak_lag(aperture: np.ndarray, energy: np.ndarray) -> tuple[int, float, float]:
    """Lag maximising the correlation of aperture[t] with energy[t + lag]; that correlation and the one at 0."""
    r = {}
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        a = aperture[max(0, -lag) : len(aperture) - max(0, lag)]
        e = energy[max(0, lag) : len(energy) - max(0, -lag)]
        keep = np.isfinite(a) & np.isfinite(e)
        r[lag] = float(np.corrcoef(a[keep], e[keep])[0, 1])
    best = max(r, key=r.get)
    return best, r[best], r[0]


def without_trend(x: np.ndarray, frames: int) -> np.ndarray:
    """``x`` minus its centred moving average (NaNs, missing meshes, filled from the neighbours first)."""
    idx = np.arange(len(x))
    ok = np.isfinite(x)
    filled = np.interp(idx, idx[ok], x[ok])
    half = frames // 2
    padded = np.pad(filled, half, mode="edge")
    return np.where(ok, filled - np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid"), np.nan)


def ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def centre(box: lm.Box) -> np.ndarray:
    return box[:2] + box[2:] / 2


def speaker_meshes(frames: list[np.ndarray]) -> tuple[list[np.ndarray | None], list[float]]:
    """The mesh on every frame of the face followed from the first frame's largest one (the nearest
    detection within a face width of where it was), None where it was lost; and its box widths."""
    meshes: list[np.ndarray | None] = []
    widths: list[float] = []
    last = None
    for rgb in frames:
        found = lm.detect_faces(rgb)
        if last is not None:
            found = sorted((b for b in found if np.hypot(*(centre(b) - centre(last))) < last[2]),
                           key=lambda b: np.hypot(*(centre(b) - centre(last))))
        meshes.append(lm.face_landmarks(rgb, found[0]) if found else None)
        if found:
            last = found[0]
            widths.append(float(last[2]))
    return meshes, widths


def in_mouth_frame(mesh: np.ndarray, points: tuple[int, ...]) -> np.ndarray:
    """``points`` of ``mesh`` in the aligned mouth square's frame, in half sides (inside the crop: |x|, |y| < 1)."""
    cx, cy, side, roll = lm.mouth_transform(mesh)
    c, s = math.cos(roll), math.sin(roll)
    return (mesh[list(points)] - (cx, cy)) @ np.array([[c, -s], [s, c]]) / (side / 2)


def measure_clip(path: Path) -> None:
    frames, energy, fps = read_clip(path)
    height, width = frames[0].shape[:2]
    vga = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in frames]
    qvga = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in vga]
    first = [lm.detect_faces(f) for f in frames]
    meshes, widths = speaker_meshes(frames)
    meshed = [m for m in meshes if m is not None]
    aperture = np.array([lm.lip_aperture(m) if m is not None else np.nan for m in meshes])
    mouth_w = np.array([np.linalg.norm(m[lm.LIP_CORNERS[1]] - m[lm.LIP_CORNERS[0]]) for m in meshed])
    eyes_w = np.array([np.linalg.norm(m[lm.EYE_OUTER_CORNERS[1]] - m[lm.EYE_OUTER_CORNERS[0]]) for m in meshed])
    trend = max(3, round(SYLLABLE_S * fps))

    print(f"\n{path.name}: {width}x{height}, {len(frames)} frames at {fps:.2f} fps, {len(first[0])} face(s) "
          f"on the first frame, speaker's face {np.median(widths):.0f} px wide")
    short = np.mean([bool(lm.detect_faces(f, model="short")) for f in frames])
    print(f"  frames with a face: full-range {np.mean([bool(b) for b in first]):.1%}, short-range {short:.1%}; "
          f"speaker followed and meshed on {len(meshed) / len(frames):.1%}")
    for model, tiles in (("short", 1), ("full", 1), ("full", 2)):
        times = [np.median([ms(lambda f=f, m=model, t=tiles: lm.detect_faces(f, model=m, tiles=t)) for f in clip])
                 for clip in (vga, qvga)]
        print(f"  detect {model:5s} tiles={tiles}: {times[0]:5.2f} ms per 640x480 frame, {times[1]:5.2f} ms per 320x240")
    mesh_ms = np.median([ms(lambda f=f, b=b[0]: lm.face_landmarks(f, b)) for f, b in zip(frames, first, strict=True) if b])
    print(f"  face mesh: {mesh_ms:.2f} ms per face")
    for name, points in (("nostrils", NOSTRILS), ("chin top", CHIN_TOP)):
        y = np.array([in_mouth_frame(m, points)[:, 1] for m in meshed])
        inside = np.mean([np.abs(in_mouth_frame(m, points)).max() < 1 for m in meshed])
        print(f"  {name} in the mouth crop on {inside:.1%} of frames (height {np.median(y):+.2f} half sides, "
              f"extreme {y.flat[np.abs(y).argmax()]:+.2f})")
    print(f"  variation (std/mean) of the mouth width {mouth_w.std() / mouth_w.mean():.3f}, "
          f"of the eye corners' distance {eyes_w.std() / eyes_w.mean():.3f}")
    for name, a, e in (("raw", aperture, energy),
                       (f"trend > {SYLLABLE_S} s removed", without_trend(aperture, trend), without_trend(energy, trend))):
        lag, r_best, r_zero = peak_lag(a, e)
        print(f"  aperture vs audio log-energy ({name}): peak at lag {lag:+d} frames, r = {r_best:.2f} (r at 0: {r_zero:.2f})")


def paste(photo: np.ndarray, box: lm.Box, face_width: int, background: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """``photo`` scaled so its face is ``face_width`` px wide, the face centred on ``background``;
    the scale and where the photo's origin landed."""
    scale = face_width / box[2]
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = background.copy()
    origin = np.array(frame.shape[1::-1]) // 2 - np.round(centre(box) * scale).astype(int)
    x0, y0 = np.maximum(origin, 0)
    x1, y1 = np.minimum(origin + small.shape[1::-1], frame.shape[1::-1])
    frame[y0:y1, x0:x1] = small[y0 - origin[1] : y1 - origin[1], x0 - origin[0] : x1 - origin[0]]
    return frame, scale, origin


def is_face(found: lm.Box, truth: lm.Box) -> bool:
    """A detection of the face, not of something around it: centres within half a face, widths within 2x."""
    return bool(np.hypot(*(centre(found) - centre(truth))) < truth[2] / 2 and 0.5 < found[2] / truth[2] < 2)


def measure_small_faces() -> None:
    grace = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[:, :, ::-1]
    background = cv2.GaussianBlur(cv2.resize(data.coffee(), (640, 480)), (0, 0), 3)
    names = "/".join(f"{m}x{t * t + 1 if t > 1 else 1}" for m, t in DETECTORS)
    print("\nsmallest face: a photo pasted into a 640x480 frame. Found by each detector (model x runs);")
    print("mesh errors in mouth widths against the full-size photo's mesh, on the first detector's box,")
    print("or on the true box (*) when none finds the face.")
    print(f"  face px  {names:>26}  centre err  width err  aperture err")
    for name, photo in (("astronaut", data.astronaut()), ("grace_hopper", np.ascontiguousarray(grace))):
        box = lm.detect_faces(photo)[0]
        ref = lm.face_landmarks(photo, box)
        cx, cy, side, _ = lm.mouth_transform(ref)
        print(f"  {name} (face {box[2]:.0f} px):")
        for face_width in FACE_WIDTHS:
            frame, scale, origin = paste(photo, box, face_width, background)
            truth = np.concatenate([box[:2] * scale + origin, box[2:] * scale])
            hits = [[b for b in lm.detect_faces(frame, model=m, tiles=t) if is_face(b, truth)] for m, t in DETECTORS]
            found = next((h[0] for h in hits if h), None)
            mesh = lm.face_landmarks(frame, truth if found is None else found)
            row = f"  {face_width:7d}  {'/'.join('y' if h else '-' for h in hits):>26}{' ' if found is not None else '*'}"
            if mesh is None:
                print(f"{row}    no mesh")
                continue
            mx, my, mside, _ = lm.mouth_transform(mesh)
            err = math.hypot((mx - origin[0]) / scale - cx, (my - origin[1]) / scale - cy) / (side / lm.MOUTH_CROP_FACTOR)
            aperture = lm.lip_aperture(mesh) - lm.lip_aperture(ref)
            print(f"{row} {err:10.3f}  {mside / scale / side - 1:+9.3f}  {aperture:+12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=list(DEFAULT_CLIPS))
    for path in parser.parse_args().videos:
        measure_clip(path)
    measure_small_faces()


if __name__ == "__main__":
    main()
