"""MediaPipe's BlazeFace read from its .tflite into torch, exported to ONNX, against MediaPipe itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from sync_defense import contract as c
from sync_defense.export import tflite_graphs as tg
from sync_defense.export.parity import ONNX_TOLERANCE, check_parity, onnx_runner, parity_error
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing import face_graphs as fg
from sync_defense.preprocessing import landmarks as lm
from sync_defense.preprocessing.decode import iter_timeline_frames, to_small

SIZE = fg.FULL_RANGE.size
MEDIAPIPE = lm.MediaPipeModels()


@pytest.fixture(scope="module")
def module() -> tg.TfliteModule:
    torch.set_num_threads(1)
    return tg.tflite_module(tg.mediapipe_model(fg.FULL_RANGE_TFLITE))


@pytest.fixture(scope="module")
def detector_onnx(face_onnx_dir: Path) -> Path:
    return face_onnx_dir / f"{c.FACE_DETECTOR}.onnx"


@pytest.fixture(scope="module")
def talking_frames(talking_mp4: bytes) -> list[np.ndarray]:
    """Every 25th frame of the talking-face video, at the pipeline's detection width."""
    return [to_small(frame, 640)[0] for k, frame in iter_timeline_frames(talking_mp4, DEFAULT_CONFIG) if k % 25 == 0]


def test_tf_same_padding_puts_the_odd_pixel_after() -> None:
    assert tg.same_padding(5, 3, 2, 1) == (1, 1)
    assert tg.same_padding(6, 3, 2, 1) == (0, 1)
    assert tg.same_padding(192, 3, 1, 1) == (1, 1)
    assert tg.same_padding(7, 1, 2, 1) == (0, 0)


def test_weighted_nms_averages_a_cluster_by_score_and_keeps_its_best_score() -> None:
    scores = np.array([0.6, 0.9, 0.8], np.float32)
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7], [0.52, 0.5, 0.72, 0.7]], np.float32)
    (best, merged), (other, single) = fg.weighted_nms(scores, boxes, 0.3)
    assert best == pytest.approx(0.9) and other == pytest.approx(0.6)
    np.testing.assert_allclose(merged, (0.9 * boxes[1] + 0.8 * boxes[2]) / 1.7, rtol=1e-6)
    np.testing.assert_allclose(single, boxes[0])


def test_every_op_of_the_detector_is_converted_and_the_sparse_weights_are_dense(module: tg.TfliteModule) -> None:
    graph = tg.read_tflite(tg.mediapipe_model(fg.FULL_RANGE_TFLITE))
    assert {op.kind for op in graph.ops} <= set(tg.LAYERS)  # DENSIFY and DEQUANTIZE were folded
    weights = [t.data for t in graph.tensors if t.data is not None and t.data.dtype == np.float32]
    assert weights and all(np.isfinite(w).all() for w in weights)
    boxes, scores = module(torch.zeros(1, SIZE, SIZE, 3))
    assert boxes.shape == (1, 2304, 16) and scores.shape == (1, 2304, 1)


def test_the_torch_module_matches_tflites_interpreter(module: tg.TfliteModule) -> None:
    from ai_edge_litert.interpreter import Interpreter  # TFLite's own runtime (the dev extra)

    interpreter = Interpreter(model_path=str(tg.mediapipe_model(fg.FULL_RANGE_TFLITE)), num_threads=1)
    interpreter.allocate_tensors()
    image = np.random.default_rng(0).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    expected = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    with torch.no_grad():
        got = [t.numpy() for t in module(torch.from_numpy(image))]
    assert parity_error(got, expected) < ONNX_TOLERANCE


def test_the_onnx_graph_has_a_batch_axis(detector_onnx: Path, module: tg.TfliteModule) -> None:
    import onnx

    (source,) = onnx.load(str(detector_onnx)).graph.input
    assert source.type.tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed 1
    images = np.random.default_rng(1).uniform(-1, 1, (5, SIZE, SIZE, 3)).astype(np.float32)
    run = onnx_runner(detector_onnx)
    whole = run({c.IMAGE: images})
    rows = [run({c.IMAGE: images[i : i + 1]}) for i in range(5)]
    assert parity_error(whole, [np.concatenate(parts) for parts in zip(*rows, strict=True)]) < 1e-5

    def torch_runner(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(torch.from_numpy(feed[c.IMAGE]))]

    for report in check_parity("face_detector", run, torch_runner, [{c.IMAGE: images}], "random", ONNX_TOLERANCE):
        assert report.ok, report


def test_the_onnx_detector_finds_mediapipes_face_boxes(graphs: lm.GraphModels, talking_frames: list[np.ndarray]) -> None:
    found = graphs.detect(talking_frames, "full")
    for rgb, scored in zip(talking_frames, found, strict=True):
        expected = MEDIAPIPE.detect([rgb], "full")[0]
        assert len(expected) == len(scored) >= 1
        by_score = [sorted(found_here, key=lambda s: -s[0]) for found_here in (scored, expected)]
        for (score, box), (want_score, want_box) in zip(*by_score, strict=True):
            assert score == pytest.approx(want_score, abs=1e-4) and lm.iou(box, want_box) > 0.999


def test_the_onnx_detector_finds_no_face_on_a_blank_frame(graphs: lm.GraphModels, talking_frames: list[np.ndarray]) -> None:
    blank = np.full_like(talking_frames[0], 128)
    empty, found = graphs.detect([blank, talking_frames[0]], "full")
    assert empty == [] and found


def test_the_pipeline_tracks_the_same_faces_and_lips_with_either_kind_of_face_models(graphs: lm.GraphModels, talking_mp4: bytes) -> None:
    """What the server does with ``face_models: graphs``, in the process: same tracks, same lip openings."""
    from sync_defense.preprocessing import preprocess_video

    expected = preprocess_video(talking_mp4)
    with lm.using(graphs):
        got = preprocess_video(talking_mp4)
    assert len(got.tracks) == len(expected.tracks) == 1
    np.testing.assert_allclose(got.tracks[0].lips, expected.tracks[0].lips, atol=0.05)
    np.testing.assert_allclose(got.apertures[0], expected.apertures[0], atol=1e-3)
    assert np.array_equal(got.window_start, expected.window_start)
    difference = np.abs(got.crops.astype(int) - expected.crops.astype(int))  # the lips 1e-3 px apart: edge pixels round apart
    assert difference.mean() < 0.05 and difference.max() <= 8  # one pixel off would be several grey levels


# --- the attention face mesh, MediaPipe's custom ops as torch ops


@pytest.fixture(scope="module")
def mesh_onnx(face_onnx_dir: Path) -> Path:
    return face_onnx_dir / f"{c.FACE_MESH}.onnx"


@pytest.fixture(scope="module")
def graphs(mesh_onnx: Path) -> lm.GraphModels:
    """Both graphs in ONNX Runtime in this process, as ``landmarks.FaceModels``."""
    return lm.GraphModels(fg.onnx_runner(mesh_onnx.parent))


def photo_rois() -> list[tuple[np.ndarray, fg.Roi]]:
    """Squares around the astronaut's face (a real photo shipped with skimage): as ``face_landmarks``
    meshes it first, rolled both ways, and with the photo's top 100 rows cut so that the square
    reaches 80 px past the frame (the crop's border is replicated there)."""
    crops = []
    for rgb in (data.astronaut(), np.ascontiguousarray(data.astronaut()[100:])):
        square = lm.face_square(lm.detect_faces(rgb)[0])
        crops += [(rgb, square), (rgb, replace(square, roll=0.4)), (rgb, replace(square, roll=-0.3))]
    return crops


def test_the_mesh_onnx_graph_has_a_batch_axis(mesh_onnx: Path) -> None:
    images = np.random.default_rng(2).uniform(0, 1, (5, fg.MESH_SIZE, fg.MESH_SIZE, 3)).astype(np.float32)
    run = onnx_runner(mesh_onnx)
    whole = run({c.IMAGE: images})
    rows = [run({c.IMAGE: images[i : i + 1]}) for i in range(5)]
    assert [o.shape[1:] for o in whole] == [t.dims for t in c.face_graph_specs()[c.FACE_MESH].outputs]
    assert parity_error(whole, [np.concatenate(parts) for parts in zip(*rows, strict=True)]) < 1e-5


def test_the_mesh_graph_refines_lips_eyes_and_irises_as_mediapipe_does() -> None:
    """``RefinedMesh`` against the raw model's seven outputs put together by hand (TensorsToFaceLandmarksWithAttention)."""
    graph = tg.read_tflite(tg.mediapipe_model(fg.MESH_TFLITE))
    refined = tg.RefinedMesh(graph).eval()
    image = torch.from_numpy(np.random.default_rng(3).uniform(0, 1, (2, fg.MESH_SIZE, fg.MESH_SIZE, 3)).astype(np.float32))
    with torch.no_grad():
        points, flag = refined(image)
        raw = [o.numpy() for o in refined.raw(image)]
    for row in range(2):
        expected = raw[0][row].reshape(-1, 3)[:, :2].copy()
        for indices, part in zip(tg.refinement_indices(graph), raw[1:4], strict=True):
            expected[indices] = part[row].reshape(-1, 2)
        expected = np.concatenate([expected, raw[4][row].reshape(-1, 2), raw[5][row].reshape(-1, 2)])
        np.testing.assert_array_equal(points[row].numpy(), expected)
    assert [len(i) for i in tg.refinement_indices(graph)] == [80, 71, 71]
    np.testing.assert_array_equal(flag.numpy().reshape(-1), raw[6].reshape(-1))


def test_the_onnx_mesh_places_mediapipes_478_points(graphs: lm.GraphModels) -> None:
    for rgb, roi in photo_rois():
        points, expected = graphs.mesh([(rgb, roi)])[0], MEDIAPIPE.mesh([(rgb, roi)])[0]
        assert expected is not None and points is not None and points.shape == (478, 2)
        assert np.abs(points - expected).max() < 1e-3 * roi.side  # a thousandth of the crop: 0.2 px at 192 px


def test_the_onnx_mesh_sees_no_face_where_mediapipe_sees_none(graphs: lm.GraphModels) -> None:
    rgb = photo_rois()[0][0]
    corner = fg.Roi(40, 40, 80)
    assert MEDIAPIPE.mesh([(rgb, corner)]) == [None]
    assert graphs.mesh([(rgb, corner)]) == [None]
