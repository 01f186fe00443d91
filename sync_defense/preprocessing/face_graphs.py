"""MediaPipe's face models as graphs any runtime runs in batches: their pre- and post-processing in numpy.

MediaPipe runs BlazeFace and the attention face mesh one frame per call inside its own graphs.
``sync_defense.export.tflite_graphs`` exports the same models as ONNX graphs with a batch axis,
which ONNX Runtime, TensorRT or Triton's dynamic batcher run; what MediaPipe's calculators do
around them is redone here, so that ``FaceDetector`` and ``FaceMesh`` answer like MediaPipe's
graphs for frames and ROIs batched together (parity: ``tests/test_tflite_graphs.py``,
``benchmarks/face_detector_onnx.py``). The server reaches the graphs through BLS, offline code
through ONNX Runtime in the process: a ``GraphRunner`` is the one thing that differs. Numpy and
OpenCV only: the serving image needs no torch for this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sync_defense.contract import (  # the graphs' names and tensors (``contract.face_graph_specs``)
    FACE_DETECTOR,
    FACE_FLAG,
    FACE_INPUT_PX,
    FACE_MESH,
    IMAGE,
    LANDMARKS,
    RAW_BOXES,
    RAW_SCORES,
)

# (graph, its input batch, the outputs wanted) -> those outputs; ONNX Runtime in the process or BLS in the server
GraphRunner = Callable[[str, np.ndarray, Sequence[str]], list[np.ndarray]]

FULL_RANGE_TFLITE = "face_detection/face_detection_full_range_sparse.tflite"

# ---------------------------------------------------------------------------------------- BlazeFace


@dataclass(frozen=True)
class DetectorConfig:
    """The constants of MediaPipe's face detection graphs (SsdAnchorsCalculator, TensorsToDetections,
    NonMaxSuppression options in ``face_detection_*_cpu.binarypb``)."""

    tflite: str
    size: int  # the square input, in pixels
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell) of the SSD feature maps, in output order
    score_clip: float = 100.0
    nms_iou: float = 0.3  # boxes overlapping the best one by more than this are averaged into it


FULL_RANGE = DetectorConfig(FULL_RANGE_TFLITE, FACE_INPUT_PX, ((4, 1),))


def ssd_anchors(config: DetectorConfig) -> np.ndarray:
    """Anchor centres ``(n, 2)`` (x, y) in [0, 1] of the input square: each cell's centre, once per
    anchor of the cell, row by row (fixed anchor size: every anchor is 1 x 1)."""
    centres = []
    for stride, per_cell in config.layers:
        cells = -(-config.size // stride)
        y, x = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        centres.append(np.repeat(np.stack([x.ravel(), y.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Letterbox:
    """Where the model's square sits in the frame: its centre and side, in frame pixels."""

    cx: float
    cy: float
    side: float

    @classmethod
    def of(cls, rgb: np.ndarray) -> Letterbox:
        height, width = rgb.shape[:2]
        return cls(width / 2, height / 2, float(max(width, height)))

    def matrix(self, size: int) -> np.ndarray:
        scale = size / self.side
        return np.array([[scale, 0, -scale * (self.cx - self.side / 2)], [0, scale, -scale * (self.cy - self.side / 2)], [0, 0, 1]])

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """``(n, 4)`` xmin, ymin, xmax, ymax in [0, 1] of the square -> x, y, w, h in frame pixels."""
        corners = boxes * self.side + np.tile([self.cx - self.side / 2, self.cy - self.side / 2], 2)
        return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


def model_input(rgb: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The frame as MediaPipe's ImageToTensorCalculator feeds the detector: letterboxed (zero border)
    into a ``size`` square by a bilinear perspective warp, values in [-1, 1]."""
    box = Letterbox.of(rgb)
    square = cv2.warpPerspective(rgb, box.matrix(size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return square.astype(np.float32) * np.float32(2 / 255) - np.float32(1), box


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, config: DetectorConfig, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's detections over ``floor``: scores ``(n,)`` and boxes ``(n, 4)`` xmin, ymin, xmax, ymax
    in [0, 1] of the square (TensorsToDetectionsCalculator: x, y, w, h offsets in input pixels)."""
    logits = np.clip(raw_scores[:, 0].astype(np.float64), -config.score_clip, config.score_clip)  # float32 exp(100) overflows
    scores = (1 / (1 + np.exp(-logits))).astype(np.float32)
    keep = scores >= floor
    raw, centres = raw_boxes[keep, :4] / config.size, anchors[keep]
    xy, half = raw[:, :2] + centres, raw[:, 2:] / 2
    boxes = np.concatenate([xy - half, xy + half], axis=1)
    valid = np.all(boxes[:, 2:] > boxes[:, :2], axis=1)
    return scores[keep][valid], boxes[valid]


def pairwise_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xmin, ymin, xmax, ymax box with each of ``boxes``."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, threshold: float) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's WEIGHTED non-max suppression: the best remaining box takes every box overlapping it
    by more than ``threshold`` (itself included) and becomes their score-weighted mean, keeping its score."""
    order = np.argsort(-scores, kind="stable")
    scores, boxes = scores[order], boxes[order]
    kept = []
    while len(scores):
        cluster = pairwise_iou(boxes[0], boxes) > threshold
        cluster[0] = True
        weights = scores[cluster][:, None]
        kept.append((float(scores[0]), (boxes[cluster] * weights).sum(axis=0) / weights.sum()))
        scores, boxes = scores[~cluster], boxes[~cluster]
    return kept


class FaceDetector:
    """BlazeFace over a batch of frames: MediaPipe's pre- and post-processing around the raw graph."""

    FLOOR = 0.3  # landmarks.DETECTOR_FLOOR: detections under it are dropped before the weighted NMS

    def __init__(self, run: GraphRunner, config: DetectorConfig = FULL_RANGE) -> None:
        self.run, self.config, self.anchors = run, config, ssd_anchors(config)

    def scored_boxes(self, frames: Sequence[np.ndarray]) -> list[list[tuple[float, np.ndarray]]]:
        """Every frame's faces as (score, x y w h box in frame pixels), scores over ``FLOOR``."""
        inputs, letterboxes = zip(*(model_input(rgb, self.config.size) for rgb in frames), strict=True)
        raw_boxes, raw_scores = self.run(FACE_DETECTOR, np.stack(inputs), (RAW_BOXES, RAW_SCORES))
        found = []
        for boxes, scores, letterbox in zip(raw_boxes, raw_scores, letterboxes, strict=True):
            clusters = weighted_nms(*decode(boxes, scores, self.anchors, self.config, self.FLOOR), self.config.nms_iou)
            found.append([(score, letterbox.to_frame(box[None])[0]) for score, box in clusters])
        return found


# ---------------------------------------------------------------------------------------- face mesh

MESH_TFLITE = "face_landmark/face_landmark_with_attention.tflite"
MESH_SIZE = FACE_INPUT_PX
MESH_PRESENCE = 0.5  # FaceLandmarkCpu's threshold on the sigmoid of the face flag

@dataclass(frozen=True)
class Roi:
    """The square of the frame the mesh model sees (MediaPipe's NormalizedRect, in pixels): centre,
    side, and roll in radians (clockwise on screen)."""

    cx: float
    cy: float
    side: float
    roll: float = 0.0


def mesh_input(rgb: np.ndarray, roi: Roi, size: int = MESH_SIZE) -> np.ndarray:
    """The ROI as FaceLandmarkCpu's ImageToTensorCalculator feeds the mesh: its rotated square warped
    to ``size`` px (bilinear, border replicated), values in [0, 1]."""
    corners = cv2.boxPoints(((roi.cx, roi.cy), (roi.side, roi.side), float(np.degrees(roi.roll))))
    square = np.float32([[0, size], [0, 0], [size, 0], [size, size]])  # boxPoints' order: bottom-left first
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), square)
    crop = cv2.warpPerspective(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32) * np.float32(1 / 255)


def project(points: np.ndarray, roi: Roi, size: int = MESH_SIZE) -> np.ndarray:
    """Model pixels -> frame pixels (LandmarkProjectionCalculator)."""
    cos, sin = np.cos(roi.roll), np.sin(roi.roll)
    centred = (points / size - 0.5) * roi.side
    return np.stack([cos * centred[:, 0] - sin * centred[:, 1] + roi.cx, sin * centred[:, 0] + cos * centred[:, 1] + roi.cy], axis=1)



class FaceMesh:
    """The attention face mesh over a batch of (frame, ROI) pairs: MediaPipe's pre- and
    post-processing around the graph (whose refinement of lips, eyes and irises is inside it)."""

    def __init__(self, run: GraphRunner) -> None:
        self.run = run

    def landmarks(self, crops: Sequence[tuple[np.ndarray, Roi]]) -> list[np.ndarray | None]:
        """Each ROI's 478 points ``(478, 2)`` in its frame's pixels, or None where the model sees no face
        (what ``landmarks.MediaPipeModels.mesh`` answers, one batch for all)."""
        points, flags = self.run(FACE_MESH, np.stack([mesh_input(rgb, roi) for rgb, roi in crops]), (LANDMARKS, FACE_FLAG))
        present = 1 / (1 + np.exp(-np.clip(flags.reshape(-1).astype(np.float64), -80, 80))) >= MESH_PRESENCE
        return [project(p, roi) if seen else None for p, (_, roi), seen in zip(points, crops, present, strict=True)]


# ---------------------------------------------------------------------------------------- in the process


def onnx_runner(onnx_dir: Path) -> GraphRunner:
    """Both graphs from ``onnx_dir`` in ONNX Runtime in this process, one thread each, as served on CPU."""
    from sync_defense.onnx_session import SINGLE_THREAD, onnx_session

    sessions = {name: onnx_session(onnx_dir / f"{name}.onnx", SINGLE_THREAD) for name in (FACE_DETECTOR, FACE_MESH)}
    return lambda graph, batch, outputs: sessions[graph].run(list(outputs), {IMAGE: batch})
