"""Calibrate the decision's ``real_threshold`` / ``fake_threshold`` on the held-out split.

    python -m sync_defense.offline.training.calibrate --out checkpoints/calibration.json

A wrong verdict is taken to cost ``ERROR_COST`` times an ``uncertain`` one; the band is the pair of
thresholds with the lowest total cost. The held-out faces are split in two by a hash of the photo's
name: the served thresholds are fitted on the videos of the first half (``calibration``) and
reported on the second (``reported``), which they never saw; two-fold cross-validation by face
photo is reported as well. The rule's run length (``segment_windows``) is compared the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from sync_defense.inference.decision import DecisionConfig
from sync_defense.model.checkpoint import served_model
from sync_defense.offline.metrics import band_errors, band_report

from .evaluate import video_scores
from .train import predict
from .windows import load_corpus, served_windows

ERROR_COST = 10.0
GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)


def fit_band(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(real_threshold, fake_threshold)`` with the lowest cost; ties go to the band nearest 0.5."""
    best: tuple[float, float, float, float] | None = None
    for lo in GRID[GRID <= 0.5]:
        for hi in GRID[GRID >= 0.5]:
            cost = ERROR_COST * band_errors(scores, labels, lo, hi) + np.sum((scores > lo) & (scores < hi))
            key = (cost, abs(lo - 0.5) + abs(hi - 0.5))
            if best is None or key < best[:2]:
                best = (*key, lo, hi)
    return float(best[2]), float(best[3])


def face_fold(faces: list[str]) -> np.ndarray:
    """0 or 1 per video, by its face photo: the two halves never share a face."""
    return np.array([zlib.crc32(f.encode()) % 2 for f in faces])


def cross_validated(scores: np.ndarray, labels: np.ndarray, faces: list[str]) -> dict:
    """Each fold's thresholds fitted on the other fold's faces, reported on its own videos, summed."""
    fold = face_fold(faces)
    totals = {"videos": 0, "uncertain": 0, "wrong": 0}
    for k in (0, 1):
        lo, hi = fit_band(scores[fold != k], labels[fold != k])
        part = band_report(scores[fold == k], labels[fold == k], lo, hi)
        totals = {key: totals[key] + part[key] for key in totals}
    decided = totals["videos"] - totals["uncertain"]
    return {**totals, "accuracy_of_decided": round(1 - totals["wrong"] / max(1, decided), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: the committed checkpoint")
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--out", type=Path, default=Path("checkpoints/calibration.json"))
    args = parser.parse_args()
    clips = load_corpus(args.corpus, "val")
    windows = served_windows(clips)
    probabilities = predict(served_model(args.checkpoint), windows.visual, windows.audio)
    labels = np.array([c.record["label"] for c in clips])
    faces = [c.record["face"] for c in clips]
    rule = DecisionConfig(fake_threshold=math.nan, real_threshold=math.nan)  # the rule whose thresholds are fitted here
    rules, served = {}, None
    for run in (1, 2, 3, 0):  # 0: the plain mean over voting windows, no localized evidence
        cfg = replace(rule, segment_windows=run or 10_000)
        scores = video_scores(clips, windows, probabilities, cfg=cfg)
        calibration = face_fold(faces) == 0
        band = fit_band(scores[calibration], labels[calibration])
        rules[f"segment_windows={run}" if run else "mean_only"] = {
            "cross_validated": cross_validated(scores, labels, faces),
            "fitted_on_calibration_faces": band_report(scores[calibration], labels[calibration], *band),
            "reported_on_other_faces": band_report(scores[~calibration], labels[~calibration], *band),
        }
        if run == rule.segment_windows:
            served = band
    lo, hi = served
    report = {"error_cost": ERROR_COST, "real_threshold": lo, "fake_threshold": hi,
              "fitted_on": "held-out videos of the first half of the held-out faces (face_fold 0)", "rules_compared": rules}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
