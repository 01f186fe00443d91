"""Faces and lip-aligned mouths from MediaPipe's models, the ones shipped inside its wheel.

BlazeFace finds faces in a few milliseconds where the Haar cascade takes 55-160 ms, and the 478-point
face mesh (the attention model, with refined lips) places the mouth on the lips themselves instead of
at a fixed place in a face box. The mouth crop is aligned the way lip-reading models align theirs:
centred on the lips, scaled by the mouth width and rotated so the lip corners are level, so head roll
and distance to the camera do not change what the model sees.

The models run where ``use`` says: MediaPipe's own graphs in this process (``MediaPipeModels``, the
default and the cheapest on CPU), or the same weights as batched graphs behind a runner
(``GraphModels``: Triton through BLS on a GPU node, ONNX Runtime offline), with the same answers.
Nothing is downloaded: the graphs read the ``.tflite`` files inside the installed ``mediapipe``
package (0.10.21; it needs protobuf < 5). Each graph is built on first use in a process (~0.5 s
with the import) and runs on one thread (the server runs several preprocess processes on few
cores); build them after any fork, never before. A graph is not thread-safe, so each is lent to one
caller at a time (``_GraphPool``); each graph has ``MODEL_THREADS`` copies (the mesh 23 MiB each),
which callers keep busy through ``in_background``: MediaPipe releases the GIL while it computes.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any, Protocol

import cv2
import numpy as np

from .face_graphs import FaceDetector, FaceMesh, GraphRunner, Roi

Box = np.ndarray  # (4,) float: x, y, w, h in image pixels
Transform = tuple[float, float, float, float]  # mouth centre x, y, crop side in pixels, roll in radians

DETECTOR_GRAPHS = {
    # 128-px input: faces larger than about a fifth of the frame's longer side (webcam, talking head).
    "short": "mediapipe/modules/face_detection/face_detection_short_range_cpu.binarypb",
    # 192-px input, sparse model: faces down to about 5 m from the camera, at ~3x the cost.
    "full": "mediapipe/modules/face_detection/face_detection_full_range_cpu.binarypb",
}
DETECTOR_FLOOR = 0.3  # the graphs keep detections above this score; ``detect_faces`` filters further

# The mesh half of MediaPipe's FaceMesh, fed a region of interest instead of running its own detector.
# WITH_ATTENTION selects the model with refined lips and irises (478 points).
LANDMARK_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""
ROI_SCALE = 1.5  # the mesh model was trained on a square 1.5x the face (MediaPipe's detection-to-ROI rule)
REROTATE_RAD = math.radians(10)  # a face rolled more than this is meshed again on an ROI rotated with it

# Landmark indices in the 478-point mesh (the subject's right is image left on a frontal face).
LIP_CORNERS = (61, 291)
INNER_LIP_MIDDLE = (13, 14)  # inner edge of the upper and lower lip on the centre line
OUTER_LIP_RING = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
EYE_OUTER_CORNERS = (33, 263)
OUTER_LIP_MIDDLE = (0, 17)  # outer edge of the upper and lower lip on the centre line

# Crop side over mouth width (corner distance). On real speakers, in mouth widths from the lip centre:
# nostrils' lower edge ~0.55 above (up to 0.9 when the lips round and the width shrinks), chin top
# ~0.5 below (up to 0.8 with the jaw open), chin tip ~1.0 below. One width each way holds the mouth,
# nostrils and chin top on every frame of the real clips in benchmarks/landmark_speed.py.
MOUTH_CROP_FACTOR = 2.0

# Narrowest face (detector box width, pixels) whose mesh still places the mouth within ~0.1 mouth
# widths and its aperture within ~0.03 of the full-resolution mesh; the mouth is then ~10 px wide.
# In a 640x480 frame the full-range detector finds faces from ~60 px (some down to 40), with
# ``tiles=2`` from 25 px and with ``tiles=3`` from 20 px; the short-range one from ~80 px.
MIN_FACE_WIDTH_PX = 30


MODEL_THREADS = 2  # MediaPipe: copies of each graph and worker threads per process (one request's faces on both cores)
GRAPH_CHUNK = 8  # served graphs: frames per call, so that each upload's calls arrive batched (see ``GraphModels``)


class FaceModels(Protocol):
    """Where BlazeFace and the face mesh run: MediaPipe in this process, or their graphs (``GraphModels``)."""

    workers: int  # worker threads that keep the models busy (``in_background``)
    chunk: int  # frames a caller puts in one call (``background.InBackground``)
    frames_in_flight: int  # frames a caller lets wait for the models: bounds the pixels held

    def detect(self, images: Sequence[np.ndarray], model: str) -> list[list[tuple[float, Box]]]:
        """Each image's faces over ``DETECTOR_FLOOR`` as (score, box), in that image's pixels."""

    def mesh(self, crops: Sequence[tuple[np.ndarray, Roi]], refined_lips: bool = True) -> list[np.ndarray | None]:
        """Each square ROI's 478 landmarks ``(x, y)`` in its frame's pixels (468 without ``refined_lips``), or None."""

    def warm_up(self, detector: str) -> None:
        """Load what the first request would otherwise wait for."""


class _GraphPool:
    """Up to ``size`` copies of one graph, each lent to one caller at a time (a graph is not thread-safe)."""

    def __init__(self, build: Callable[[], Any], size: int) -> None:
        self._build, self._size, self._made = build, size, 0
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._lock = threading.Lock()

    @contextmanager
    def lend(self) -> Iterator[Any]:
        try:
            graph = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                make = self._made < self._size
                self._made += make
            graph = self._build() if make else self._free.get()
        try:
            yield graph
        finally:
            self._free.put(graph)

    def fill(self) -> None:
        """Build every copy now (a server's warm-up), not on the first requests that need them."""
        with self._lock:
            missing, self._made = self._size - self._made, self._size
        for _ in range(missing):
            self._free.put(self._build())


class MediaPipeModels:
    """MediaPipe's own graphs in this process, ``MODEL_THREADS`` copies each: the cheapest on a CPU node. Frame by
    frame: a graph takes one image per run, and the frames of an upload keep both copies busy."""

    workers, chunk, frames_in_flight = MODEL_THREADS, 1, 8

    def detect(self, images: Sequence[np.ndarray], model: str) -> list[list[tuple[float, Box]]]:
        return [self._detect(np.ascontiguousarray(rgb), model) for rgb in images]

    @staticmethod
    def _detect(rgb: np.ndarray, model: str) -> list[tuple[float, Box]]:
        height, width = rgb.shape[:2]
        with _graphs(DETECTOR_GRAPHS[model]).lend() as graph:
            found = graph.process(rgb).detections or []
        scored = []
        for detection in found:
            rel = detection.location_data.relative_bounding_box
            box = np.array([rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height])
            scored.append((float(detection.score[0]), box))
        return scored

    def mesh(self, crops: Sequence[tuple[np.ndarray, Roi]], refined_lips: bool = True) -> list[np.ndarray | None]:
        return [self._mesh(np.ascontiguousarray(rgb), roi, refined_lips) for rgb, roi in crops]

    @staticmethod
    def _mesh(rgb: np.ndarray, roi: Roi, refined_lips: bool) -> np.ndarray | None:
        from mediapipe.framework.formats import rect_pb2

        height, width = rgb.shape[:2]
        rect = rect_pb2.NormalizedRect(x_center=roi.cx / width, y_center=roi.cy / height, width=roi.side / width,
                                       height=roi.side / height, rotation=roi.roll)
        with _graphs(LANDMARK_GRAPH, with_attention=refined_lips).lend() as graph:
            found = graph.process({"image": rgb, "roi": rect}).landmarks
        if found is None:
            return None
        return np.array([(p.x * width, p.y * height) for p in found.landmark])

    def warm_up(self, detector: str) -> None:
        _graphs(LANDMARK_GRAPH, with_attention=True).fill()
        _graphs(DETECTOR_GRAPHS[detector]).fill()


class GraphModels:
    """The same models as batched graphs (``face_graphs``) behind any runner: Triton through BLS in the
    server, ONNX Runtime offline. A call carries ``GRAPH_CHUNK`` frames (their faces, for the mesh) as one
    request, two calls are in flight per upload, and Triton's dynamic batcher merges them with other
    uploads' (on a GPU node the models run there, not on the cores)."""

    workers, chunk, frames_in_flight = 2, GRAPH_CHUNK, 2 * GRAPH_CHUNK

    def __init__(self, run: GraphRunner) -> None:
        self._detector, self._mesh = FaceDetector(run), FaceMesh(run)

    def detect(self, images: Sequence[np.ndarray], model: str) -> list[list[tuple[float, Box]]]:
        if model != "full":
            raise ValueError(f"the served face detector is BlazeFace full range, not {model!r}")
        return self._detector.scored_boxes(images)

    def mesh(self, crops: Sequence[tuple[np.ndarray, Roi]], refined_lips: bool = True) -> list[np.ndarray | None]:
        if not refined_lips:
            raise ValueError("the served face mesh is the attention mesh (refined lips)")
        return self._mesh.landmarks(crops) if crops else []

    def warm_up(self, detector: str) -> None:
        """Nothing to load here: the graphs' own servers warm them up."""


_models: FaceModels = MediaPipeModels()


def models() -> FaceModels:
    """The face models this process runs (``use``)."""
    return _models


def use(models: FaceModels) -> None:
    """Run the face models through ``models`` in this process from now on (the server does it once, at start)."""
    global _models
    _models = models


@contextmanager
def using(models: FaceModels) -> Iterator[None]:
    """``use(models)`` inside the block only (parity checks run both kinds in one process)."""
    previous = _models
    use(models)
    try:
        yield
    finally:
        use(previous)


@cache
def _graphs(config: str, with_attention: bool = False) -> _GraphPool:
    """The process's ``MODEL_THREADS`` copies of a graph, each built on first use."""
    return _GraphPool(lambda: _graph(config, with_attention), MODEL_THREADS)


def _graph(config: str, with_attention: bool = False) -> Any:
    """A MediaPipe graph from a graph file in the package or a text config.

    Subgraphs are expanded so that every TFLite node can be pinned to one XNNPACK thread and the
    scheduler to one worker thread (it otherwise starts one per core for each graph).
    """
    import mediapipe  # imported here: a heavy import (matplotlib too) only when a graph is first needed
    from mediapipe.framework import thread_pool_executor_pb2  # noqa: F401  (registers the options parsed below)
    from mediapipe.python._framework_bindings import resource_util, validated_graph_config
    from mediapipe.python.solution_base import SolutionBase

    package_root = os.path.dirname(os.path.dirname(mediapipe.__file__))
    resource_util.set_resource_dir(package_root)
    validated = validated_graph_config.ValidatedGraphConfig()
    if config.endswith(".binarypb"):
        validated.initialize(binary_graph_path=os.path.join(package_root, config))
    else:
        validated.initialize(graph_config=config)
    text, n_models = re.subn(r"xnnpack \{\s*\}", "xnnpack { num_threads: 1 }", validated.text_config)
    text, n_executors = re.subn(
        r"executor \{\s*\}",
        'executor { type: "ThreadPoolExecutor" options { [mediapipe.ThreadPoolExecutorOptions.ext] { num_threads: 1 } } }',
        text,
    )
    if not n_models or n_executors != 1:
        raise RuntimeError("unexpected MediaPipe graph layout (a mediapipe other than 0.10.21?)")
    text = re.sub(r"min_score_thresh: [\d.]+", f"min_score_thresh: {DETECTOR_FLOOR}", text)
    side_inputs = {"with_attention": True} if with_attention else None
    return SolutionBase(graph_config=text, side_inputs=side_inputs)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def detect_faces(rgb: np.ndarray, min_score: float = 0.5, model: str = "full", tiles: int = 1) -> list[Box]:
    """Face boxes ``(x, y, w, h)`` in ``rgb``'s pixels, largest first.

    The model sees the frame letterboxed to 128 (short) or 192 (full) px, so downscaling ``rgb``
    first changes little, and faces under ~60 px in a 640-px frame are missed. ``tiles=n`` also runs it
    on n x n tiles overlapping by half (each 2/(n+1) of the frame, so n=2 sees faces 1.5x larger,
    n=3 2x) and merges the boxes, at n*n + 1 times the cost. The boxes are square, 0.86-1.11x the
    Haar cascade's width on the test photos, with the mouth at ~0.75 of their height (Haar: ~0.8).
    """
    return detect_faces_batch([rgb], min_score, model, tiles)[0]


def _tiles(rgb: np.ndarray, tiles: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The frame and, for ``tiles`` > 1, its n x n tiles overlapping by half, each with its offset."""
    height, width = rgb.shape[:2]
    images = [(rgb, (0, 0))]
    if tiles > 1:
        th, tw = round(2 * height / (tiles + 1)), round(2 * width / (tiles + 1))
        for y in np.linspace(0, height - th, tiles).round().astype(int):
            for x in np.linspace(0, width - tw, tiles).round().astype(int):
                images.append((rgb[y : y + th, x : x + tw], (x, y)))
    return images


def detect_faces_batch(frames: Sequence[np.ndarray], min_score: float = 0.5, model: str = "full", tiles: int = 1) -> list[list[Box]]:
    """``detect_faces`` of each frame, every frame (and its tiles) in one call of the detector."""
    parts = [_tiles(rgb, tiles) for rgb in frames]
    found = iter(_models.detect([image for part in parts for image, _ in part], model))
    answers = []
    for part in parts:
        scored = [(s, b + (x, y, 0, 0)) for _, (x, y) in part for s, b in next(found) if s >= min_score]
        kept: list[Box] = []
        for _, box in sorted(scored, key=lambda sb: -sb[0]):  # the best-scored of overlapping boxes wins
            if all(iou(box, k) < 0.3 for k in kept):
                kept.append(box)
        answers.append(sorted(kept, key=lambda b: -b[2] * b[3]))
    return answers


def _roll(points: np.ndarray, pair: tuple[int, int]) -> float:
    """Angle of the line from ``points[pair[0]]`` to ``points[pair[1]]``: 0 when level, > 0 when it
    descends to the right (clockwise on screen; y points down)."""
    dx, dy = points[pair[1]] - points[pair[0]]
    return math.atan2(dy, dx)


def face_landmarks(rgb: np.ndarray, box: Box, refined_lips: bool = True) -> np.ndarray | None:
    """The 478-point face mesh ``(478, 2)`` in image pixels for the face in ``box``, or None if the
    model finds no face there. ``refined_lips=False`` runs the plain 468-point model instead (20-30%
    cheaper, but its lips change the lip test's answer on a third of the real faces:
    ``benchmarks/lip_mesh_choice.py``); the served path never does.

    The model runs on a square 1.5x the box. A face rolled by more than 10 degrees is meshed a
    second time on a square rotated with it, around the first mesh's extent taken level, since the
    model was trained on upright faces; rolls up to ~40 degrees are handled (the second pass halves
    the lips' error at 15 degrees and divides it by 4-6 at 30).
    """
    return face_landmarks_batch([(rgb, box)], refined_lips)[0]


def face_square(box: Box) -> Roi:
    """The square the mesh first looks at for the face in ``box``: on its centre, ``ROI_SCALE`` times its side."""
    x, y, w, h = (float(v) for v in box)
    return Roi(x + w / 2, y + h / 2, ROI_SCALE * max(w, h))


def _upright_roi(points: np.ndarray, roll: float) -> Roi:
    """The square around a rolled face's mesh taken level, rotated with the face."""
    rotation = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    upright = points @ rotation  # the mesh turned level, where its bounding box is the face's
    low, high = upright.min(axis=0), upright.max(axis=0)
    (cx, cy), side = rotation @ ((low + high) / 2), ROI_SCALE * float(np.max(high - low))
    return Roi(float(cx), float(cy), side, roll)


def face_landmarks_batch(faces: Sequence[tuple[np.ndarray, Box]], refined_lips: bool = True) -> list[np.ndarray | None]:
    """``face_landmarks`` of each (frame, box): the first meshes in one call, the rolled faces' second in another."""
    frames = [np.ascontiguousarray(rgb) for rgb, _ in faces]
    points = _models.mesh([(rgb, face_square(box)) for rgb, (_, box) in zip(frames, faces, strict=True)], refined_lips)
    rolls = {i: _roll(p, EYE_OUTER_CORNERS) for i, p in enumerate(points) if p is not None}
    again = [i for i, roll in rolls.items() if abs(roll) > REROTATE_RAD]
    redone = _models.mesh([(frames[i], _upright_roi(points[i], rolls[i])) for i in again], refined_lips)
    for i, p in zip(again, redone, strict=True):
        points[i] = p
    return points


def warm_up(detector: str = "full") -> None:
    """Load the face models and start their worker threads."""
    _models.warm_up(detector)
    _workers(_models.workers)


@cache
def _workers(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="face-models")


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` — a call of the face models — on a worker thread, while the caller decodes the next frames."""
    return _workers(_models.workers).submit(fn, *args)


def lip_geometry(landmarks: np.ndarray) -> np.ndarray:
    """``(cx, cy, width, roll)``: centre of the outer lip ring, corner-to-corner width and the angle
    of the corner line (radians, > 0 clockwise)."""
    cx, cy = landmarks[list(OUTER_LIP_RING)].mean(axis=0)
    width = float(np.linalg.norm(landmarks[LIP_CORNERS[1]] - landmarks[LIP_CORNERS[0]]))
    return np.array([cx, cy, width, _roll(landmarks, LIP_CORNERS)])


def mouth_transform(landmarks: np.ndarray) -> Transform:
    """Lip-aligned mouth square ``(cx, cy, side, roll)``: ``lip_geometry`` with a side of
    ``MOUTH_CROP_FACTOR`` mouth widths."""
    cx, cy, width, roll = (float(v) for v in lip_geometry(landmarks))
    return cx, cy, MOUTH_CROP_FACTOR * width, roll


def crop_aligned(rgb: np.ndarray, transform: Transform, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 crop of the mouth square, rotated level, in one affine warp.

    Parts outside the frame repeat its edge pixels, as in ``mouth.crop_mouth``. A square larger
    than ``size`` is warped at its own resolution or finer (a whole multiple of ``size``) and
    area-averaged down: a bilinear warp alone skips pixels and aliases, which shimmers from frame
    to frame as the head moves.
    """
    cx, cy, side, roll = transform
    factor = max(1, math.ceil(side / size))
    out = factor * size
    scale = out / max(side, 1.0)
    cos, sin = scale * math.cos(roll), scale * math.sin(roll)
    centre = (out - 1) / 2
    matrix = np.array([
        [cos, sin, centre - cos * cx - sin * cy],
        [-sin, cos, centre + sin * cx - cos * cy],
    ])
    crop = cv2.warpAffine(rgb, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) if factor > 1 else crop


# The columns of ``lip_shape``: the opening the lip test reads, then the shape speech gives the lips
# beyond it (spreading and rounding change the width, protrusion the lips' visible height), each over
# the eye-corner distance so that distance to the camera cancels.
LIP_SHAPE = ("aperture", "width", "outer_height", "upper_lip", "lower_lip")


def lip_shape(landmarks: np.ndarray) -> np.ndarray:
    """``(len(LIP_SHAPE),)`` float32: ``lip_aperture`` and the lips' width, outer height and the two lips'
    thicknesses on the centre line, over the eye-corner distance."""
    def gap(a: int, b: int) -> float:
        return float(np.linalg.norm(landmarks[b] - landmarks[a]))

    eyes = max(gap(*EYE_OUTER_CORNERS), 1e-6)
    (top, bottom), (inner_top, inner_bottom) = OUTER_LIP_MIDDLE, INNER_LIP_MIDDLE
    return np.array([lip_aperture(landmarks), gap(*LIP_CORNERS) / eyes, gap(top, bottom) / eyes,
                     gap(top, inner_top) / eyes, gap(inner_bottom, bottom) / eyes], np.float32)


def lip_aperture(landmarks: np.ndarray) -> float:
    """Inner-lip opening over mouth width: ~0 closed, 0.3-0.5 wide open. Training-free and scale-free,
    it follows speech energy on genuine recordings (a sync signal without a learned model)."""
    opening = np.linalg.norm(landmarks[INNER_LIP_MIDDLE[1]] - landmarks[INNER_LIP_MIDDLE[0]])
    width = np.linalg.norm(landmarks[LIP_CORNERS[1]] - landmarks[LIP_CORNERS[0]])
    return float(opening / max(width, 1e-6))
