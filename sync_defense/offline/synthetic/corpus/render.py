"""Animate a face photo from speech: mouth opening from loudness, mouth width from the spectrum,
a jaw that drops with the mouth, natural head motion, at any frame rate and resolution."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import FacePhoto


@dataclass(frozen=True)
class MouthTrack:
    """Per video frame: opening 0..1 and width factor around 1."""

    opening: np.ndarray
    width: np.ndarray

    def __len__(self) -> int:
        return len(self.opening)

    def delayed(self, frames: int) -> MouthTrack:
        """The track ``frames`` later in time (earlier when negative), closed mouth filling in."""
        return MouthTrack(_delay(self.opening, frames, 0.0), _delay(self.width, frames, 1.0))

    def at_times(self, times_s: np.ndarray, fps: float) -> MouthTrack:
        """The track (defined every ``1 / fps`` s) read at arbitrary instants: frames of a variable-rate video."""
        grid = np.arange(len(self))
        return MouthTrack(np.interp(times_s * fps, grid, self.opening), np.interp(times_s * fps, grid, self.width))

    def spliced(self, other: MouthTrack, start: int, stop: int) -> MouthTrack:
        """This track with frames ``start:stop`` taken from ``other``."""
        opening, width = self.opening.copy(), self.width.copy()
        opening[start:stop], width[start:stop] = other.opening[start:stop], other.width[start:stop]
        return MouthTrack(opening, width)


def _delay(track: np.ndarray, frames: int, fill: float) -> np.ndarray:
    out = np.full_like(track, fill)
    if frames >= 0:
        out[frames:] = track[: len(track) - frames]
    else:
        out[:frames] = track[-frames:]
    return out


def mouth_track(speech: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> MouthTrack:
    """Opening from the loudness of each frame's audio, width from its spectral centroid
    (bright vowels such as 'ee' spread the lips, dark ones such as 'oo' round them)."""
    hop = sample_rate / fps
    edges = (np.arange(n_frames + 1) * hop).astype(int)
    padded = np.pad(speech, (0, max(0, edges[-1] - speech.size)))
    frames = [padded[edges[k] : edges[k + 1]] for k in range(n_frames)]
    level_db = np.array([20 * np.log10(np.sqrt(np.mean(f**2)) + 1e-6) for f in frames])
    opening = np.clip((level_db + 50.0) / 35.0, 0.0, 1.0)
    spectra = [np.abs(np.fft.rfft(f * np.hanning(f.size))) for f in frames]
    freqs = [np.fft.rfftfreq(f.size, 1.0 / sample_rate) for f in frames]
    centroid = np.array([(fr * sp).sum() / (sp.sum() + 1e-9) for fr, sp in zip(freqs, spectra, strict=True)])
    width = np.where(opening > 0.05, np.clip(0.85 + centroid / 8000.0, 0.85, 1.2), 1.0)
    smooth = np.array([0.25, 0.5, 0.25])
    return MouthTrack(np.convolve(opening, smooth, mode="same"), np.convolve(width, smooth, mode="same"))


@dataclass(frozen=True)
class MouthStyle:
    """How one clip's mouth looks."""

    lip_rgb: tuple[float, float, float]
    cavity_rgb: tuple[float, float, float]
    teeth: bool
    width_frac: float  # mouth width / face width
    max_open_frac: float  # full opening / face height
    jaw_frac: float  # jaw drop at full opening / face height
    blur_sigma: float  # > 0: generator-style smoothed mouth
    seam: float  # > 0: generator-style blending seam (colour offset of the pasted patch)

    @classmethod
    def random(cls, rng: np.random.Generator, generator_style: bool = False) -> MouthStyle:
        return cls(
            lip_rgb=tuple(rng.uniform([120, 40, 40], [200, 110, 110])),
            cavity_rgb=tuple(rng.uniform([20, 0, 0], [80, 30, 35])),
            teeth=bool(rng.random() < 0.6),
            width_frac=float(rng.uniform(0.3, 0.45)),
            max_open_frac=float(rng.uniform(0.12, 0.22)),
            jaw_frac=float(rng.uniform(0.0, 0.08)),
            blur_sigma=float(rng.uniform(1.0, 3.0)) if generator_style else 0.0,
            seam=float(rng.uniform(8, 25)) if generator_style else 0.0,
        )


@dataclass(frozen=True)
class HeadMotion:
    """A smooth random sway: sums of slow sinusoids for x, y, rotation and scale."""

    amplitude: np.ndarray  # (4,) px, px, degrees, relative scale
    frequency: np.ndarray  # (4, 2) Hz
    phase: np.ndarray  # (4, 2)

    @classmethod
    def random(cls, rng: np.random.Generator, face_width: float) -> HeadMotion:
        amplitude = np.array([rng.uniform(0, 0.06), rng.uniform(0, 0.04), rng.uniform(0, 3.0), rng.uniform(0, 0.03)])
        amplitude[:2] *= face_width
        return cls(amplitude, rng.uniform(0.05, 0.6, (4, 2)), rng.uniform(0, 2 * np.pi, (4, 2)))

    def at(self, t: float) -> np.ndarray:
        return self.amplitude * np.sin(2 * np.pi * self.frequency * t + self.phase).mean(axis=1)


def _draw_mouth(image: np.ndarray, face: FacePhoto, opening: float, width: float, style: MouthStyle) -> np.ndarray:
    w, h = face.box[2:]
    cx, cy = face.mouth  # over the photo's own lips, where the face mesh finds them
    half_w = max(2.0, 0.5 * style.width_frac * w * width)
    half_h = 1.5 + 0.5 * style.max_open_frac * h * opening
    out = image
    if style.jaw_frac > 0 and opening > 0.02:
        out = _drop_jaw(out, cx, cy, w, h, style.jaw_frac * h * opening)
    out = out.copy()
    centre = (int(round(cx)), int(round(cy + 0.3 * half_h)))
    lips = (int(round(half_w + 0.04 * w)), int(round(half_h + 0.03 * h)))
    cv2.ellipse(out, centre, lips, 0, 0, 360, style.lip_rgb, -1, cv2.LINE_AA)
    cv2.ellipse(out, centre, (int(round(half_w)), int(round(half_h))), 0, 0, 360, style.cavity_rgb, -1, cv2.LINE_AA)
    if style.teeth and opening > 0.25:
        top = centre[1] - int(half_h)
        cv2.rectangle(out, (centre[0] - int(0.6 * half_w), top), (centre[0] + int(0.6 * half_w), top + max(1, int(0.25 * half_h))),
                      (225, 220, 205), -1)
    if style.blur_sigma > 0 or style.seam > 0:
        out = _generator_patch(out, image, centre, lips, style)
    return out


def _drop_jaw(image: np.ndarray, cx: float, cy: float, w: float, h: float, drop: float) -> np.ndarray:
    """Move the skin below the mouth down by up to ``drop`` pixels, fading out towards the chin."""
    x0, x1 = max(0, int(cx - 0.5 * w)), min(image.shape[1], int(cx + 0.5 * w))
    y0, y1 = max(0, int(cy - 0.2 * h)), min(image.shape[0], int(cy + 0.5 * h))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    across = np.clip(1 - np.abs(xs - cx) / (0.45 * w), 0, 1)
    below = np.clip((ys - (cy - 0.05 * h)) / (0.1 * h), 0, 1) * np.clip(1 - (ys - cy) / (0.45 * h), 0, 1)
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, xs, ys - drop * across * below, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _generator_patch(rendered: np.ndarray, original: np.ndarray, centre: tuple[int, int], lips: tuple[int, int],
                     style: MouthStyle) -> np.ndarray:
    """A re-rendered mouth pasted back: smoothed inside a box whose colour does not quite match."""
    x0, y0 = max(0, centre[0] - 2 * lips[0]), max(0, centre[1] - 2 * lips[1] - 4)
    x1, y1 = min(rendered.shape[1], centre[0] + 2 * lips[0]), min(rendered.shape[0], centre[1] + 2 * lips[1] + 4)
    patch = rendered[y0:y1, x0:x1].astype(np.float32)
    if style.blur_sigma > 0:
        patch = cv2.GaussianBlur(patch, (0, 0), style.blur_sigma)
    out = rendered.copy()
    out[y0:y1, x0:x1] = np.clip(patch + style.seam * np.array([1.0, 0.6, 0.3]), 0, 255).astype(np.uint8)
    return out


def head_pose(face: FacePhoto, motion: HeadMotion, t: float, scale: float, target: np.ndarray) -> np.ndarray:
    """The 2x3 affine map from photo to frame pixels at time ``t``: the face centre goes to ``target``
    plus the sway, turned and scaled by the head motion."""
    x, y, w, h = face.box
    dx, dy, angle, dscale = motion.at(t)
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, scale * (1 + dscale))
    matrix[:, 2] += target + (dx, dy) - (x + w / 2, y + h / 2)
    return matrix


def render_frames(face: FacePhoto, track: MouthTrack, style: MouthStyle, motion: HeadMotion, fps: float,
                  size: tuple[int, int], face_width_frac: float, centre_frac: tuple[float, float],
                  times_s: np.ndarray | None = None) -> np.ndarray:
    """``(n, H, W, 3)`` frames of ``face`` speaking along ``track``, framed at ``size`` = (W, H) with the
    face ``face_width_frac`` of the width wide and its centre at ``centre_frac`` of the frame.

    Frame ``k`` is taken at ``times_s[k]`` (default ``k / fps``); ``track`` has one entry per frame.
    """
    times_s = np.arange(len(track)) / fps if times_s is None else times_s
    out_w, out_h = size
    scale = face_width_frac * out_w / face.box[2]
    target = np.array([out_w * centre_frac[0], out_h * centre_frac[1]])
    frames = np.empty((len(track), out_h, out_w, 3), np.uint8)
    for k in range(len(track)):
        drawn = _draw_mouth(face.image, face, track.opening[k], track.width[k], style)
        frames[k] = cv2.warpAffine(drawn, head_pose(face, motion, times_s[k], scale, target), (out_w, out_h),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return frames
