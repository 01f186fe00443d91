"""The ONNX BlazeFace and attention mesh (``sync_defense.export.tflite_graphs``) against MediaPipe's.

    python -m benchmarks.face_detector_onnx [--onnx build/onnx] [--every 25] [--frames 200]

1. Raw outputs: ONNX Runtime against TFLite's own interpreter (``ai_edge_litert`` or ``tflite_runtime``
   if importable; skipped otherwise) on the real frames' model inputs, at batch 1 and 32.
2. End to end on real frames (every ``--every``-th timeline frame of build/realval/*.mp4 and the
   training videos, at most ``--frames``, decoded at 640 px as the pipeline does): ONNX Runtime with
   the numpy pre/post-processing against ``landmarks.detect_faces``: the share of frames with as many
   faces, the IoU of matched boxes and the score differences.
3. CPU ms per frame, one thread, pre/post-processing included: MediaPipe's detector against
   ONNX Runtime at batch 1, 8 and 32. Medians of repeats on a shared machine: expect +-30%.
4. The mesh on each face MediaPipe found (the square ``landmarks.face_landmarks`` first meshes): the
   ONNX mesh with the numpy pre/post-processing against MediaPipe's, points and speed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sync_defense import contract as c
from sync_defense.export import tflite_graphs as tg
from sync_defense.export.parity import ONNX_TOLERANCE, check_parity, onnx_runner
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing import face_graphs as fg
from sync_defense.preprocessing import landmarks as lm
from sync_defense.preprocessing.decode import iter_timeline_frames, to_small

VIDEOS = (*sorted(Path("build/realdata/training/video").glob("*/*.mp4")), *sorted(Path("build/realval").glob("*.mp4")))
MIN_SCORE = 0.5  # detect_faces' default, the pipeline's
MEDIAPIPE = lm.MediaPipeModels()


def sampled_frames(videos: tuple[Path, ...], every: int, total: int) -> Iterator[np.ndarray]:
    """Every ``every``-th timeline frame at 640 px wide, an equal share of ``total`` from each video."""
    per_video = max(1, total // len(videos))
    for video in videos:
        taken = 0
        for k, frame in iter_timeline_frames(video.read_bytes(), DEFAULT_CONFIG):
            if k % every == 0:
                yield to_small(frame, 640)[0]
                taken += 1
                if taken == per_video:
                    break


def tflite_runner(path: Path) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]] | None:
    """TFLite's interpreter on ``path``, one row at a time (its graph has batch 1), or None if none is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    source, outputs = interpreter.get_input_details()[0]["index"], [o["index"] for o in interpreter.get_output_details()]

    def run_row(row: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(source, row[None])
        interpreter.invoke()
        return [interpreter.get_tensor(i)[0] for i in outputs]

    return lambda feed: [np.stack(out) for out in zip(*(run_row(row) for row in feed[c.IMAGE]), strict=True)]


def raw_parity(onnx: Path, frames: list[np.ndarray]) -> None:
    reference = tflite_runner(tg.mediapipe_model(fg.FULL_RANGE_TFLITE))
    if reference is None:
        print("raw parity: skipped, no TFLite interpreter (pip install ai-edge-litert)")
        return
    inputs = np.stack([fg.model_input(rgb, fg.FULL_RANGE.size)[0] for rgb in frames])
    feeds = [{c.IMAGE: inputs[:1]}, {c.IMAGE: inputs[:32]}]
    for report in check_parity(c.FACE_DETECTOR, onnx_runner(onnx), reference, feeds, "real", ONNX_TOLERANCE):
        print(report)


def score_behind(scored: list[tuple[float, np.ndarray]], box: np.ndarray) -> float:
    """The score of the raw detection a final box came from (NaN if none is the same box)."""
    return max((s for s, candidate in scored if lm.iou(candidate, box) > 0.99), default=np.nan)


def end_to_end(graphs: lm.GraphModels, frames: list[np.ndarray]) -> None:
    """``landmarks.detect_faces`` with the graphs against MediaPipe, frame by frame, with the scores behind each box."""
    same_count, ious, score_gaps, misses = 0, [], [], 0
    for rgb in frames:
        expected, scored_expected = lm.detect_faces(rgb, MIN_SCORE), MEDIAPIPE.detect([rgb], "full")[0]
        with lm.using(graphs):
            got = lm.detect_faces(rgb, MIN_SCORE)
        scored_got = graphs.detect([rgb], "full")[0]
        same_count += len(got) == len(expected)
        for box in expected:
            best_iou, match = max(((lm.iou(box, b), b) for b in got), default=(0.0, None), key=lambda m: m[0])
            misses += best_iou < 0.5
            ious.append(best_iou)
            if match is not None:
                score_gaps.append(abs(score_behind(scored_got, match) - score_behind(scored_expected, box)))
    ious, gaps = np.array(ious), np.array(score_gaps)
    print(f"end to end on {len(frames)} frames: same number of faces on {same_count / len(frames):.1%}; "
          f"{len(ious)} MediaPipe boxes, {misses} unmatched (IoU < 0.5)")
    if len(ious):
        print(f"  IoU of matched boxes: min {ious.min():.4f}  median {np.median(ious):.4f}  max {ious.max():.4f}"
              f"  (1 - IoU at most {1 - ious.min():.1e})")
        print(f"  |score difference|: median {np.nanmedian(gaps):.2e}  max {np.nanmax(gaps):.2e}")


def ms_per_item(run: Callable[[list], object], items: list, batch: int, repeats: int = 3) -> float:
    """Median over ``repeats`` passes of the time per item to run ``run`` on ``items`` in batches."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(items) - batch + 1, batch):
            run(items[i : i + batch])
        times.append((time.perf_counter() - start) / (len(items) // batch * batch))
    return 1000 * float(np.median(times))


def timings(detector: fg.FaceDetector, frames: list[np.ndarray]) -> None:
    mediapipe = ms_per_item(lambda batch: MEDIAPIPE.detect(batch, "full"), frames, 1)
    print(f"MediaPipe detector (XNNPACK 1 thread): {mediapipe:.2f} ms/frame")
    for batch in (1, 8, 32):
        print(f"ONNX Runtime 1 thread, batch {batch:2d}: {ms_per_item(detector.scored_boxes, frames, batch):.2f} ms/frame")


def mesh_parity_and_speed(mesh: fg.FaceMesh, frames: list[np.ndarray]) -> None:
    crops = []
    for rgb in frames:
        crops += [(rgb, lm.face_square(box)) for box in lm.detect_faces(rgb, MIN_SCORE)]
    expected = MEDIAPIPE.mesh(crops)
    got = mesh.landmarks(crops)
    same = sum((e is None) == (g is None) for e, g in zip(expected, got, strict=True))
    pairs = zip(crops, expected, got, strict=True)
    errors = [np.abs(g - e).max() / roi.side for (_, roi), e, g in pairs if e is not None and g is not None]
    print(f"mesh on {len(crops)} faces: same face/no-face answer on {same}; worst point error "
          f"{max(errors, default=np.nan):.1e} of the ROI side (median of per-face worst {np.median(errors):.1e})")
    mediapipe = ms_per_item(MEDIAPIPE.mesh, crops, 1)
    print(f"MediaPipe mesh (XNNPACK 1 thread): {mediapipe:.2f} ms/face")
    for batch in (1, 8, 32):
        print(f"ONNX Runtime mesh 1 thread, batch {batch:2d}: {ms_per_item(mesh.landmarks, crops, batch):.2f} ms/face")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"), help="folder of face_detector.onnx and face_mesh.onnx")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    detector_path, mesh_path = args.onnx / f"{c.FACE_DETECTOR}.onnx", args.onnx / f"{c.FACE_MESH}.onnx"
    if not detector_path.exists():
        tg.export_face_detector(args.onnx)
    if not mesh_path.exists():
        tg.export_face_mesh(args.onnx)
    frames = list(sampled_frames(VIDEOS, args.every, args.frames))
    print(f"{len(frames)} frames from {len(VIDEOS)} videos")
    raw_parity(detector_path, frames)
    run = fg.onnx_runner(args.onnx)
    end_to_end(lm.GraphModels(run), frames)
    timings(fg.FaceDetector(run), frames)
    mesh_parity_and_speed(fg.FaceMesh(run), frames)


if __name__ == "__main__":
    main()
