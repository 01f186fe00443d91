"""Synchronised forgeries of real recordings: mouths re-made to follow a new voice, each by a known technique.

Every fake of the real validation set (``compose.py``) has a mouth that does *not* follow its audio:
the audio is shifted, swapped or dubbed. Real lip-sync forgeries (Wav2Lip, VideoReTalking, ...)
re-make the mouth so that it *does* follow the new voice, which a detector that only checks whether
lips and sound move together cannot tell from a genuine recording. These forgeries are made here,
from real recordings, with four techniques known from the literature and from real forgery tools:

- ``sync_rewrite`` — mouth-region Video Rewrite (Bregler et al. 1997): the person's own mouths from
  other frames, re-picked by lip opening (``rewrite.retime``), aligned on the face and blended into the
  frame; head, eyes and background stay the original's.
- ``sync_warp`` — landmark-driven warping: the real lips moved apart or together by a piecewise-linear
  vertical warp between the nose and the chin so that the inner-lip opening follows the driver; a mouth
  opened wider than it was shows a painted cavity.
- ``sync_generator`` — a generator-like lower face: the output of ``sync_rewrite`` or ``sync_warp`` with
  its lower face rendered at a 96-pixel face size (Wav2Lip's output) and scaled back, so sharpness,
  colour and a rectangular seam no longer match the upper face.
- ``sync_transplant`` — another person's mouth, aligned by the lip corners, colour-matched on the skin
  around it and feathered into the face.

Each technique is driven two ways: by a real mouth with its own audio (``driver: mouth``: another
recording's lip-opening track, and that recording's audio on the forgery, so the forged mouth is as
much in sync as a real one), and by audio alone (``driver: audio``: an opening from the new speech's
loudness envelope, smoothed, as an audio-to-lip generator would give). The forgery always carries the
driver's audio and is labelled fake; its mouth and audio are aligned (expected offset 0).

    python -m sync_defense.offline.realdata.forgeries --realval build/realval --out build/forgeries/validation
    python -m sync_defense.offline.realdata.forgeries --training build/realdata/training --out build/forgeries/training

The validation set is made only from the real validation recordings (``--realval``: each recording's
first genuine original, never trained on), with one control per recording: the recording passed
through the same decode and encode with its own audio (``genuine_reencode``), so the only difference
between control and forgery is the forged mouth. The training set is made only from training-role
material (``--training``): the silent real mouths driven by real training speech. No training-role
recording has a face with its own audio, so that set has audio-driven forgeries only. Roles are never
mixed. Each case's random stream is seeded by ``--seed`` and the case's name, so a case is the same
whatever the run.
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sync_defense.offline.synthetic.media import encode_mp4
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError, landmarks
from sync_defense.preprocessing.audio import frame_loudness_dbfs
from sync_defense.preprocessing.decode import decode_audio, first_frame_time, iter_timeline_frames, to_rgb

from . import compose
from .rewrite import lip_apertures, retime, wanted_aperture

SR = DEFAULT_CONFIG.audio.sample_rate  # the forgeries' audio: AAC mono at the rate the server analyses
FPS = DEFAULT_CONFIG.timeline.fps
SPF = DEFAULT_CONFIG.samples_per_frame
MAX_FRAMES = 250  # 10 s: each case scores in seconds on two cores
TECHNIQUES = ("rewrite", "warp", "generator", "transplant")
KINDS = tuple(f"sync_{t}" for t in TECHNIQUES)
DRIVERS = ("mouth", "audio")
CONTROL_KIND = "genuine_reencode"  # the recording through the same decode and encode as its forgeries
DETECT_EVERY = DEFAULT_CONFIG.faces.detect_every
MIN_FACE_SHARE = 0.5  # a recording whose face the mesh finds on fewer frames is not forged
LOUDNESS_SPAN_DB = 30.0  # the audio driver's opening: closed this far below the speech's loud level (95th percentile)
GENERATOR_FACE_PX = 96  # Wav2Lip renders the face at 96 x 96

# Face-mesh indices (the 478-point mesh; the subject's right is image left).
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
INNER_LIP_RING = UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1]
# Points that move with the head and not with the jaw: eye corners, nose, cheeks beside the mouth.
POSE_POINTS = (33, 133, 362, 263, 1, 2, 4, 98, 327, 168, 205, 425, 50, 280)
NOSE_TIP = 1
SUBNASALE = 2  # where the nose meets the upper lip: no technique reaches above it

# Where each technique replaces the picture, in steady mouth widths from the lip-corner midpoint:
# (half-width across, reach up towards the nose, reach down towards the chin). The rewrite takes the
# jaw with the mouth (the same face's jaw fits); another person's jaw would not, so the transplant stops above it.
REWRITE_MASK = (0.8, 0.45, 0.95)
TRANSPLANT_MASK = (0.72, 0.42, 0.62)
WARP_SPAN = (0.6, 0.55, 1.35)  # the warp moves pixels only inside this box (identity on its border)
WARP_UPPER_SHARE = 0.3  # of an opening change, the upper lip takes this much; the jaw and lower lip the rest
FEATHER = 0.35  # mask ramp, as a share of the ellipse's radius (the outer part)
COLOUR_MEMORY = 0.8  # colour corrections follow the frames' statistics with this much memory (no flicker)

Geometry = np.ndarray  # (5,): lip-corner midpoint x, y, steady mouth width, roll (eye line, radians), measured corner width


@dataclass(frozen=True)
class Recording:
    """A real recording's timeline frames around its face, the face mesh on each, and its audio.

    ``frames`` hold only a region of the picture (``origin``: its top-left corner in the frame), large
    enough for every technique; the rest of the picture is decoded again from ``data`` when written.
    """

    name: str
    speaker: str
    data: bytes = field(repr=False)
    first: int  # timeline frame of the recording where these frames start
    frames: np.ndarray = field(repr=False)  # (n, h, w, 3) uint8
    origin: tuple[int, int]  # (x, y)
    points: np.ndarray = field(repr=False)  # (n, 478, 2) face mesh in region pixels; frames without a face interpolated
    found: np.ndarray = field(repr=False)  # (n,) bool: the mesh found the face on this frame
    audio: np.ndarray = field(repr=False)  # (n * SPF,) float32 at SR on the video's clock (silence when the file has none)
    apertures: np.ndarray = field(init=False, repr=False)  # (n,) inner-lip opening of every mesh, interpolated ones too

    def __post_init__(self) -> None:
        aperture = np.array([landmarks.lip_aperture(p) for p in self.points], np.float32)
        object.__setattr__(self, "apertures", aperture)

    @property
    def n(self) -> int:
        return len(self.frames)

    @property
    def aperture(self) -> np.ndarray:
        """Inner-lip opening per frame, NaN where the mesh found no face (as ``rewrite.retime`` reads it)."""
        return np.where(self.found, self.apertures, np.nan).astype(np.float32)


# --- reading recordings ----------------------------------------------------------------------------------

def _largest_or_nearest(rgb: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
    """The face box that continues ``previous`` (most overlap), else the largest; small faces with tiles."""
    boxes = landmarks.detect_faces(rgb) or landmarks.detect_faces(rgb, tiles=2)
    if not boxes:
        return previous
    if previous is not None:
        best = max(boxes, key=lambda b: landmarks.iou(b, previous))
        if landmarks.iou(best, previous) > 0.1:
            return best
    return boxes[0]


def track_face(data: bytes, first: int = 0, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Face mesh ``(n, 478, 2)`` in frame pixels of one face on timeline frames ``first ..`` (NaN where none).

    The detector runs every ``DETECT_EVERY`` frames and the mesh on every frame, as the served path
    does; a box continues the face it overlaps so a second person is never picked up half-way.
    """
    box, points = None, []
    for k, frame in iter_timeline_frames(data, DEFAULT_CONFIG):
        if k < first:
            continue
        if k >= first + max_frames:
            break
        rgb = to_rgb(frame)
        if (k - first) % DETECT_EVERY == 0 or box is None:
            box = _largest_or_nearest(rgb, box)
        mesh = landmarks.face_landmarks(rgb, box) if box is not None else None
        points.append(np.full((478, 2), np.nan) if mesh is None else mesh)
    if not points:
        raise ValueError(f"no timeline frames from frame {first} on")
    points_arr = np.stack(points)
    return points_arr, ~np.isnan(points_arr[:, 0, 0])


def fill_gaps(points: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Meshes of the frames without a face, linearly interpolated between their neighbours (held at the ends)."""
    have = np.flatnonzero(found)
    if have.size == 0:
        raise ValueError("the face mesh found no face")
    position = np.interp(np.arange(len(points)), have, np.arange(have.size))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, have.size - 1)
    weight = (position - low)[:, None, None]
    return points[have[low]] * (1 - weight) + points[have[high]] * weight


def face_region(points: np.ndarray, height: int, width: int, margin: float = 0.35) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: every frame's face with ``margin`` face heights around it, inside the picture."""
    low, high = np.nanmin(points, axis=(0, 1)), np.nanmax(points, axis=(0, 1))
    pad = margin * float(high[1] - low[1])
    x0, y0 = max(0, int(low[0] - pad)), max(0, int(low[1] - pad))
    x1, y1 = min(width, int(math.ceil(high[0] + pad))), min(height, int(math.ceil(high[1] + pad)))
    return x0, y0, x1, y1


def load_recording(data: bytes, name: str, speaker: str, first: int = 0, max_frames: int = MAX_FRAMES) -> Recording:
    """A recording's timeline frames ``first .. first + max_frames`` around its face, with its mesh and its audio."""
    points, found = track_face(data, first, max_frames)
    if found.mean() < MIN_FACE_SHARE:
        raise ValueError(f"{name}: the face mesh finds the face on only {found.mean():.0%} of the frames")
    points = fill_gaps(points, found)
    crops, region = [], None
    for k, frame in iter_timeline_frames(data, DEFAULT_CONFIG):
        if k < first:
            continue
        if k >= first + len(points):
            break
        rgb = to_rgb(frame)
        if region is None:
            region = face_region(points, *rgb.shape[:2])
        x0, y0, x1, y1 = region
        crops.append(rgb[y0:y1, x0:x1].copy())
    assert region is not None
    n = len(crops)
    try:
        audio = decode_audio(data, DEFAULT_CONFIG, first_frame_time(data) + first / FPS, n * SPF)
    except MediaError:  # no audio track: a silent video's mouth can still be forged (its audio is never used)
        audio = np.zeros(n * SPF, np.float32)
    return Recording(name, speaker, data, first, np.stack(crops), (region[0], region[1]),
                     points[:n] - np.array(region[:2], float), found[:n], audio)


# --- drivers: how open the mouth should be on each frame ------------------------------------------------

def mouth_opening(aperture: np.ndarray) -> np.ndarray:
    """0..1 per frame: the rank of a real mouth's lip opening within its own recording (gaps interpolated).

    A rank, not the opening itself, so the driver's whole range maps onto the target's own range
    (people open their mouths by different amounts); the order of open and closed frames is the driver's.
    """
    valid = ~np.isnan(aperture)
    filled = np.interp(np.arange(len(aperture)), np.flatnonzero(valid), aperture[valid])
    order = np.argsort(np.argsort(filled, kind="stable"), kind="stable")
    return (order / max(1, len(filled) - 1)).astype(np.float32)


def audio_opening(speech: np.ndarray, n_frames: int) -> np.ndarray:
    """0..1 per frame from the speech's loudness, as an audio-to-lip generator would drive the mouth.

    Loudness is taken relative to the speech's own loud level (its 95th percentile), so the recording
    level does not matter; ``LOUDNESS_SPAN_DB`` below it the mouth is closed; smoothed over 5 frames
    (the jaw does not move faster).
    """
    speech = np.pad(speech[: n_frames * SPF], (0, max(0, n_frames * SPF - speech.size)))
    level = frame_loudness_dbfs(speech, DEFAULT_CONFIG)
    top = float(np.percentile(level, 95))
    raw = np.clip((level - (top - LOUDNESS_SPAN_DB)) / LOUDNESS_SPAN_DB, 0, 1)
    kernel = np.hanning(7)[1:-1]
    padded = np.pad(raw, 2, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid").astype(np.float32)


# --- geometry and blending -------------------------------------------------------------------------------

def mouth_geometry(points: np.ndarray) -> np.ndarray:
    """``(n, 5)`` per frame: lip-corner midpoint, a steady mouth width, roll and the measured corner width.

    The steady width is the eye distance times the recording's median mouth-to-eye ratio: it follows
    the face's size but not the lips rounding, so masks and scales do not pulse with speech. The roll
    is the eye line's (steadier than the lip corners').
    """
    left, right = points[:, landmarks.LIP_CORNERS[0]], points[:, landmarks.LIP_CORNERS[1]]
    eye_l, eye_r = points[:, landmarks.EYE_OUTER_CORNERS[0]], points[:, landmarks.EYE_OUTER_CORNERS[1]]
    width = np.linalg.norm(right - left, axis=1)
    eyes = np.linalg.norm(eye_r - eye_l, axis=1)
    steady = eyes * float(np.median(width / np.maximum(eyes, 1e-6)))
    roll = np.arctan2(eye_r[:, 1] - eye_l[:, 1], eye_r[:, 0] - eye_l[:, 0])
    centre = (left + right) / 2
    return np.column_stack([centre, steady, roll, width])


def to_mouth(x: np.ndarray, y: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates to the mouth's axes: ``u`` along the lip-corner line, ``v`` down the face."""
    cx, cy, _, roll = geometry[:4]
    dx, dy = x - cx, y - cy
    cos, sin = math.cos(roll), math.sin(roll)
    return dx * cos + dy * sin, -dx * sin + dy * cos


def from_mouth(u: np.ndarray, v: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    cx, cy, _, roll = geometry[:4]
    cos, sin = math.cos(roll), math.sin(roll)
    return cx + u * cos - v * sin, cy + u * sin + v * cos


def mouth_mask(shape: tuple[int, int], geometry: Geometry, extent: tuple[float, float, float]) -> np.ndarray:
    """``(h, w)`` float32 blend weight: 1 around the mouth, ramping to exactly 0 at the ellipse's edge.

    ``extent`` is (half-width, reach up, reach down) in steady mouth widths; the ellipse is lopsided
    so it can reach the chin without touching the nose. Outside it the picture stays bit for bit.
    """
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    u, v = to_mouth(xs, ys, geometry)
    width = geometry[2]
    across, up, down = extent
    r = np.sqrt((u / (across * width)) ** 2 + (v / (np.where(v < 0, up, down) * width)) ** 2)
    ramp = np.clip((1 - r) / FEATHER, 0, 1)
    return (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)


def below_nose(extent: tuple[float, float, float], points: np.ndarray, geometry: Geometry) -> tuple[float, float, float]:
    """``extent`` with its reach up cut to 90% of the way to the subnasale: the nose never moves with the mouth."""
    nose = -to_mouth(points[SUBNASALE, 0], points[SUBNASALE, 1], geometry)[1] / geometry[2]
    return extent[0], float(np.clip(0.9 * nose, 0.15, extent[1])), extent[2]


def blend(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``patch`` over ``frame`` by ``mask``; pixels where the mask is 0 are the frame's, untouched."""
    out = frame.copy()
    inside = mask > 0
    weight = mask[inside][:, None]
    out[inside] = np.clip(np.rint(frame[inside] * (1 - weight) + patch[inside].astype(np.float32) * weight), 0, 255)
    return out


def skin_ring(mask: np.ndarray) -> np.ndarray:
    """The mask's feathered rim: skin around the mouth, where pasted and original pixels must agree in colour."""
    return (mask > 0.02) & (mask < 0.6)


class ColourMatch:
    """Per-channel colour transfer of a patch onto a frame, measured on the skin ring and smoothed over frames.

    ``spread=False`` moves the mean only (the same face in other frames: its contrast already fits).
    """

    def __init__(self, spread: bool) -> None:
        self.spread, self.state = spread, None

    def __call__(self, patch: np.ndarray, frame: np.ndarray, ring: np.ndarray) -> np.ndarray:
        if ring.sum() < 10:
            return patch
        src, dst = patch[ring].astype(np.float32), frame[ring].astype(np.float32)
        now = np.stack([src.mean(0), dst.mean(0), src.std(0) + 1.0, dst.std(0) + 1.0])
        self.state = now if self.state is None else COLOUR_MEMORY * self.state + (1 - COLOUR_MEMORY) * now
        mean_src, mean_dst, sd_src, sd_dst = self.state
        gain = np.clip(sd_dst / sd_src, 0.7, 1.4) if self.spread else np.ones(3, np.float32)
        return np.clip((patch.astype(np.float32) - mean_src) * gain + mean_dst, 0, 255)


def similarity(src: np.ndarray, dst: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """2x3 matrix that scales by ``scale``, turns by ``angle`` (the roll convention) and moves ``src`` onto ``dst``."""
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    return np.column_stack([linear, dst - linear @ src])


# --- the techniques -------------------------------------------------------------------------------------

def rewrite_mouth(rec: Recording, opening: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mouth-region Video Rewrite: each frame's mouth and jaw from the frame of the same recording whose
    lip opening fits the driver (``rewrite.retime``), aligned on the head and blended in. Returns the
    frames and the source frame chosen for each.

    The head pose comes from points the jaw does not move (eyes, nose, cheeks), so the pasted mouth
    sits where that frame's head puts it; only the mouth region changes, the rest stays the original.
    """
    n = len(opening)
    chosen = retime(rec.aperture, opening, rng)
    geometry = mouth_geometry(rec.points)
    height, width = rec.frames.shape[1:3]
    colour = ColourMatch(spread=False)
    out = rec.frames[:n].copy()
    for t, j in enumerate(chosen):
        if j == t:
            continue
        matrix, _ = cv2.estimateAffinePartial2D(rec.points[j][list(POSE_POINTS)].astype(np.float32),
                                                rec.points[t][list(POSE_POINTS)].astype(np.float32), method=cv2.LMEDS)
        if matrix is None:
            matrix = np.eye(2, 3)
        patch = cv2.warpAffine(rec.frames[j], matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = mouth_mask((height, width), geometry[t], below_nose(REWRITE_MASK, rec.points[t], geometry[t]))
        out[t] = blend(out[t], colour(patch, out[t], skin_ring(mask)), mask)
    return out, chosen


def cavity_colour(rec: Recording) -> np.ndarray:
    """The inside of this mouth when open: the median of the darker half of what the inner lips enclose on its
    widest-open frames (the cavity, not the teeth); a dark red if it never opens."""
    open_frames = np.flatnonzero(rec.found & (rec.apertures >= max(0.12, float(np.quantile(rec.apertures, 0.85)))))
    pixels = []
    for t in open_frames[:20]:
        mask = np.zeros(rec.frames.shape[1:3], np.uint8)
        cv2.fillPoly(mask, [np.round(rec.points[t][list(INNER_LIP_RING)]).astype(np.int32)], 1)
        pixels.append(rec.frames[t][mask.astype(bool)])
    pixels_arr = np.concatenate(pixels) if pixels else np.empty((0, 3))
    if len(pixels_arr) < 20:
        return np.array([60, 25, 30], np.float32)
    luma = pixels_arr @ np.array([0.299, 0.587, 0.114])
    return np.median(pixels_arr[luma <= np.median(luma)], axis=0).astype(np.float32)


def warp_lips(frame: np.ndarray, points: np.ndarray, geometry: Geometry, delta: float, cavity: np.ndarray) -> np.ndarray:
    """The frame with its inner lips ``delta`` pixels further apart at the centre (< 0: closer).

    Along each column of the mouth's axes the picture is stretched piecewise-linearly between fixed
    points below the nose and at the chin, through the moved upper and lower inner lips; the move
    fades to nothing at the lip corners. Where the opening grows beyond what the frame shows, the
    stretched gap is painted with the mouth's cavity colour.
    """
    width = geometry[2]
    across, up, down = (s * width for s in below_nose(WARP_SPAN, points, geometry))
    corners = np.array([from_mouth(np.array(u), np.array(v), geometry) for u in (-across, across) for v in (-up, down)])
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, frame.shape[1::-1])
    if x1 <= x0 or y1 <= y0 or abs(delta) < 1e-3:
        return frame.copy()
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = to_mouth(xs, ys, geometry)
    uu, vu = to_mouth(*points[list(UPPER_INNER_LIP)].T, geometry)
    ul, vl = to_mouth(*points[list(LOWER_INNER_LIP)].T, geometry)
    v_up = np.interp(u, *_sorted(uu, vu))
    v_lo = np.maximum(np.interp(u, *_sorted(ul, vl)), v_up)
    fade = np.cos(np.pi / 2 * np.clip(np.abs(u) / across, 0, 1)) ** 2
    new_up = np.clip(v_up - WARP_UPPER_SHARE * delta * fade, -up + 1, None)
    new_lo = np.clip(np.maximum(v_lo + (1 - WARP_UPPER_SHARE) * delta * fade, new_up), None, down - 1)
    gap_out = new_lo - new_up
    v_src = np.where(
        v < new_up, -up + (v + up) * (v_up + up) / np.maximum(new_up + up, 1e-3),
        np.where(v < new_lo, v_up + (v - new_up) * (v_lo - v_up) / np.maximum(gap_out, 1e-3),
                 v_lo + (v - new_lo) * (down - v_lo) / np.maximum(down - new_lo, 1e-3)))
    moving = (np.abs(u) < across) & (v > -up) & (v < down)
    v_src = np.where(moving, v_src, v)
    map_x, map_y = from_mouth(u, v_src, geometry)
    warped = cv2.remap(frame, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    share = np.clip(1 - (v_lo - v_up) / np.maximum(gap_out, 1e-3), 0, 1)
    inside = np.clip((v - new_up) / np.maximum(gap_out, 1e-3), 0, 1)
    paint = (moving & (gap_out > 0.5)) * share * np.sin(np.pi * inside)
    warped = warped.astype(np.float32) * (1 - paint[..., None]) + cavity * paint[..., None]
    out = frame.copy()
    changed = moving & (np.abs(v_src - v) > 1e-3)
    out[y0:y1, x0:x1][changed] = np.clip(np.rint(warped[changed]), 0, 255)
    return out


def _sorted(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(u)
    return u[order], v[order]


def warp_mouth(rec: Recording, opening: np.ndarray) -> np.ndarray:
    """Landmark-driven warping: on every frame the real lips are warped so that the inner-lip opening is
    the target's own opening at the driver's rank (``wanted_aperture``)."""
    wanted = wanted_aperture(rec.aperture, opening).astype(np.float32)
    geometry = mouth_geometry(rec.points)
    cavity = cavity_colour(rec)
    out = np.empty((len(opening), *rec.frames.shape[1:]), np.uint8)
    for t in range(len(opening)):
        delta = float((wanted[t] - rec.apertures[t]) * geometry[t, 4])
        out[t] = warp_lips(rec.frames[t], rec.points[t], geometry[t], delta, cavity)
    return out


def face_boxes(points: np.ndarray, smooth: int = 5) -> np.ndarray:
    """``(n, 4)`` face square ``x0, y0, x1, y1`` per frame from the mesh's extent, padded below the chin by
    a tenth and smoothed over ``smooth`` frames as Wav2Lip smooths its detector's boxes."""
    low, high = points.min(axis=1), points.max(axis=1)
    centre, side = (low + high) / 2, (high - low).max(axis=1)
    boxes = np.column_stack([centre[:, 0] - side / 2, centre[:, 1] - side / 2, centre[:, 0] + side / 2, centre[:, 1] + 0.6 * side])
    kernel = np.ones(smooth) / smooth
    padded = np.pad(boxes, ((smooth // 2, smooth // 2), (0, 0)), mode="edge")
    return np.column_stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(4)])


@dataclass(frozen=True)
class GeneratorLook:
    """How a generated lower face differs from the real upper face: blur at the 96-px face size, colour cast."""

    blur_sigma: float  # at the 96-px face size
    gain: np.ndarray  # (3,) per channel
    offset: np.ndarray  # (3,) per channel, in 0..255 units

    @staticmethod
    def draw(rng: np.random.Generator) -> GeneratorLook:
        return GeneratorLook(float(rng.uniform(0.6, 1.1)), rng.uniform(0.96, 1.04, 3).astype(np.float32),
                             rng.uniform(-4, 4, 3).astype(np.float32))


def generator_lower_face(frames: np.ndarray, points: np.ndarray, look: GeneratorLook) -> np.ndarray:
    """A generator-like lower face: each frame's face square rendered at 96 x 96, softened and tinted as a
    generator's output is, scaled back and pasted from the nose tip down with a hard rectangular seam
    (Wav2Lip pastes its 96-px output into the face box). Upper face and background stay untouched."""
    boxes = face_boxes(points[: len(frames)])
    out = frames.copy()
    height, width = frames.shape[1:3]
    for t, frame in enumerate(frames):
        x0, y0, x1, y1 = (int(round(c)) for c in boxes[t])
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        top = int(round(points[t, NOSE_TIP, 1]))
        if cx1 - cx0 < 4 or cy1 - cy0 < 4 or not cy0 < top < cy1:
            continue
        face = frame[cy0:cy1, cx0:cx1]
        small = cv2.resize(face, (GENERATOR_FACE_PX, GENERATOR_FACE_PX), interpolation=cv2.INTER_AREA).astype(np.float32)
        small = cv2.GaussianBlur(small, (0, 0), look.blur_sigma) * look.gain + look.offset
        back = cv2.resize(np.clip(small, 0, 255), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
        rows = slice(top - cy0, cy1 - cy0)
        out[t, top:cy1, cx0:cx1] = np.clip(np.rint(back[rows]), 0, 255)
    return out


def transplant_mouth(target: Recording, donor: Recording, donor_frames: np.ndarray) -> np.ndarray:
    """Another person's mouth: on frame t the donor's frame ``donor_frames[t]``, turned and scaled so its lip
    corners sit on the target's (steady widths, eye-line rolls), colour-matched on the skin around the mouth
    (mean and contrast: another face's skin) and feathered in; the target's jaw and the rest stay its own."""
    n = len(donor_frames)
    tg, dg = mouth_geometry(target.points), mouth_geometry(donor.points)
    height, width = target.frames.shape[1:3]
    colour = ColourMatch(spread=True)
    out = target.frames[:n].copy()
    for t, d in enumerate(donor_frames):
        matrix = similarity(dg[d, :2], tg[t, :2], tg[t, 2] / dg[d, 2], tg[t, 3] - dg[d, 3])
        patch = cv2.warpAffine(donor.frames[d], matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = mouth_mask((height, width), tg[t], below_nose(TRANSPLANT_MASK, target.points[t], tg[t]))
        out[t] = blend(out[t], colour(patch, out[t], skin_ring(mask)), mask)
    return out


# --- one forgery ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Forgery:
    """A forged clip before encoding: region frames of the target, the driver's audio and how it was made."""

    frames: np.ndarray = field(repr=False)  # (n, h, w, 3) region frames of the target
    audio: np.ndarray = field(repr=False)  # (n * SPF,) at SR
    opening: np.ndarray = field(repr=False)  # (n,) the driver's 0..1 opening the mouth was made to follow
    notes: str = ""


def case_rng(seed: int, case: str) -> np.random.Generator:
    """A case's random stream: fixed by the seed and the case's name, whatever else the run makes."""
    return np.random.default_rng([seed, zlib.crc32(case.encode())])


def drive(target: Recording, driver: Recording | np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(opening, audio, words) of a driver: a real mouth with its audio (a Recording) or speech alone (an array)."""
    if isinstance(driver, Recording):
        n = min(target.n, driver.n)
        return mouth_opening(driver.aperture)[:n], driver.audio[: n * SPF], f"the real mouth of {driver.name} with its own audio"
    n = min(target.n, len(driver) // SPF)
    return audio_opening(driver, n), driver[: n * SPF], "the speech's loudness envelope (smoothed), with that speech"


def forge(technique: str, target: Recording, driver: Recording | np.ndarray, rng: np.random.Generator,
          donor: Recording | None = None) -> Forgery:
    """One synchronised forgery of ``target`` by ``technique``, its mouth following ``driver``.

    ``donor`` (transplant only) is the other person whose mouth is used; when the driver is a real
    mouth the donor is the driver itself, frame for frame, else its frames are re-picked by lip opening.
    """
    opening, audio, how = drive(target, driver)
    if technique == "rewrite":
        frames, _ = rewrite_mouth(target, opening, rng)
        notes = "own mouths from other frames re-picked by lip opening and blended into the mouth region"
    elif technique == "warp":
        frames = warp_mouth(target, opening)
        notes = "real lips warped (piecewise-linear, vertical) so the inner-lip opening follows the driver"
    elif technique == "generator":
        base = str(rng.choice(["rewrite", "warp"]))
        frames = rewrite_mouth(target, opening, rng)[0] if base == "rewrite" else warp_mouth(target, opening)
        frames = generator_lower_face(frames, target.points, GeneratorLook.draw(rng))
        notes = f"the {base} forgery with its lower face rendered at a {GENERATOR_FACE_PX}-px face size and scaled back (blur, tint, seam)"
    elif technique == "transplant":
        if donor is None:
            raise ValueError("a transplant needs a donor")
        if isinstance(driver, Recording) and driver.name == donor.name:
            donor_frames = np.arange(len(opening))
        else:
            donor_frames = retime(donor.aperture, opening, rng)
        frames = transplant_mouth(target, donor, donor_frames)
        notes = f"mouth of {donor.name} (another person) aligned by the lip corners, colour-matched, feathered"
    else:
        raise ValueError(f"unknown technique {technique!r}")
    return Forgery(frames, audio, opening, f"{notes}; driven by {how}")


def full_frames(rec: Recording, region_frames: np.ndarray) -> np.ndarray:
    """The recording's whole timeline frames with the region replaced by ``region_frames`` (as many frames)."""
    x, y = rec.origin
    height, width = region_frames.shape[1:3]
    out = []
    for k, frame in iter_timeline_frames(rec.data, DEFAULT_CONFIG):
        i = k - rec.first
        if i < 0:
            continue
        if i >= len(region_frames):
            break
        rgb = to_rgb(frame).copy()
        rgb[y : y + height, x : x + width] = region_frames[i]
        out.append(rgb)
    return np.stack(out)


def encode(rec: Recording, region_frames: np.ndarray, audio: np.ndarray) -> bytes:
    """The mp4 (H.264 + AAC mono at SR, 25 fps) of ``rec`` with its region replaced, carrying ``audio``."""
    return encode_mp4(full_frames(rec, region_frames), FPS, audio[: len(region_frames) * SPF], SR)


def follows(data: bytes, opening: np.ndarray) -> float | None:
    """Correlation of the written clip's measured lip opening with the opening it was made to follow."""
    measured = lip_apertures(data)[: len(opening)]
    keep = ~np.isnan(measured)
    if keep.sum() < 10 or np.std(measured[keep]) == 0 or np.std(opening[: len(measured)][keep]) == 0:
        return None
    return float(np.corrcoef(measured[keep], opening[: len(measured)][keep])[0, 1])


# --- the sets -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One case to build: ``technique`` on ``target`` driven by ``driver`` (a recording, or speech by name)."""

    case: str
    technique: str
    driver_kind: str  # "mouth" or "audio"; "none" for a control
    target: str
    driver: str
    donor: str | None = None
    sources: tuple[str, ...] = ()  # the pinned sources it is made of (default: target, driver and donor by name)

    @property
    def kind(self) -> str:
        return CONTROL_KIND if self.technique == "control" else f"sync_{self.technique}"


def plan_validation(recordings: list[tuple[str, str]]) -> list[Plan]:
    """Cases from ``(name, speaker)`` recordings: a control each, then every technique with both drivers.

    The real-mouth driver is the next recording of another speaker (in turn); the audio driver the
    speech of the one after (the same one when only one other speaker exists); the transplant's donor
    is the real-mouth driver, the other person whose mouth fits the driver's audio best.
    """
    plans = []
    for i, (name, speaker) in enumerate(recordings):
        others = [o for o, s in recordings[i + 1 :] + recordings[:i] if s != speaker]
        if not others:
            raise ValueError(f"{name}: no recording of another speaker to drive it")
        mouth, voice = others[0], others[1 % len(others)]
        plans.append(Plan(f"{name}-control", "control", "none", name, name))
        for technique in TECHNIQUES:
            donor = mouth if technique == "transplant" else None
            plans.append(Plan(f"{name}-sync_{technique}-mouth-{mouth}", technique, "mouth", name, mouth, donor))
            plans.append(Plan(f"{name}-sync_{technique}-audio-{voice}", technique, "audio", name, voice, donor))
    return plans


def entry(plan: Plan, path: Path, pins: dict[str, dict], notes: str, follow: float | None) -> dict:
    """The manifest entry of a written case (``compose``'s fields plus ``driver``)."""
    used = sorted(set(plan.sources or (plan.target, plan.driver, *([plan.donor] if plan.donor else []))))
    follow_words = "" if follow is None else f"; measured lip opening vs the driver's: r = {follow:.2f}"
    return {
        "case": plan.case, "file": path.name, "label": "real" if plan.technique == "control" else "fake", "kind": plan.kind,
        "driver": None if plan.technique == "control" else plan.driver_kind, "expected_offset_frames": 0.0,
        "sources": used, "licence": " | ".join(dict.fromkeys(pins[s]["licence"] for s in used)),
        "duration_s": round(compose.video_span(path)[1], 3), "notes": notes + follow_words,
    }


CONTROL_NOTES = ("decoded to the 25 fps timeline and encoded exactly as the forgeries are, with its own audio: "
                 "the control for this recording's forgeries")


def write_case(plan: Plan, recs: dict[str, Recording], speeches: dict[str, np.ndarray], out: Path, seed: int,
               pins: dict[str, dict]) -> dict:
    """Make, encode and write one case; return its manifest entry."""
    target = recs[plan.target]
    if plan.technique == "control":
        data = encode(target, target.frames, target.audio)
        opening, notes = audio_opening(target.audio, target.n), CONTROL_NOTES
    else:
        driver = recs[plan.driver] if plan.driver_kind == "mouth" else speeches[plan.driver]
        forgery = forge(plan.technique, target, driver, case_rng(seed, plan.case), recs.get(plan.donor or ""))
        data, opening, notes = encode(target, forgery.frames, forgery.audio), forgery.opening, forgery.notes
    path = out / f"{plan.case}.mp4"
    path.write_bytes(data)
    return entry(plan, path, pins, notes, follows(data, opening))


def manifest(entries: list[dict], pins: dict[str, dict], role: str, seed: int) -> dict:
    used = sorted({s for e in entries for s in e["sources"]})
    return {
        "fps": FPS, "offset_sign": compose.SIGN, "audio": f"AAC mono {SR} Hz", "max_case_s": compose.MAX_CASE_S,
        "cut": f"each recording's first {MAX_FRAMES / FPS:.0f} s at most", "role": role, "seed": seed,
        "techniques": TECHNIQUE_WORDS,
        "drivers": {"mouth": "another real recording's lip-opening track, with that recording's audio",
                    "audio": "an opening from the new speech's loudness envelope, smoothed, with that speech"},
        "sources": {s: pins[s] for s in used}, "cases": entries,
    }


TECHNIQUE_WORDS = {
    "sync_rewrite": "mouth-region Video Rewrite: the person's own mouths re-picked by lip opening, blended into the mouth region",
    "sync_warp": "landmark-driven warping of the real lips so that the inner-lip opening follows the driver",
    "sync_generator": f"sync_rewrite or sync_warp with the lower face rendered at a {GENERATOR_FACE_PX}-px face size (Wav2Lip-like)",
    "sync_transplant": "another person's mouth aligned by the lip corners, colour-matched and feathered in",
}


def _forgery_case_problem(entry: dict) -> str | None:
    control = entry["kind"] == CONTROL_KIND
    if entry["kind"] not in (*KINDS, CONTROL_KIND) or entry["label"] != ("real" if control else "fake"):
        return f"kind {entry['kind']!r} and label {entry['label']!r} do not agree"
    if (entry["driver"] is None) != control or (not control and entry["driver"] not in DRIVERS):
        return f"driver {entry['driver']!r} does not fit kind {entry['kind']!r}"
    if entry["expected_offset_frames"] != 0:
        return "a synchronised forgery or control is expected at offset 0"
    return None


def validate_manifest(data: dict) -> None:
    """Raise ValueError unless ``data`` is a forgery manifest ``score`` can use (compose's rules, with ``driver``)."""
    compose.validate_cases(data, compose.CASE_KEYS | {"driver"}, _forgery_case_problem)


def _build(plans: list[Plan], recs: dict[str, Recording], speeches: dict[str, np.ndarray], out: Path, seed: int,
           pins: dict[str, dict], role: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for plan in plans:
        entries.append(write_case(plan, recs, speeches, out, seed, pins))
        e = entries[-1]
        print(f"{e['case']:72} {e['kind']:17} {e['driver'] or '-':5} {e['duration_s']:5.2f} s  "
              f"{(out / e['file']).stat().st_size / 1e6:5.2f} MB  {e['notes'].rsplit('r = ', 1)[-1] if 'r = ' in e['notes'] else '-'}",
              flush=True)
    data = manifest(entries, pins, role, seed)
    validate_manifest(data)
    (out / "manifest.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def build_validation(realval: Path, out: Path, seed: int = 0) -> dict:
    """The validation set: every validation recording (first genuine original of each), 4 techniques x 2 drivers, and a control."""
    from .sources import by_name

    source = json.loads((realval / "manifest.json").read_text())
    originals, seen = [], set()
    for e in source["cases"]:
        if e["kind"] != "genuine_original":
            continue
        pin = by_name(e["sources"][0])
        if pin.role != "validation" or pin.recording_id in seen:
            continue
        seen.add(pin.recording_id)
        originals.append((pin.name, pin.speaker, realval / e["file"]))
    recs = {name: load_recording(path.read_bytes(), name, speaker) for name, speaker, path in originals}
    speeches = {name: rec.audio for name, rec in recs.items()}
    plans = plan_validation([(name, speaker) for name, speaker, _ in originals])
    return _build(plans, recs, speeches, out, seed, source["sources"], "validation")


def _speech_of(files: list[Path], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """``seconds`` of one speaker: their files in a seeded order, with short pauses, read only as needed."""
    parts, total = [np.zeros(int(rng.uniform(0.1, 0.3) * SR), np.float32)], 0
    for i in rng.permutation(len(files)):
        audio = compose.decode_audio(files[i], SR)[0]
        parts += [audio, np.zeros(int(rng.uniform(0.15, 0.4) * SR), np.float32)]
        total += audio.size + parts[-1].size
        if total >= seconds * SR:
            break
    speech = np.concatenate(parts)[: int(seconds * SR)]
    return (speech / max(1e-3, float(np.abs(speech).max())) * 0.7).astype(np.float32)


MIN_SPREAD = 0.05  # a clip whose lip opening spans less (10th to 90th percentile) hardly speaks: nothing to re-pick or warp


def active_windows(aperture: np.ndarray, length: int, count: int, min_spread: float = MIN_SPREAD) -> list[int]:
    """Starts of up to ``count`` non-overlapping windows of ``length`` frames (on a 1-s grid) where the mouth
    moves most (the 10th-90th percentile span of its opening), in time order; none where it hardly moves."""
    starts = list(range(0, max(1, len(aperture) - length + 1), FPS))
    spread = []
    for start in starts:
        window = aperture[start : start + length]
        window = window[~np.isnan(window)]
        spread.append(float(np.ptp(np.quantile(window, [0.1, 0.9]))) if window.size > FPS else 0.0)
    chosen: list[int] = []
    for i in sorted(range(len(starts)), key=lambda i: (-spread[i], starts[i])):  # widest first, earliest on a tie
        if len(chosen) == count or spread[i] < min_spread:
            break
        if all(abs(starts[i] - c) >= length for c in chosen):
            chosen.append(starts[i])
    return sorted(chosen)


def build_training(training: Path, out: Path, seed: int = 0, segments: int = 2, min_s: float = 4.0) -> dict:
    """The training set: clips of the silent training mouths, every technique driven by real training speech.

    Training-role material only. No training recording has a face with its own audio, so there is no
    real-mouth driver: audio-driven forgeries only. Up to ``segments`` clips of 8 s per video, where its
    mouth moves most (``active_windows``: a still mouth has no shapes to re-pick or warp); clip i is
    driven by training speaker i (in turn), and its transplant donor is a clip of another person.
    """
    source = json.loads((training / "manifest.json").read_text())
    voices: dict[str, list[Path]] = {}
    for item in source["items"]:
        if item["media"] == "audio":
            voices.setdefault(item["source"], []).append(training / item["file"])
    clip_frames = 8 * FPS
    recs: dict[str, Recording] = {}
    targets: list[tuple[str, str, str]] = []  # clip name, source, speaker
    for video in (i for i in source["items"] if i["media"] == "video" and i["duration_s"] >= min_s):
        data = (training / video["file"]).read_bytes()
        starts = active_windows(lip_apertures(data), clip_frames, segments)
        if not starts:
            print(f"skipped {video['source']}: its mouth hardly moves")
        for start in starts:
            name = f"{video['source']}-at{start // FPS}s"
            try:
                recs[name] = load_recording(data, name, video["speaker"], int(start), clip_frames)
            except ValueError as exc:
                print(f"skipped {name}: {exc}")
                continue
            targets.append((name, video["source"], video["speaker"]))
    speeches, plans = {}, []
    for i, (name, video, speaker) in enumerate(targets):
        voice = sorted(voices)[i % len(voices)]
        speech = f"{voice}-for-{name}"
        speeches[speech] = _speech_of(voices[voice], recs[name].n / FPS + 0.5, case_rng(seed, speech))
        donors = [(d, v) for d, v, s in targets if s != speaker]
        for technique in TECHNIQUES:
            donor, donor_video = donors[i % len(donors)] if technique == "transplant" and donors else (None, None)
            if technique == "transplant" and donor is None:
                continue
            used = tuple(s for s in (video, voice, donor_video) if s)
            plans.append(Plan(f"{name}-sync_{technique}-audio-{voice}", technique, "audio", name, speech, donor, used))
    return _build(plans, recs, speeches, out, seed, source["sources"], "training")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--realval", type=Path, help="the built real validation set (its manifest.json and originals)")
    role.add_argument("--training", type=Path, help="the built training-role material (build/realdata/training)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segments", type=int, default=2, help="training: clips of 8 s per silent video, at most")
    args = parser.parse_args(argv)
    if args.realval:
        data = build_validation(args.realval, args.out, args.seed)
    else:
        data = build_training(args.training, args.out, args.seed, args.segments)
    counts = Counter((e["kind"], e["driver"] or "-") for e in data["cases"])
    size = sum((args.out / e["file"]).stat().st_size for e in data["cases"])
    print(f"{len(data['cases'])} cases, {size / 1e6:.1f} MB, {sum(e['duration_s'] for e in data['cases']):.0f} s: "
          + ", ".join(f"{k}/{d} {n}" for (k, d), n in sorted(counts.items())))
    print(f"manifest: {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
