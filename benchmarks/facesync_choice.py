"""FaceSync against the lip test on every face of the given sets: which faces it finds in sync, shifted or neither.

    python -m benchmarks.facesync_choice --cache build/facesync       # the validation sets, FaceSync's sizes
    python -m benchmarks.facesync_choice --cache build/facesync --manifest build/forgeries/training/manifest.json \\
        [--cepstra 13 --ridge 0.1 --shape aperture width outer_height upper_lip lower_lip]   # how the sizes were chosen

Each case is preprocessed as served once (``--cache`` keeps its loudness, log-mel and lip shapes); then
each face gets the lip test (``inference.lipsync``: loudness against the opening) and FaceSync
(``inference.facesync``: the cepstrum against the lip shape, cross-validated), and the table counts
their verdicts per kind of case. Also, per face, FaceSync's held-out correlation at the uploaded
alignment with the full lip shape and with the opening alone, and with the loudness alone as the
audio: how much the spectrum and the lip shape add to the lip test's one number each.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sync_defense.inference import facesync
from sync_defense.inference.lipsync import DEFAULT_LIP_SYNC, lip_sync
from sync_defense.preprocessing import preprocess_video, warm_up
from sync_defense.preprocessing.landmarks import LIP_SHAPE

MANIFESTS = (Path("build/realval/manifest.json"), Path("build/forgeries/validation/manifest.json"))


@dataclass(frozen=True)
class Measured:
    """One case preprocessed as served: what both tests read."""

    loudness: np.ndarray
    mel: np.ndarray
    lips: list[np.ndarray]

    @classmethod
    def of(cls, data: bytes, cache: Path | None) -> Measured:
        if cache is not None and cache.exists():
            with np.load(cache) as saved:
                return cls(saved["loudness"], saved["mel"], [saved[f"lips_{i}"] for i in range(int(saved["faces"]))])
        video = preprocess_video(data)
        measured = cls(video.loudness, video.mel, list(video.lips))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, faces=np.array(len(measured.lips)), loudness=measured.loudness, mel=measured.mel,
                     **{f"lips_{i}": lips for i, lips in enumerate(measured.lips)})
        return measured


def at_zero(audio: np.ndarray, shape: np.ndarray, cfg: facesync.FaceSyncConfig) -> float:
    """FaceSync's held-out correlation with the audio as uploaded."""
    lips = shape[:, [LIP_SHAPE.index(name) for name in cfg.shape]]
    return facesync.correlation_curve(audio, lips, replace(cfg, max_lag_frames=0)).get(0, float("nan"))


def face_rows(manifest: Path, cache: Path | None, cfg: facesync.FaceSyncConfig) -> list[dict]:
    rows = []
    for case in json.loads(manifest.read_text())["cases"]:
        where = None if cache is None else cache / manifest.parent.name / f"{case['case']}.npz"
        measured = Measured.of((manifest.parent / case["file"]).read_bytes(), where)
        audio = facesync.cepstra(measured.mel, len(measured.loudness), cfg)
        level = np.fmax(measured.loudness.astype(np.float64), DEFAULT_LIP_SYNC.loudness_floor_dbfs)[:, None]
        for face, lips in enumerate(measured.lips):
            started = time.process_time()
            rich = facesync.face_sync(audio, lips, cfg)
            cost = time.process_time() - started
            simple = lip_sync(lips[:, LIP_SHAPE.index("aperture")], measured.loudness)
            rows.append({
                "case": case["case"], "face": face, "label": case["label"], "kind": case["kind"], "driver": case.get("driver"),
                "lips": f"{simple.verdict} {simple.lag_frames} {simple.at_zero} / {simple.chance_peak}",
                "facesync": f"{rich.verdict} {rich.lag_frames} {rich.at_zero} / {rich.chance_peak}",
                "lips_verdict": simple.verdict, "facesync_verdict": rich.verdict,
                "r_shape_cepstra": round(at_zero(audio, lips, cfg), 3),
                "r_opening_cepstra": round(at_zero(audio, lips, replace(cfg, shape=("aperture",))), 3),
                "r_shape_loudness": round(at_zero(level, lips, cfg), 3), "cpu_s": round(cost, 3),
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    """Per kind of case (and driver): how many faces each test finds in sync, shifted or neither, and the
    correlations' medians."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["kind"] + (f"/{row['driver']}" if row["driver"] else "")].append(row)
    out = {}
    for name, members in sorted(groups.items()):
        out[name] = {
            "faces": len(members),
            "lips": dict(Counter(r["lips_verdict"] for r in members)),
            "facesync": dict(Counter(r["facesync_verdict"] for r in members)),
            **{k: round(float(np.nanmedian([r[k] for r in members])), 3)
               for k in ("r_shape_cepstra", "r_opening_cepstra", "r_shape_loudness")},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, nargs="+", default=list(MANIFESTS))
    parser.add_argument("--cache", type=Path, help="keep each case's loudness, log-mel and lip shapes here")
    parser.add_argument("--cepstra", type=int, default=facesync.DEFAULT_FACESYNC.cepstra)
    parser.add_argument("--ridge", type=float, default=facesync.DEFAULT_FACESYNC.ridge)
    parser.add_argument("--shape", nargs="+", choices=LIP_SHAPE, default=list(facesync.DEFAULT_FACESYNC.shape),
                        help="the lip-shape columns FaceSync reads")
    args = parser.parse_args()
    cfg = replace(facesync.DEFAULT_FACESYNC, cepstra=args.cepstra, ridge=args.ridge, shape=tuple(args.shape))
    warm_up()
    for manifest in args.manifest:
        rows = face_rows(manifest, args.cache, cfg)
        print(json.dumps({"manifest": str(manifest), "cpu_s_per_face_median": float(np.median([r["cpu_s"] for r in rows])),
                          "by_kind": summary(rows)}, indent=1), flush=True)


if __name__ == "__main__":
    main()
