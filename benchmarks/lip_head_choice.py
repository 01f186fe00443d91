"""Could the lip test read the lip-geometry head instead of the face mesh? Its answers on every validation face, both ways.

    python -m sync_defense.offline.training.lip_head --out checkpoints/lip_head.pt   # writes build/onnx/lip_head.onnx
    python -m benchmarks.lip_head_choice [--manifest build/realval/manifest.json build/forgeries/validation/manifest.json]

The served lip test reads the refined face mesh's inner-lip opening on every scored frame, the
largest CPU cost of an upload (``benchmarks/cpu_budget.py``). The head (``model.lip_head``) reads
the same opening from the mouth crop the pipeline already makes. Here every case is preprocessed
as served once; the head is run (ONNX Runtime, one thread, as a served CPU graph) on the crops of
every scored frame, which are the windows' frames, and each face's lip-test answer (verdict and
lag) from the mesh's opening is compared with the answer from the head's. The head answers on
every cropped frame, the mesh only where it found the face: that is what replacing it would do.
Also the two openings frame by frame (correlation and mean absolute difference over the frames
both measured), whether each answer finds a shifted case's known offset, and the CPU time of the
head per crop (batched) against the mesh per frame (``lip_mesh_choice.mesh_ms``, median of ``--calls``).
As ``benchmarks/lip_mesh_choice.py``: a cheaper opening is only worth having if the answers stay put.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.cpu_budget import cpu_s
from benchmarks.lip_mesh_choice import mesh_ms
from benchmarks.lip_robustness import agreement
from sync_defense.inference.lipsync import DEFAULT_LIP_SYNC, LipSync, lip_sync
from sync_defense.model.lip_head import LIP_CROPS
from sync_defense.onnx_session import SINGLE_THREAD, onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video, warm_up
from sync_defense.preprocessing.pipeline import PreparedVideo

MANIFESTS = (Path("build/realval/manifest.json"), Path("build/forgeries/validation/manifest.json"))
BATCH = 64  # crops per head call in the timing


class Head:
    """The exported head in ONNX Runtime with the served CPU graphs' settings (one thread, no spinning)."""

    def __init__(self, path: Path) -> None:
        self.session = onnx_session(path, SINGLE_THREAD)

    def __call__(self, crops: np.ndarray, batch: int = BATCH) -> np.ndarray:
        rows = range(0, len(crops), batch)
        out = [self.session.run(None, {LIP_CROPS: np.ascontiguousarray(crops[i : i + batch])})[0][:, 0] for i in rows]
        return np.concatenate([np.zeros(0, np.float32), *out])


def scored_crops(video: PreparedVideo) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per face (in ``video.apertures``' order), the timeline frames it was cropped on and their crops: the
    windows' frames (a frame in two windows of a face has the same crop in both; it is kept once)."""
    t = DEFAULT_CONFIG.timeline.clip_frames
    out = []
    for track in video.tracks:
        rows = np.flatnonzero(video.window_track == track.track_id)
        frames = (video.window_start[rows, None] + np.arange(t)).reshape(-1)
        crops = video.crops[rows].reshape(-1, *video.crops.shape[2:])
        frames, first = np.unique(frames, return_index=True)
        out.append((frames, crops[first]))
    return out


def mae(a: np.ndarray, b: np.ndarray) -> float:
    both = ~np.isnan(a) & ~np.isnan(b)
    return round(float(np.abs(a[both] - b[both]).mean()), 4) if both.any() else float("nan")


def finds_offset(answer: LipSync, expected_frames: float | None) -> bool | None:
    """For a case shifted by more than the in-sync tolerance: did the test find that lag? (None otherwise.)"""
    if expected_frames is None or abs(expected_frames) <= DEFAULT_LIP_SYNC.in_sync_frames:
        return None
    return answer.verdict == "shifted" and abs(answer.lag_frames - expected_frames) <= DEFAULT_LIP_SYNC.in_sync_frames


@dataclass(frozen=True)
class Served:
    """What the comparison needs of one case preprocessed as served: the loudness and, per face, the mesh's
    opening on the timeline and the scored frames with their crops."""

    loudness: np.ndarray
    apertures: list[np.ndarray]
    scored: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, data: bytes, cache: Path | None = None) -> Served:
        """Preprocess ``data`` as served, or read the case from ``cache`` (a ``.npz``) when it is there."""
        if cache is not None and cache.exists():
            with np.load(cache) as saved:
                n = int(saved["faces"])
                return cls(saved["loudness"], [saved[f"aperture_{i}"] for i in range(n)],
                           [(saved[f"frames_{i}"], saved[f"crops_{i}"]) for i in range(n)])
        video = preprocess_video(data)
        served = cls(video.loudness, list(video.apertures), scored_crops(video))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"faces": np.array(len(served.apertures)), "loudness": served.loudness}
            for i, (aperture, (frames, crops)) in enumerate(zip(served.apertures, served.scored, strict=True)):
                arrays |= {f"aperture_{i}": aperture, f"frames_{i}": frames, f"crops_{i}": crops}
            np.savez(cache, **arrays)
        return served


def compare(manifest: Path, head: Head, cache: Path | None = None) -> tuple[list[dict], dict]:
    rows = []
    for case in json.loads(manifest.read_text())["cases"]:
        where = None if cache is None else cache / manifest.parent.name / f"{case['case']}.npz"  # realval, validation
        served = Served.of((manifest.parent / case["file"]).read_bytes(), where)
        expected = case.get("expected_offset_frames")  # None: a dub or a swap, no offset to find
        for face, (mesh, (frames, crops)) in enumerate(zip(served.apertures, served.scored, strict=True)):
            learned = np.full(len(mesh), np.nan, np.float32)
            learned[frames] = head(crops)
            a, b = lip_sync(mesh, served.loudness), lip_sync(learned, served.loudness)
            row = {"case": case["case"], "face": face, "mesh": f"{a.verdict} {a.lag_frames}", "head": f"{b.verdict} {b.lag_frames}",
                   "changed": (a.verdict, a.lag_frames) != (b.verdict, b.lag_frames),
                   "opening_r": agreement(mesh, learned), "opening_mae": mae(mesh, learned),
                   "frames_mesh": a.frames, "frames_head": b.frames,
                   "offset_found_mesh": finds_offset(a, expected), "offset_found_head": finds_offset(b, expected)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    shifted = [r for r in rows if r["offset_found_mesh"] is not None]
    summary = {"manifest": str(manifest), "faces": len(rows), "changed": sum(r["changed"] for r in rows),
               "opening_r_10_50_90": [round(float(q), 3) for q in np.nanquantile([r["opening_r"] for r in rows], [0.1, 0.5, 0.9])],
               "opening_mae_median": round(float(np.nanmedian([r["opening_mae"] for r in rows])), 4),
               "shifted_faces": len(shifted), "offset_found_mesh": sum(bool(r["offset_found_mesh"]) for r in shifted),
               "offset_found_head": sum(bool(r["offset_found_head"]) for r in shifted)}
    return rows, summary


def head_ms(crops: np.ndarray, head: Head, calls: int, batches: tuple[int, ...] = (1, 32, BATCH, 256)) -> dict[str, float]:
    """Median CPU milliseconds per crop of the head at each batch size (crops repeated to fill a batch)."""
    times: dict[str, float] = {}
    for batch in batches:
        feed = np.resize(crops, (batch, *crops.shape[1:]))
        run = functools.partial(head, feed, batch)
        run()  # warm
        times[f"batch_{batch}"] = round(1000 * statistics.median(cpu_s(run) for _ in range(calls)) / batch, 3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, nargs="+", default=list(MANIFESTS))
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx/lip_head.onnx"))
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--cache", type=Path, help="keep each case's served openings and crops here (a rerun skips preprocessing)")
    args = parser.parse_args()
    warm_up()
    head = Head(args.onnx)
    for manifest in args.manifest:
        _, summary = compare(manifest, head, args.cache)
        print(json.dumps(summary), flush=True)
    case = json.loads(args.manifest[0].read_text())["cases"][0]
    first = args.manifest[0].parent / case["file"]
    crops = Served.of(first.read_bytes(), args.cache and args.cache / first.parent.name / f"{case['case']}.npz").scored[0][1]
    timing = {"head_cpu_ms_per_crop": head_ms(crops, head, max(5, args.calls // 10)),
              "mesh_cpu_ms_per_frame": mesh_ms(first.read_bytes(), args.calls), "timing_video": str(first)}
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
