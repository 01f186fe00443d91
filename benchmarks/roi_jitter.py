"""Mouth-ROI jitter on a clip with head motion: how much the crop centre moves from frame to frame
that the mouth itself does not.

    python -m benchmarks.roi_jitter

The clip is rendered with a known head pose, so the true mouth position of every frame is known;
jitter is the mean frame-to-frame change of (crop centre - true mouth centre), in frame pixels.
The same clip is also measured with the track's smoothing switched off, for comparison.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from sync_defense.offline.synthetic import scenes
from sync_defense.offline.synthetic.corpus.faces import face_bank
from sync_defense.offline.synthetic.corpus.render import head_pose
from sync_defense.preprocessing import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.faces import build_tracks
from sync_defense.preprocessing.scan import scan_faces

TILE = (320, 240)
UNSMOOTHED = replace(DEFAULT_CONFIG, faces=replace(DEFAULT_CONFIG.faces, box_median_keyframes=1, box_smooth_frames=1,
                                                  box_size_smooth_frames=1))


@dataclass(frozen=True)
class Jitter:
    jitter_px: float  # mean |delta(crop centre - true mouth)| per frame
    crop_side_jitter_px: float  # mean |delta(crop side)| per frame
    crop_side_px: float  # median crop side
    true_motion_px: float  # mean |delta(true mouth)| per frame: how much the head really moves
    face_width_px: float


def true_mouth_centres(n: int, face: str = "grace_hopper") -> np.ndarray:
    """Where the renderer put the mouth on each frame ``(n, 2)``: the photo's mouth point through the head pose."""
    photo = face_bank()[face]
    scale = scenes.FACE_WIDTH_FRAC * TILE[0] / photo.box[2]
    target = np.array([TILE[0] * scenes.FACE_CENTRE_FRAC[0], TILE[1] * scenes.FACE_CENTRE_FRAC[1]])
    point = np.array([[photo.mouth]])
    return np.stack([cv2.transform(point, head_pose(photo, scenes.SWAY, k / DEFAULT_CONFIG.timeline.fps, scale, target))[0, 0]
                     for k in range(n)])


def measure(data: bytes, truth: np.ndarray, cfg: PreprocessConfig) -> Jitter:
    scan = scan_faces(data, cfg)
    n_frames = scan.n_frames
    track = build_tracks(scan.keyframe_faces, n_frames, cfg)[0]
    lips = track.held_lips(n_frames)
    error = lips[:, :2] - truth[:n_frames]
    return Jitter(
        jitter_px=round(float(np.linalg.norm(np.diff(error, axis=0), axis=1).mean()), 3),
        crop_side_jitter_px=round(float(np.abs(np.diff(cfg.mouth.size * lips[:, 2])).mean()), 3),
        crop_side_px=round(float(np.median(cfg.mouth.size * lips[:, 2])), 1),
        true_motion_px=round(float(np.linalg.norm(np.diff(truth[:n_frames], axis=0), axis=1).mean()), 3),
        face_width_px=round(float(np.median(track.boxes[:, 2])), 1),
    )


def swaying_clip() -> tuple[bytes, np.ndarray]:
    """A talking face with visible head motion (``scenes.SWAY``) and its true mouth centres."""
    audio = scenes.speech(*scenes.SENTENCES[:2])
    frames = scenes.talking_video(audio, motion=scenes.SWAY, tile=TILE)
    return scenes.mp4(frames, audio), true_mouth_centres(len(frames))


def main() -> None:
    data, truth = swaying_clip()
    report = {"smoothed (served)": asdict(measure(data, truth, DEFAULT_CONFIG)),
              "unsmoothed (for comparison)": asdict(measure(data, truth, UNSMOOTHED))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
