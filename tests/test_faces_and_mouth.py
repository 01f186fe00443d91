"""Face detection on a real photo, track filling and smoothing, and the mouth crop."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing.faces import build_tracks, detect_faces, iou, running_median, smooth_boxes
from sync_defense.preprocessing.mouth import crop_mouth, mouth_boxes

from benchmarks.roi_jitter import UNSMOOTHED as UNSMOOTHED_TRACKS
from benchmarks.roi_jitter import measure, swaying_clip
from sync_defense.synthetic.corpus.faces import grace_hopper_photo


def test_haar_finds_the_face_in_a_real_photo_on_a_downscaled_frame() -> None:
    photo = grace_hopper_photo()
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    scale = photo.shape[1] / DEFAULT_CONFIG.faces.detect_width
    small = cv2.resize(gray, (DEFAULT_CONFIG.faces.detect_width, int(photo.shape[0] / scale)))
    full = detect_faces(gray, 1.0, DEFAULT_CONFIG)[0]
    downscaled = detect_faces(small, scale, DEFAULT_CONFIG)[0]
    # Same face, found at a fraction of the cost: centres within 5% of the face width.
    centre = lambda b: np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])  # noqa: E731
    assert np.linalg.norm(centre(full) - centre(downscaled)) < 0.05 * full[2]


def test_no_face_in_a_gradient() -> None:
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    assert detect_faces(gradient, 1.0, DEFAULT_CONFIG) == []


def _box(x: float, y: float = 0.0, side: float = 100.0) -> np.ndarray:
    return np.array([x, y, side, side])


UNSMOOTHED = replace(DEFAULT_CONFIG, faces=replace(DEFAULT_CONFIG.faces, box_median_keyframes=1, box_smooth_frames=1,
                                                  box_size_smooth_frames=1, track_min_seconds=0.0))


def test_track_interpolates_between_detections_and_stays_one_interval_after_the_last() -> None:
    tracks = build_tracks({5: [_box(0)], 10: [_box(50)], 15: [_box(100)]}, 40, UNSMOOTHED)
    assert len(tracks) == 1
    track = tracks[0]
    assert (track.first, track.last) == (5, 15 + UNSMOOTHED.faces.detect_every - 1)
    assert np.all(np.diff(track.boxes[:, 0]) >= 0) and track.boxes[5, 0] == 50.0  # frame 10
    held = track.held_boxes(40)
    assert held.shape == (40, 4) and held[0, 0] == 0.0 and held[-1, 0] == 100.0


def test_faces_are_followed_by_overlap_and_kept_apart() -> None:
    """Two faces detected in varying order stay two tracks; each moves smoothly."""
    frames = range(0, 50, 5)
    keyframes = {k: [_box(10 + k), _box(400 - k)][:: 1 if k % 10 else -1] for k in frames}
    tracks = build_tracks(keyframes, 50, UNSMOOTHED)
    assert len(tracks) == 2
    starts = sorted(t.boxes[0, 0] for t in tracks)
    assert starts == [10.0, 400.0]
    for t in tracks:
        assert np.abs(np.diff(t.boxes[:, 0])).max() <= 1.0


def test_up_to_max_faces_longest_first_and_short_tracks_dropped() -> None:
    keyframes = {k: [_box(150 * i) for i in range(6)] for k in range(0, 100, 5)}
    keyframes[50] = keyframes[50] + [_box(2000)]  # a one-off false positive
    for k in range(0, 100, 5):
        if k >= 30:
            keyframes[k] = keyframes[k][:5] + keyframes[k][6:]  # face 5 leaves at frame 30
    tracks = build_tracks(keyframes, 100, DEFAULT_CONFIG)
    assert len(tracks) == DEFAULT_CONFIG.faces.max_faces == 4
    assert all(t.last - t.first + 1 == 100 for t in tracks)
    assert all(t.boxes[0, 0] < 2000 for t in tracks)


def test_a_face_that_leaves_for_long_comes_back_as_a_new_track() -> None:
    gap = DEFAULT_CONFIG.faces.track_max_gap_frames
    keyframes = {k: [_box(0)] for k in list(range(0, 60, 5)) + list(range(60 + gap + 10, 200, 5))}
    tracks = build_tracks(keyframes, 200, DEFAULT_CONFIG)
    assert len(tracks) == 2
    assert sorted((t.first, t.last) for t in tracks)[0] == (0, 59)


def test_short_tracks_are_dropped() -> None:
    """A detector false positive that repeats for a second is not a face to judge."""
    keyframes = {k: [_box(0)] for k in range(0, 100, 5)}
    for k in range(20, 45, 5):
        keyframes[k] = keyframes[k] + [_box(300, side=60)]
    tracks = build_tracks(keyframes, 100, DEFAULT_CONFIG)
    assert len(tracks) == 1 and abs(tracks[0].boxes[0, 0]) < 1e-9


def test_no_detection_means_no_track() -> None:
    assert build_tracks({}, 10, DEFAULT_CONFIG) == []


def test_one_bad_detection_does_not_move_the_track() -> None:
    keyframes = {k: [_box(100)] for k in range(0, 50, 5)}
    keyframes[25] = [_box(130, side=80)]  # the detector slips once
    track = build_tracks(keyframes, 50, DEFAULT_CONFIG)[0]
    assert np.allclose(track.boxes, _box(100), atol=1e-9)


def test_running_median_keeps_steps_and_ends() -> None:
    values = np.array([[0.0], [0.0], [9.0], [0.0], [5.0], [5.0], [5.0]])
    assert running_median(values, 3).reshape(-1).tolist() == [0, 0, 0, 5, 5, 5, 5]


def test_overlap() -> None:
    assert iou(_box(0), _box(0)) == 1.0 and iou(_box(0), _box(200)) == 0.0
    assert abs(iou(_box(0), _box(50)) - 1 / 3) < 1e-9


def test_smoothing_removes_jitter_and_keeps_length() -> None:
    rng = np.random.default_rng(0)
    jittery = np.full((100, 4), 100.0) + rng.normal(0, 4, (100, 4))
    smoothed = smooth_boxes(jittery, 9)
    assert smoothed.shape == jittery.shape
    assert np.abs(np.diff(smoothed, axis=0)).mean() < 0.3 * np.abs(np.diff(jittery, axis=0)).mean()


def test_mouth_box_sits_in_the_lower_face_and_scales_with_it() -> None:
    cx, cy, side = mouth_boxes(np.array([[100.0, 200.0, 80.0, 80.0]]), DEFAULT_CONFIG)[0]
    assert cx == 140.0 and 200 + 0.6 * 80 < cy < 200 + 80
    assert side == DEFAULT_CONFIG.mouth.size * 80


def test_crop_has_model_size_and_samples_the_right_place() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[90:110, 140:160] = 255  # a bright square centred at (150, 100)
    crop = crop_mouth(frame, np.array([150.0, 100.0, 40.0]), 64)
    assert crop.shape == (64, 64, 3)
    assert crop[24:40, 24:40].mean() > 200 and crop[:8].mean() < 10


def test_crop_outside_the_frame_repeats_edges_instead_of_failing() -> None:
    frame = np.full((100, 100, 3), 77, np.uint8)
    assert np.all(crop_mouth(frame, np.array([-20.0, 110.0, 60.0]), 64) == 77)


def test_mouth_roi_barely_jitters_on_a_swaying_head() -> None:
    """Crop centre vs the renderer's true mouth, frame to frame (``python -m benchmarks.roi_jitter`` prints it)."""
    data, truth = swaying_clip()
    served, unsmoothed = measure(data, truth, DEFAULT_CONFIG), measure(data, truth, UNSMOOTHED_TRACKS)
    print(f"\nROI jitter px/frame: served {served}, unsmoothed {unsmoothed}")
    assert served.jitter_px < 0.5 and served.crop_side_jitter_px < 0.25
    assert served.jitter_px < 0.7 * unsmoothed.jitter_px and served.crop_side_jitter_px < 0.3 * unsmoothed.crop_side_jitter_px
