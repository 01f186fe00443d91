"""Could the lip test read a cheaper face mesh? Its answers on every real validation face, both ways.

    python -m sync_defense.offline.realdata.build --out build/realval
    python -m benchmarks.lip_mesh_choice [--manifest build/realval/manifest.json]

The lip test reads the inner-lip opening from MediaPipe's face mesh on every scored frame, the
largest CPU cost of an upload (``benchmarks/cpu_budget.py``). The served mesh is the 478-point
model with refined lips; the plain 468-point model beside it in the wheel costs less. Here every
validation case is preprocessed as served, then again with the plain model (``refined_lips=False``
wherever the pipeline meshes a face), and each face's lip-test answer (verdict and lag) is compared,
with the correlation of the two openings frame by frame and the CPU time of one mesh call of each
model on the first case's frames (median of ``--calls``). A cheaper mesh is only worth having if the
answers stay put: the decision trusts the learned model only where the lips agree with it.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from pathlib import Path
from unittest import mock

import numpy as np

from benchmarks.cpu_budget import cpu_s
from benchmarks.lip_robustness import agreement
from sync_defense.inference.lipsync import LipSync, lip_sync
from sync_defense.preprocessing import DEFAULT_CONFIG, landmarks, preprocess_video, warm_up
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb


def answers(data: bytes) -> list[tuple[LipSync, np.ndarray]]:
    """Each face's lip test and per-frame opening, preprocessed as served."""
    video = preprocess_video(data)
    return [(lip_sync(aperture, video.loudness), aperture) for aperture in video.apertures]


def plain_mesh() -> mock._patch:
    """The pipeline's meshes from the plain 468-point model while the patch is active."""
    return mock.patch.object(landmarks, "face_landmarks_batch", functools.partial(landmarks.face_landmarks_batch, refined_lips=False))


def mesh_ms(data: bytes, calls: int) -> dict[str, float]:
    """Median CPU milliseconds of one mesh call, refined lips and plain, on the video's first frames
    (the two models called in turn on each frame, so a drift of the machine's speed hits both alike)."""
    frames = [to_rgb(frame) for k, frame in iter_timeline_frames(data, DEFAULT_CONFIG) if k < calls]
    box = landmarks.detect_faces(frames[0])[0]
    cpu: dict[str, list[float]] = {"refined_lips": [], "plain": []}
    for rgb in frames + frames:  # the first pass also builds the plain model's graphs
        for name in cpu:
            mesh = functools.partial(landmarks.face_landmarks, rgb, box, refined_lips=name == "refined_lips")
            cpu[name].append(cpu_s(mesh))
    return {name: round(1000 * statistics.median(times[len(frames):]), 2) for name, times in cpu.items()}


def compare(manifest: Path) -> tuple[list[dict], dict]:
    cases = json.loads(manifest.read_text())["cases"]
    rows = []
    for case in cases:
        data = (manifest.parent / case["file"]).read_bytes()
        served = answers(data)
        with plain_mesh():
            plain = answers(data)
        for face, ((a, aperture_a), (b, aperture_b)) in enumerate(zip(served, plain, strict=True)):
            row = {"case": case["case"], "face": face, "served": f"{a.verdict} {a.lag_frames}", "plain": f"{b.verdict} {b.lag_frames}",
                   "changed": (a.verdict, a.lag_frames) != (b.verdict, b.lag_frames),
                   "gained_evidence": a.verdict == "no_evidence" and b.verdict != "no_evidence",
                   "opening_r": agreement(aperture_a, aperture_b)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"faces": len(rows), "changed": sum(r["changed"] for r in rows),
               "gained_evidence": sum(r["gained_evidence"] for r in rows),
               "opening_r_10_50_90": [round(float(q), 3) for q in np.nanquantile([r["opening_r"] for r in rows], [0.1, 0.5, 0.9])]}
    return rows, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("build/realval/manifest.json"))
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--timing-video", type=Path, help="the video the mesh calls are timed on (default: the first case)")
    args = parser.parse_args()
    warm_up()
    rows, summary = compare(args.manifest)
    timing_video = args.timing_video or args.manifest.parent / json.loads(args.manifest.read_text())["cases"][0]["file"]
    summary["mesh_cpu_ms"] = mesh_ms(timing_video.read_bytes(), args.calls)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
