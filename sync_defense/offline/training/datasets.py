"""Published audio-visual deepfake data sets, read into the corpus layout the training loop reads.

    python -m sync_defense.offline.training.datasets lavdf /data/LAV-DF --out build/lavdf
    python -m sync_defense.offline.training.datasets fakeavceleb /data/FakeAVCeleb_v1.2 --out build/fakeavceleb
    python -m sync_defense.offline.training.datasets avdeepfake1m /data/AV-Deepfake1M --out build/avdeepfake1m

Each video is read through the serving preprocessing once and its features saved; then train
with ``"corpus": "build/lavdf"`` in the config. Nothing here downloads anything: bring the data.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sync_defense.offline.synthetic.corpus.generate import spawn_pool
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError
from sync_defense.preprocessing.clips import extract_clip


def _holdout(key: str, share: float = 0.15) -> str:
    """A stable split by identity: the same person is always on the same side."""
    return "val" if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 1000 < share * 1000 else "train"


def fakeavceleb(root: Path) -> Iterator[dict]:
    """``meta_data.csv``: category A is real video and real audio; B, C and D have a fake modality.

    The video's folder is the CSV's last, unnamed column (it starts with ``FakeAVCeleb/``, the
    data set's own top folder); its file name is the ``path`` column. Split by source identity.
    """
    with (root / "meta_data.csv").open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        column = {name: i for i, name in enumerate(header) if name}
        for row in reader:
            folder = Path(row[-1])
            if folder.parts and folder.parts[0] == root.name:
                folder = Path(*folder.parts[1:])
            category = row[column["category"]]
            yield {
                "mp4": str(root / folder / row[column["path"]]),
                "split": _holdout(row[column["source"]]),
                "kind": row[column["method"]],
                "label": int(category != "A"),
                "fake_periods": [] if category == "A" else None,  # whole clip
            }


def _periods_dataset(entries: list[dict], root: Path, periods_key: str, split_names: dict[str, str]) -> Iterator[dict]:
    for entry in entries:
        periods = [list(map(float, p)) for p in entry.get(periods_key) or []]
        yield {
            "mp4": str(root / entry["file"]),
            "split": split_names.get(entry.get("split", "train"), "train"),
            "kind": entry.get("modify_type") or ("fake" if periods else "real"),
            "label": int(bool(periods)),
            "fake_periods": periods,
        }


def lavdf(root: Path) -> Iterator[dict]:
    """``metadata.json``: ``fake_periods`` in seconds; splits train / dev / test (dev held out here)."""
    entries = json.loads((root / "metadata.json").read_text())
    return _periods_dataset(entries, root, "fake_periods", {"train": "train", "dev": "val", "test": "test"})


def avdeepfake1m(root: Path) -> Iterator[dict]:
    """``train_metadata.json`` / ``val_metadata.json``: ``fake_segments`` in seconds, ``modify_type``."""
    for split in ("train", "val"):
        path = root / f"{split}_metadata.json"
        if path.exists():
            entries = [{**e, "split": split} for e in json.loads(path.read_text())]
            yield from _periods_dataset(entries, root / split, "fake_segments", {"train": "train", "val": "val"})


READERS = {"fakeavceleb": fakeavceleb, "lavdf": lavdf, "avdeepfake1m": avdeepfake1m}


def _extract(job: tuple[int, dict, Path]) -> dict:
    index, row, out = job
    features = out / "features" / f"{index:07d}.npz"
    row = {**row, "index": index, "features": None}
    try:
        clip = extract_clip(Path(row["mp4"]).read_bytes())
    except (MediaError, OSError) as exc:
        return {**row, "error": str(exc)}
    if clip.crops is not None:
        np.savez(features, crops=clip.crops, mel=clip.mel.astype(np.float16), speech=clip.speech)
        row["features"] = str(features.relative_to(out))
    if row["fake_periods"] is None:  # the whole clip is fake
        row["fake_periods"] = [[0.0, clip.n_frames / DEFAULT_CONFIG.timeline.fps + 1.0]]
    return row


def prepare(dataset: str, root: Path, out: Path, workers: int = 2) -> Path:
    """Preprocess every video of ``dataset`` into ``out`` (manifest + features)."""
    (out / "features").mkdir(parents=True, exist_ok=True)
    jobs = [(i, row, out) for i, row in enumerate(READERS[dataset](root))]
    with spawn_pool(workers) as pool:
        rows = list(tqdm(pool.imap(_extract, jobs), total=len(jobs), desc=dataset))
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    usable = sum(1 for r in rows if r["features"])
    print(f"{usable} of {len(rows)} videos usable; manifest {manifest}")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(READERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    prepare(args.dataset, args.root, args.out, args.workers)


if __name__ == "__main__":
    main()
