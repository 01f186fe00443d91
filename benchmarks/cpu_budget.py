"""Where one upload's CPU goes, part by part, against what a throughput target leaves per upload.

    python -m benchmarks.cpu_budget build/perf/videos/talking_640x480_10s.mp4 [--videos-per-s 2] [--cores 2]

A saturated node serves ``cores / CPU-seconds per upload`` uploads a second, so a target of
``--videos-per-s`` on ``--cores`` leaves ``cores / videos_per_s`` CPU-seconds per upload, whatever
the scheduling. Each part of the served path is timed alone, one call at a time (median CPU time,
``time.process_time``, of up to ``--samples`` calls on this video's own frames, faces and windows),
and multiplied by how many times the served path calls it for this video. The graphs are timed
in ONNX Runtime on one thread, as served on CPU, on the windows and pairs ``score`` sends them.

The sum of the parts is a floor: the server adds its steps' Python, the tensors' transfers and
contention between threads (``whole`` runs the served steps in this process; the load suite's
closed loop measures the server's process tree). Videos past the window cap are skimmed, and
their parts are counted differently: this benchmark takes videos that are decoded whole.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sync_defense import contract as c
from sync_defense.export.model_repository import CPU_GRAPH_PARAMETERS
from sync_defense.inference.lipsync import lip_sync
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG, landmarks, preprocess_video, warm_up
from sync_defense.preprocessing.crops import planned, window_frames
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb, to_small
from sync_defense.preprocessing.mouth import crop_mouth
from sync_defense.preprocessing.phones import measured_phones
from sync_defense.preprocessing.scan import read_audio, scan_faces
from sync_defense.preprocessing.texture import face_crops, texture
from sync_defense.serving.preprocess_step import preprocess
from sync_defense.serving.score_step import GraphRunner, score


@dataclass(frozen=True)
class Part:
    name: str
    calls: int
    cpu_per_call_s: float

    @property
    def cpu_s(self) -> float:
        return self.calls * self.cpu_per_call_s


def cpu_s(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def median_cpu_s(calls: Sequence[Callable[[], object]]) -> float:
    return statistics.median(cpu_s(call) for call in calls) if calls else 0.0


class TimedGraphs:
    """``score``'s graphs in ONNX Runtime as the CPU profile serves them, with the CPU each spent."""

    def __init__(self, onnx_dir: Path) -> None:
        self.sessions = {g: onnx_session(onnx_dir / f"{g}.onnx", CPU_GRAPH_PARAMETERS) for g in c.GRAPHS}
        self.cpu_s = dict.fromkeys(c.GRAPHS, 0.0)
        self.rows = dict.fromkeys(c.GRAPHS, 0)

    def runner(self) -> GraphRunner:
        async def run(graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
            start = time.process_time()
            result = self.sessions[graph].run([output], inputs)[0]
            self.cpu_s[graph] += time.process_time() - start
            self.rows[graph] += len(result)
            return result
        return run


def parts(data: bytes, onnx_dir: Path, samples: int = 50) -> tuple[list[Part], float]:
    """The served path's parts for one upload, and the CPU the served steps take whole in this process."""
    cfg = DEFAULT_CONFIG
    video = preprocess_video(data, cfg)
    if video.sampled:
        raise SystemExit("this video is longer than the window cap (skimmed): give one that is decoded whole")
    scan = scan_faces(data, cfg)  # the detections on each keyframe, which the prepared video does not keep
    tracks = video.tracks
    scored = [window_frames(video.window_start[video.window_track == t.track_id], cfg) for t in tracks]
    keyframes = list(range(0, scan.n_frames, cfg.faces.detect_every))
    detections = [(k, d.box) for k, found in scan.keyframe_faces.items() for d in found]

    frames = {k: frame for k, frame in iter_timeline_frames(data, cfg) if k < samples or k in scan.keyframe_faces}
    rgb = {k: to_rgb(frame) for k, frame in frames.items()}
    small = {k: to_small(frames[k], cfg.faces.detect_width) for k in scan.keyframe_faces}  # what pass 1 looks at
    sample_keys = sorted(frames)[:samples]
    looked_at = list(small)[:samples]
    faces = cfg.faces
    face_frames = [(k, t.track_id) for t, frames_of_face in zip(tracks, scored, strict=True) for k in frames_of_face if k in rgb][:samples]
    boxes = {t.track_id: t.held_boxes(scan.n_frames) for t in tracks}
    lips = {t.track_id: t.held_lips(scan.n_frames) for t in tracks}

    decode = cpu_s(lambda: sum(1 for _ in iter_timeline_frames(data, cfg)))
    audio = read_audio(data, scan.timeline, cfg)

    def mouth_texture(k: int, t: int) -> np.ndarray:
        """The texture crops and measures of one face on one frame, changes included (against itself)."""
        pair = face_crops(rgb[k], boxes[t][k], lips[t][k], cfg)
        return texture(*pair, pair)
    result = [
        Part("decoding (pass 1 and pass 2)", 2, decode),
        Part("BlazeFace, every 5th frame", len(keyframes), median_cpu_s(
            [lambda k=k: landmarks.detect_faces(small[k][0], faces.min_score, faces.detector, faces.tiles) for k in looked_at])),
        Part("face mesh on the faces found (lips for the crop)", len(detections), median_cpu_s(
            [lambda k=k, b=b: landmarks.face_landmarks(small[k][0], b / small[k][1]) for k, b in detections[:samples]])),
        Part("RGB of each scored frame", len(np.unique(np.concatenate(scored))) if scored else 0,
             median_cpu_s([lambda f=frames[k]: to_rgb(f) for k in sample_keys])),
        Part("small RGB of each 5th frame (detection)", len(keyframes),
             median_cpu_s([lambda f=frames[k]: to_small(f, faces.detect_width) for k in looked_at])),
        Part("face mesh on every scored frame (lip test)", sum(map(len, scored)), median_cpu_s(
            [lambda k=k, t=t: landmarks.face_landmarks(rgb[k], boxes[t][k]) for k, t in face_frames])),
        Part("mouth crop of every scored frame", sum(map(len, scored)), median_cpu_s(
            [lambda k=k, t=t: crop_mouth(rgb[k], lips[t][k], cfg) for k, t in face_frames])),
        Part("mouth texture of every scored frame (blur, colour, flicker)", sum(map(len, scored)),
             median_cpu_s([lambda k=k, t=t: mouth_texture(k, t) for k, t in face_frames])),
        Part("audio: decoding, VAD, log-mel", 1, cpu_s(lambda: read_audio(data, scan.timeline, cfg))),
        Part("phones of the measured speech (pocketsphinx; the server's phones model)", 1,
             cpu_s(lambda: measured_phones(audio.samples, audio.speech, planned(scored, scan.n_frames), cfg).result())),
        Part("lip-sync test", len(video.apertures), median_cpu_s([lambda a=a: lip_sync(a, video.loudness) for a in video.apertures])),
    ]
    graphs = TimedGraphs(onnx_dir)
    start = time.process_time()
    tensors = preprocess(np.array([data], dtype=object))
    asyncio.run(score(tensors, graphs.runner()))
    whole = time.process_time() - start
    result += [Part(f"{g} ({graphs.rows[g]} rows)", 1, graphs.cpu_s[g]) for g in c.GRAPHS]
    return result, whole


def table(rows: list[Part], whole: float, budget: float) -> str:
    total = sum(p.cpu_s for p in rows)
    lines = ["| part | calls | CPU ms per call | CPU s | share of the budget |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {p.name} | {p.calls} | {1000 * p.cpu_per_call_s:.2f} | {p.cpu_s:.3f} | {p.cpu_s / budget:.0%} |" for p in rows]
    lines += [f"| **sum of the parts** | | | **{total:.3f}** | **{total / budget:.0%}** |",
              f"| whole: the served steps in this process | | | {whole:.3f} | {whole / budget:.0%} |",
              f"| budget | | | {budget:.3f} | 100% |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"), help="the exported graphs (make repository)")
    parser.add_argument("--videos-per-s", type=float, default=2.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    warm_up()
    rows, whole = parts(args.video.read_bytes(), args.onnx, args.samples)
    budget = args.cores / args.videos_per_s
    print(f"{args.video.name}: {args.videos_per_s:g} videos/s on {args.cores} cores leaves {budget:.2f} CPU-s per upload")
    print(table(rows, whole, budget))


if __name__ == "__main__":
    main()
