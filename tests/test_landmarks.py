"""Landmark faces and lip-aligned mouths on real photos (no network: the photos ship with skimage and matplotlib)."""

from __future__ import annotations

import math

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from skimage import data

from sync_defense.preprocessing import landmarks as lm


def grace_hopper() -> np.ndarray:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


PHOTOS = {"astronaut": data.astronaut, "grace_hopper": grace_hopper}


def rotated(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """``rgb`` turned counter-clockwise on screen by ``degrees`` about its centre (same size)."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def mouth(rgb: np.ndarray) -> tuple[lm.Box, np.ndarray, lm.Transform]:
    box = lm.detect_faces(rgb)[0]
    points = lm.face_landmarks(rgb, box)
    assert points is not None
    return box, points, lm.mouth_transform(points)


@pytest.mark.parametrize("name", PHOTOS)
def test_one_face_with_the_mouth_low_and_level(name: str) -> None:
    rgb = PHOTOS[name]()
    boxes = lm.detect_faces(rgb)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    points = lm.face_landmarks(rgb, boxes[0])
    assert points.shape == (478, 2)
    cx, cy, side, roll = lm.mouth_transform(points)
    assert x + w / 3 < cx < x + 2 * w / 3  # horizontally central
    assert y + 2 * h / 3 < cy < y + h  # in the face box's lower third
    assert abs(math.degrees(roll)) < 8
    assert 0.35 * w < side / lm.MOUTH_CROP_FACTOR < 0.75 * w  # a mouth is about half a face wide


@pytest.mark.parametrize("name", PHOTOS)
def test_the_plain_mesh_places_the_same_lips_without_the_refined_points(name: str) -> None:
    rgb = PHOTOS[name]()
    box = lm.detect_faces(rgb)[0]
    refined, plain = lm.face_landmarks(rgb, box), lm.face_landmarks(rgb, box, refined_lips=False)
    assert refined.shape == (478, 2) and plain.shape == (468, 2)
    width = np.linalg.norm(refined[lm.LIP_CORNERS[1]] - refined[lm.LIP_CORNERS[0]])
    corners = list(lm.LIP_CORNERS)
    assert np.abs(plain[corners] - refined[corners]).max() < 0.1 * width  # the same face, its own lip contour


def test_aperture_tells_an_open_smile_from_closed_lips() -> None:
    _, astronaut, _ = mouth(data.astronaut())  # smiling, teeth showing
    _, grace, _ = mouth(grace_hopper())  # lips closed
    assert lm.lip_aperture(grace) < 0.05 < 0.1 < lm.lip_aperture(astronaut) < 0.4


def test_lip_shape_reads_the_aperture_and_the_shape_at_the_scale_of_the_eyes() -> None:
    _, astronaut, _ = mouth(data.astronaut())
    _, grace, _ = mouth(grace_hopper())
    shapes = {name: lm.lip_shape(points) for name, points in (("astronaut", astronaut), ("grace", grace))}
    for name, points in (("astronaut", astronaut), ("grace", grace)):
        assert shapes[name][0] == np.float32(lm.lip_aperture(points))
        doubled = lm.lip_shape(2 * points + 7)  # the same face twice as close, elsewhere in the frame
        np.testing.assert_allclose(doubled, shapes[name], rtol=1e-5)
    # the smile's lips part: the outer height exceeds the two lips' thicknesses by the opening
    smile, closed = shapes["astronaut"], shapes["grace"]
    assert smile[2] > smile[3] + smile[4] + 0.05 and abs(closed[2] - closed[3] - closed[4]) < 0.03
    assert 0.5 < smile[1] < 1.0 and 0.4 < closed[1] < 1.0  # a mouth is narrower than the eye corners are apart


def test_faces_come_largest_first() -> None:
    astronaut, grace = data.astronaut(), grace_hopper()
    side_by_side = np.hstack([astronaut, grace[: astronaut.shape[0]]])  # grace's face is twice as wide
    boxes = lm.detect_faces(side_by_side)
    assert len(boxes) == 2
    assert boxes[0][0] > astronaut.shape[1] > boxes[1][0] + boxes[1][2]
    assert boxes[0][2] > 1.5 * boxes[1][2]


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("degrees", [20, -20, 35])
def test_rotation_turns_the_angle_and_not_the_aligned_crop(name: str, degrees: float) -> None:
    rgb = PHOTOS[name]()
    _, points, upright = mouth(rgb)
    turned = rotated(rgb, degrees)
    _, turned_points, transform = mouth(turned)
    # A counter-clockwise turn on screen lowers the angle (y points down).
    assert math.degrees(transform[3] - upright[3]) == pytest.approx(-degrees, abs=3)
    assert transform[2] == pytest.approx(upright[2], rel=0.08)
    # The lips land where the rotation moved them (the mesh is redone on a rotated ROI past 10 degrees).
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    lips = list(lm.OUTER_LIP_RING + lm.INNER_LIP_MIDDLE)
    mouth_width = upright[2] / lm.MOUTH_CROP_FACTOR
    assert np.linalg.norm(turned_points[lips] - moved[lips], axis=1).mean() < 0.04 * mouth_width
    reference = lm.crop_aligned(rgb, upright, 64).astype(np.float32)
    aligned = lm.crop_aligned(turned, transform, 64).astype(np.float32)
    not_aligned = lm.crop_aligned(turned, (*transform[:3], 0.0), 64).astype(np.float32)
    assert np.abs(aligned - reference).mean() < 0.6 * np.abs(not_aligned - reference).mean()


def test_unrotated_crop_is_the_square_resized() -> None:
    rgb = data.astronaut()
    _, _, (cx, cy, _, _) = mouth(rgb)
    x0, y0 = round(cx) - 64, round(cy) - 64
    # A 128-px square centred between pixels x0 + 63 and x0 + 64 covers pixels x0 .. x0 + 127 exactly,
    # so at half size each output pixel is the mean of a 2x2 block, as an area resize of the slice.
    crop = lm.crop_aligned(rgb, (x0 + 63.5, y0 + 63.5, 128.0, 0.0), 64)
    plain = cv2.resize(rgb[y0 : y0 + 128, x0 : x0 + 128], (64, 64), interpolation=cv2.INTER_AREA)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - plain).max() <= 1
    # Outside the frame its edge repeats instead of going black.
    corner = lm.crop_aligned(rgb, (0.0, 0.0, 64.0, 0.0), 64)
    assert np.array_equal(corner[:16, :16], np.broadcast_to(rgb[0, 0], (16, 16, 3)))


def test_a_large_square_is_averaged_not_aliased() -> None:
    """A 1-px checkerboard cut at 4x reduction must come out flat grey, as an area resize makes it."""
    board = np.indices((512, 512)).sum(axis=0) % 2 * 255
    rgb = np.repeat(board[:, :, None], 3, axis=2).astype(np.uint8)
    crop = lm.crop_aligned(rgb, (255.5, 255.5, 256.0, 0.3), 64).astype(np.float32)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 8


@pytest.mark.parametrize("name", PHOTOS)
def test_a_downscaled_photo_gives_a_smaller_face_and_the_same_mouth(name: str) -> None:
    rgb = PHOTOS[name]()
    box, _, (cx, cy, side, roll) = mouth(rgb)
    half = cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    small_box, _, (scx, scy, small_side, small_roll) = mouth(half)
    assert small_box[2] == pytest.approx(box[2] / 2, rel=0.1)
    assert math.hypot(2 * scx - cx, 2 * scy - cy) < 0.05 * side
    assert small_side == pytest.approx(side / 2, rel=0.08)
    assert abs(small_roll - roll) < math.radians(3)


def test_a_30_px_face_in_a_vga_frame_is_found_with_tiles_and_meshed() -> None:
    rgb = data.astronaut()
    box = lm.detect_faces(rgb)[0]
    scale = lm.MIN_FACE_WIDTH_PX / box[2]
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = cv2.GaussianBlur(cv2.resize(data.coffee(), (640, 480)), (0, 0), 3)
    frame[200 : 200 + small.shape[0], 300 : 300 + small.shape[1]] = small
    truth_centre = (box[:2] + box[2:] / 2) * scale + (300, 200)
    found = [b for b in lm.detect_faces(frame, tiles=2) if np.hypot(*(b[:2] + b[2:] / 2 - truth_centre)) < 10]
    assert len(found) == 1 and found[0][2] == pytest.approx(lm.MIN_FACE_WIDTH_PX, rel=0.3)
    points = lm.face_landmarks(frame, found[0])
    assert points is not None
    _, _, (cx, cy, side, _) = mouth(rgb)
    mx, my, _, _ = lm.mouth_transform(points)
    assert math.hypot((mx - 300) / scale - cx, (my - 200) / scale - cy) < 0.15 * side  # within 0.3 mouth widths


def test_no_mesh_where_there_is_no_face() -> None:
    rgb = data.astronaut()
    assert lm.face_landmarks(rgb, np.array([20.0, 20.0, 100.0, 100.0])) is None  # the flag, top left
    assert lm.detect_faces(np.full((480, 640, 3), 128, np.uint8)) == []
