"""Face detection on a real photo, track filling and smoothing, and the mouth crop."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from benchmarks.roi_jitter import UNSMOOTHED as UNSMOOTHED_TRACKS
from benchmarks.roi_jitter import measure, swaying_clip
from sync_defense.offline.synthetic.corpus.faces import grace_hopper_photo
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing.faces import Detection, build_tracks, detect_faces, running_median, smooth_boxes
from sync_defense.preprocessing.landmarks import iou
from sync_defense.preprocessing.mouth import crop_mouth


def test_the_face_and_its_lips_are_found_in_a_real_photo_on_a_downscaled_frame() -> None:
    photo = grace_hopper_photo()
    scale = photo.shape[1] / 320
    small = cv2.resize(photo, (320, int(photo.shape[0] / scale)), interpolation=cv2.INTER_AREA)
    full, downscaled = detect_faces(photo, 1.0, DEFAULT_CONFIG)[0], detect_faces(small, scale, DEFAULT_CONFIG)[0]
    x, y, w, h = full.box
    assert x < full.lips[0] < x + w and y + 0.5 * h < full.lips[1] < y + h  # the lips in the lower half of the face
    assert 0.25 * w < full.lips[2] < 0.6 * w and abs(full.lips[3]) < 0.15  # a mouth's width, level
    # Same lips, found on a quarter of the pixels: within 5% of the face width.
    assert np.linalg.norm(full.lips[:2] - downscaled.lips[:2]) < 0.05 * w


def test_no_face_in_a_gradient() -> None:
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    assert detect_faces(np.repeat(gradient[:, :, None], 3, axis=2), 1.0, DEFAULT_CONFIG) == []


def _box(x: float, y: float = 0.0, side: float = 100.0) -> Detection:
    """A detection whose lips sit at 3/4 of the box height, a third of its width wide."""
    return Detection(np.array([x, y, side, side]), np.array([x + side / 2, y + 0.75 * side, side / 3, 0.0]))


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
    assert np.allclose(track.boxes, _box(100).box, atol=1e-9) and np.allclose(track.lips, _box(100).lips, atol=1e-9)


def test_running_median_keeps_steps_and_ends() -> None:
    values = np.array([[0.0], [0.0], [9.0], [0.0], [5.0], [5.0], [5.0]])
    assert running_median(values, 3).reshape(-1).tolist() == [0, 0, 0, 5, 5, 5, 5]


def test_overlap() -> None:
    assert iou(_box(0).box, _box(0).box) == 1.0 and iou(_box(0).box, _box(200).box) == 0.0
    assert abs(iou(_box(0).box, _box(50).box) - 1 / 3) < 1e-9


def test_smoothing_removes_jitter_and_keeps_length() -> None:
    rng = np.random.default_rng(0)
    jittery = np.full((100, 4), 100.0) + rng.normal(0, 4, (100, 4))
    smoothed = smooth_boxes(jittery, 9)
    assert smoothed.shape == jittery.shape
    assert np.abs(np.diff(smoothed, axis=0)).mean() < 0.3 * np.abs(np.diff(jittery, axis=0)).mean()


def test_crop_is_centred_on_the_lips_scaled_by_their_width_and_levelled() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[95:105, 130:170] = 255  # a bright bar 40 px wide centred at (150, 100)
    crop = crop_mouth(frame, np.array([150.0, 100.0, 40.0, 0.0]), DEFAULT_CONFIG)
    size = DEFAULT_CONFIG.mouth.crop_size
    assert crop.shape == (size, size, 3)
    bright = np.argwhere(crop.mean(axis=2) > 128)
    assert abs(bright[:, 1].mean() - (size - 1) / 2) < 1 and abs(bright[:, 0].mean() - (size - 1) / 2) < 1
    assert abs(np.ptp(bright[:, 1]) + 1 - size / DEFAULT_CONFIG.mouth.size) <= 2  # one mouth width of 2
    rotated = cv2.warpAffine(frame, cv2.getRotationMatrix2D((150, 100), -30, 1.0), (300, 200))
    level = crop_mouth(rotated, np.array([150.0, 100.0, 40.0, np.radians(30)]), DEFAULT_CONFIG)
    assert np.abs(level.astype(float) - crop.astype(float)).mean() < 12  # the roll is undone


def test_crop_outside_the_frame_repeats_edges_instead_of_failing() -> None:
    frame = np.full((100, 100, 3), 77, np.uint8)
    assert np.all(crop_mouth(frame, np.array([-20.0, 110.0, 30.0, 0.0]), DEFAULT_CONFIG) == 77)


def test_mouth_roi_barely_jitters_on_a_swaying_head() -> None:
    """Crop centre vs the renderer's true mouth, frame to frame (``python -m benchmarks.roi_jitter`` prints it)."""
    data, truth = swaying_clip()
    served, unsmoothed = measure(data, truth, DEFAULT_CONFIG), measure(data, truth, UNSMOOTHED_TRACKS)
    print(f"\nROI jitter px/frame: served {served}, unsmoothed {unsmoothed}")
    # The side follows the mouth's width, which really changes as it speaks: bounded relative to the crop.
    assert served.jitter_px < 0.5 and served.crop_side_jitter_px < 0.005 * served.crop_side_px
    assert served.jitter_px < 0.7 * unsmoothed.jitter_px and served.crop_side_jitter_px < 0.3 * unsmoothed.crop_side_jitter_px
