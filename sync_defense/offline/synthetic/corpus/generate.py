"""Write the corpus: mp4 files, their preprocessed features and a manifest, deterministic from a seed.

    python -m sync_defense.offline.synthetic.corpus.generate --out build/corpus --train 640 --val 160 --workers 2

Each clip is rendered, written as a real H.264 + AAC mp4 and read back through the serving
preprocessing (``preprocessing.extract_clip``); training reads the saved per-frame features.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sync_defense.preprocessing import MediaError
from sync_defense.preprocessing.clips import extract_clip

from .clips import make_clip


def spawn_pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker processes started fresh, not forked: a fork of a process that already runs threads
    (PyTorch, gRPC, OpenCV) can deadlock in the child. OpenCV gets one thread per worker."""
    return multiprocessing.get_context("spawn").Pool(workers, initializer=cv2.setNumThreads, initargs=(1,))


def clip_paths(out: Path, split: str, index: int) -> tuple[Path, Path]:
    stem = f"{split}_{index:05d}"
    return out / "mp4" / f"{stem}.mp4", out / "features" / f"{stem}.npz"


def _write_clip(job: tuple[Path, str, int, int]) -> dict:
    """Render, encode and preprocess one clip; ``features`` is ``None`` when no face is found in it."""
    out, split, index, seed = job
    mp4, features = clip_paths(out, split, index)
    data, record = make_clip(index, split, seed)
    mp4.write_bytes(data)
    row = {**record.to_dict(), "mp4": str(mp4.relative_to(out)), "features": None}
    try:
        clip = extract_clip(data)
    except MediaError:
        return row
    if clip.crops is not None:
        np.savez(features, crops=clip.crops, mel=clip.mel.astype(np.float16), speech=clip.speech)
        row["features"] = str(features.relative_to(out))
    return row


def generate(out: Path, counts: dict[str, int], seed: int, workers: int) -> Path:
    """Write every clip and append its row to ``manifest.jsonl`` as it is done.

    A stopped run resumes where it stopped: clips already in the manifest are not made again.
    """
    (out / "mp4").mkdir(parents=True, exist_ok=True)
    (out / "features").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    done = set()
    if manifest.exists():
        done = {(r["split"], r["index"]) for r in map(json.loads, manifest.read_text().splitlines())}
    jobs = [(out, split, i, seed) for split, n in counts.items() for i in range(n) if (split, i) not in done]
    with spawn_pool(workers) as pool, manifest.open("a") as rows:
        for row in tqdm(pool.imap(_write_clip, jobs, chunksize=2), total=len(jobs), desc="clips"):
            rows.write(json.dumps(row) + "\n")
            rows.flush()
    usable = sum(1 for r in map(json.loads, manifest.read_text().splitlines()) if r["features"])
    print(f"{usable} usable clips in {manifest} (rows without features: no face found)")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/corpus"))
    parser.add_argument("--train", type=int, default=640)
    parser.add_argument("--val", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    generate(args.out, {"train": args.train, "val": args.val}, args.seed, args.workers)


if __name__ == "__main__":
    main()
