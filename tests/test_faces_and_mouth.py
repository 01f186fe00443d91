"""Face detection on a real photo, track filling and smoothing, and the mouth crop."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from avsync.talking_head import grace_hopper_photo
from preprocessing import DEFAULT_CONFIG
from preprocessing.faces import detect_faces, fill_track, smooth_boxes
from preprocessing.mouth import crop_mouth, mouth_boxes


def test_haar_finds_the_face_in_a_real_photo_on_a_downscaled_frame() -> None:
    photo = grace_hopper_photo()
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    scale = photo.shape[1] / DEFAULT_CONFIG.face_detect_width
    small = cv2.resize(gray, (DEFAULT_CONFIG.face_detect_width, int(photo.shape[0] / scale)))
    full = detect_faces(gray, 1.0, DEFAULT_CONFIG)[0]
    downscaled = detect_faces(small, scale, DEFAULT_CONFIG)[0]
    # Same face, found at a fraction of the cost: centres within 5% of the face width.
    centre = lambda b: np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])  # noqa: E731
    assert np.linalg.norm(centre(full) - centre(downscaled)) < 0.05 * full[2]


def test_no_face_in_a_gradient() -> None:
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    assert detect_faces(gradient, 1.0, DEFAULT_CONFIG) == []


def test_track_interpolates_between_detections_and_holds_the_ends() -> None:
    boxes = {5: np.array([0.0, 0, 100, 100]), 15: np.array([100.0, 0, 100, 100])}
    track = fill_track(boxes, 21, replace(DEFAULT_CONFIG, box_smooth_frames=1))
    assert track.shape == (21, 4)
    assert np.all(np.diff(track[:, 0]) >= 0)  # monotone, like the motion it smooths
    assert track[10, 0] == np.float64(50.0)


def test_no_detection_means_no_track() -> None:
    assert fill_track({}, 10, DEFAULT_CONFIG) is None


def test_smoothing_removes_jitter_and_keeps_length() -> None:
    rng = np.random.default_rng(0)
    jittery = np.full((100, 4), 100.0) + rng.normal(0, 4, (100, 4))
    smoothed = smooth_boxes(jittery, 9)
    assert smoothed.shape == jittery.shape
    assert np.abs(np.diff(smoothed, axis=0)).mean() < 0.3 * np.abs(np.diff(jittery, axis=0)).mean()


def test_mouth_box_sits_in_the_lower_face_and_scales_with_it() -> None:
    cx, cy, side = mouth_boxes(np.array([[100.0, 200.0, 80.0, 80.0]]), DEFAULT_CONFIG)[0]
    assert cx == 140.0 and 200 + 0.6 * 80 < cy < 200 + 80
    assert side == DEFAULT_CONFIG.mouth_size * 80


def test_crop_has_model_size_and_samples_the_right_place() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[90:110, 140:160] = 255  # a bright square centred at (150, 100)
    crop = crop_mouth(frame, np.array([150.0, 100.0, 40.0]), 64)
    assert crop.shape == (64, 64, 3)
    assert crop[24:40, 24:40].mean() > 200 and crop[:8].mean() < 10


def test_crop_outside_the_frame_repeats_edges_instead_of_failing() -> None:
    frame = np.full((100, 100, 3), 77, np.uint8)
    assert np.all(crop_mouth(frame, np.array([-20.0, 110.0, 60.0]), 64) == 77)
