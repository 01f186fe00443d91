"""Per-frame traces of a re-made mouth, training-free and without audio: blur, colour and flicker.

A Wav2Lip-class generator re-renders the lower half of the face at 96 px and pastes it back: the
pasted mouth is blurrier than the rest of the face once scaled up, its skin may not match the upper
face's colour, and frames made one by one flicker. On each frame the mouth's square (the mouth
crop's, 2 mouth widths) is compared with an *upper* crop at the same pixel scale, between the eyes,
which the generator does not touch and which, anchored on the face box rather than on the lips, does
not move with the jaw. Both are cut from the frame already converted for the mouth crop.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from . import landmarks
from .config import PreprocessConfig

# The eye line's height in the face detector's box (share of its height), on the box's centre line:
# the face mesh puts it at 0.28-0.31 (median per clip) on all 7 training-role videos.
EYES_IN_BOX = 0.29
# The mouth square's skin: pixels at least this share of the side from the centre across or down
# (the lip corners sit at 0.25): cheeks, chin and the skin under the nose, which a generator re-makes
# with the lips but which do not open and close with them.
SKIN_RING = 0.35
CHROMA_PX = 16  # colour is read on the crops shrunk to this side: a colour is smooth, and medians of 256 pixels are cheap
SHARPNESS_FLOOR = 1e-3  # the Laplacian's variance of a flat (synthetic) upper crop: keeps the ratio finite
TEXTURE = ("sharpness_ratio", "colour_shift", "skin_change", "upper_change")  # the columns of ``texture``


def face_crops(frame_rgb: np.ndarray, box: np.ndarray, lips: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(mouth, upper)`` uint8 RGB: the mouth's square at ``texture.square_px`` and, at the same scale, the
    upper crop between the eyes of the face ``box`` (x, y, w, h); both rotated with the lips' roll."""
    cx, cy, width, roll = (float(v) for v in lips)
    x, y, w, h = (float(v) for v in box)
    side = cfg.mouth.size * max(width, 1.0)
    mouth = landmarks.crop_aligned(frame_rgb, (cx, cy, side, roll), cfg.texture.square_px)
    upper = landmarks.crop_aligned(frame_rgb, (x + w / 2, y + EYES_IN_BOX * h, cfg.texture.upper_share * side, roll),
                                   cfg.texture.upper_px)
    return mouth, upper


@lru_cache(maxsize=4)
def _skin_ring(size: int) -> np.ndarray:
    """``(size, size)`` uint8 mask (an OpenCV mask) of the ``SKIN_RING`` pixels."""
    distance = np.abs(np.arange(size) - (size - 1) / 2) / size
    return (np.maximum(distance[:, None], distance[None, :]) >= SKIN_RING).astype(np.uint8)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: how much fine detail (edges, pores, lashes) the crop holds."""
    return float(cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))[1][0, 0] ** 2)


def _chroma(rgb: np.ndarray, ring: bool) -> np.ndarray:
    """Median CIELAB (a*, b*) over the crop (or its skin ring) at ``CHROMA_PX``: the skin's colour, its
    lightness apart; medians, so that lips, eyes or a hand in a few pixels do not move it."""
    small = cv2.resize(rgb, (CHROMA_PX, CHROMA_PX), interpolation=cv2.INTER_AREA)
    ab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 1:]
    return np.median(ab[_skin_ring(CHROMA_PX).astype(bool)] if ring else ab.reshape(-1, 2), axis=0)


def _change(grey: np.ndarray, before: np.ndarray, mask: np.ndarray | None = None) -> float:
    return float(cv2.mean(cv2.absdiff(grey, before), mask)[0])


def texture(mouth: np.ndarray, upper: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``TEXTURE`` of one frame from its ``face_crops`` and, when the previous timeline frame was cropped
    too, that frame's (the changes are NaN otherwise).

    - ``sharpness_ratio``: the Laplacian's variance of the mouth's square over the upper crop's;
    - ``colour_shift``: CIELAB a*b* distance between the mouth square's skin ring and the upper crop;
    - ``skin_change`` / ``upper_change``: mean absolute grey change since the previous frame of the
      mouth square's skin ring / of the upper crop.
    """
    ring = _skin_ring(mouth.shape[0])
    grey_mouth, grey_upper = _grey(mouth), _grey(upper)
    ratio = _sharpness(grey_mouth) / max(_sharpness(grey_upper), SHARPNESS_FLOOR)
    shift = float(np.linalg.norm(_chroma(mouth, True) - _chroma(upper, False)))
    if previous is None:
        return np.array([ratio, shift, np.nan, np.nan], np.float32)
    changes = _change(grey_mouth, _grey(previous[0]), ring), _change(grey_upper, _grey(previous[1]))
    return np.array([ratio, shift, *changes], np.float32)
