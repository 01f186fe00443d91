"""Train the lip-geometry head (``model.lip_head``) on the refined face mesh's answers, training-role videos only.

    python -m sync_defense.offline.training.lip_head --out checkpoints/lip_head.pt [--onnx build/onnx/lip_head.onnx]

The teacher is the served path itself: each video goes through pass 1 (faces and tracks) and
``crops.crop_mouths(..., measure=True)`` on every frame its faces are on screen, so the crops are the
served crops and the openings the served openings (frames where the mesh found no face are dropped).
The videos, all of the training role and none of the validation yardsticks (``build/realval``,
``build/forgeries/validation``):

- the silent real training videos (``build/realdata/training``, media ``video``);
- the training forgeries made from them (``build/forgeries/training``: re-picked, warped,
  transplanted and generated mouths, what the head must also read);
- a few rendered talking faces (``offline.synthetic.scenes``), none of them ``grace_hopper`` nor
  saying the first sentence: the tests' talking face stays unseen.

The crops are cached in ``--cache`` (an ``.npz``). Each epoch augments them afresh (small shift,
scale and roll of the crop, mirror, colour, blur, noise, JPEG) so the head survives codecs and
the served crop's own jitter; the opening over the mouth width does not change under any of them.
Fixed seed; the ONNX export (dynamic batch) is checked against PyTorch with ``export.parity``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sync_defense.export.onnx_export import export_graph
from sync_defense.export.parity import ONNX_TOLERANCE, ParityReport, check_parity, onnx_runner
from sync_defense.model.lip_head import LIP_CROPS, LIP_HEAD, MAX_BATCH, LipHead, LipHeadConfig, lip_head_spec, save_lip_head
from sync_defense.preprocessing import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.crops import CropPlan, crop_mouths
from sync_defense.preprocessing.decode import iter_timeline_frames
from sync_defense.preprocessing.faces import build_tracks
from sync_defense.preprocessing.scan import scan_faces

REALDATA = Path("build/realdata/training")
FORGERIES = Path("build/forgeries/training")
SYNTHETIC_FACES = 8  # the face bank's first photos but the held-out one
HELD_OUT_FACE = "grace_hopper"  # the tests' talking face (tests/conftest.py): never trained on


@dataclass(frozen=True)
class Teacher:
    """One video's served crops with the refined mesh's opening on each (frames without a mesh dropped)."""

    crops: np.ndarray  # (n, S, S, 3) uint8
    aperture: np.ndarray  # (n,) float32


def teacher(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> Teacher:
    """Every face's crops and openings on every frame it is on screen, from the served pass 1 and pass 2."""
    scan = scan_faces(data, cfg)
    tracks = build_tracks(scan.keyframe_faces, scan.n_frames, cfg)
    plans = [CropPlan.of(t, np.arange(t.first, t.last + 1), scan.n_frames) for t in tracks]
    mouths = crop_mouths(iter_timeline_frames(data, cfg), plans, scan.n_frames, cfg, measure=True)
    crops = [m.crops[np.isfinite(m.aperture)] for m in mouths]
    apertures = [m.aperture[np.isfinite(m.aperture)] for m in mouths]
    size = cfg.mouth.crop_size
    return Teacher(np.concatenate([np.zeros((0, size, size, 3), np.uint8), *crops]),
                   np.concatenate([np.zeros(0, np.float32), *apertures]).astype(np.float32))


def training_videos(realdata: Path = REALDATA, forgeries: Path = FORGERIES) -> list[tuple[str, str, bytes]]:
    """``(source, name, mp4 bytes)`` of every training-role video; ``source`` is the filmed person's video,
    so a hold-out keeps a real video and its forgeries together."""
    videos = []
    for item in json.loads((realdata / "manifest.json").read_text())["items"]:
        if item["media"] == "video":
            videos.append((item["source"], item["file"], (realdata / item["file"]).read_bytes()))
    manifest = json.loads((forgeries / "manifest.json").read_text()) if (forgeries / "manifest.json").exists() else {"cases": []}
    if manifest["cases"] and manifest.get("role") != "training":
        raise ValueError(f"{forgeries} is not a training-role forgery set")
    for case in manifest["cases"]:
        target = next(s for s in case["sources"] if (realdata / "video" / s).is_dir())
        videos.append((target, case["file"], (forgeries / case["file"]).read_bytes()))
    return videos


def synthetic_videos() -> list[tuple[str, str, bytes]]:
    """Rendered talking faces, swaying: ``SYNTHETIC_FACES`` photos of the face bank, each saying one of the later sentences."""
    from sync_defense.offline.synthetic import scenes
    from sync_defense.offline.synthetic.corpus.faces import face_bank

    videos = []
    for i, face in enumerate([f for f in face_bank() if f != HELD_OUT_FACE][:SYNTHETIC_FACES]):
        audio = scenes.speech(scenes.SENTENCES[1 + i % (len(scenes.SENTENCES) - 1)])
        frames = scenes.talking_video(audio, face=face, motion=scenes.SWAY)
        videos.append((f"synthetic_{face}", f"synthetic/{face}.mp4", scenes.mp4(frames, audio)))
    return videos


def build_dataset(cache: Path, synthetic: bool = True) -> dict[str, np.ndarray]:
    """The teacher's crops and openings of every training video (read from ``cache`` when it is there)."""
    if cache.exists():
        with np.load(cache) as saved:
            return dict(saved)
    videos = training_videos() + (synthetic_videos() if synthetic else [])
    parts: dict[str, list[np.ndarray]] = {"crops": [], "aperture": [], "source": [], "video": []}
    for k, (source, name, data) in enumerate(videos):
        start = time.process_time()
        found = teacher(data)
        parts["crops"].append(found.crops)
        parts["aperture"].append(found.aperture)
        parts["source"].append(np.full(len(found.aperture), source))
        parts["video"].append(np.full(len(found.aperture), k))
        print(f"{name}: {len(found.aperture)} frames, {time.process_time() - start:.1f} CPU-s", flush=True)
    dataset = {key: np.concatenate(value) for key, value in parts.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **dataset)
    return dataset


# --- augmentation: what a codec, a camera and the served crop's own wobble do to a crop ----------


def jitter(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small shift (±3 px), scale (±10%) and roll (±5°) of the crop and a mirror half the time: the
    served crop follows smoothed lips, so the frame's own lips sit a little off centre; edges repeat."""
    size = crop.shape[0]
    angle, scale = rng.uniform(-5, 5), math.exp(rng.uniform(-0.1, 0.1))
    matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-3, 3, 2)
    out = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out[:, ::-1] if rng.random() < 0.5 else out


def photometric(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, gamma and white balance; sometimes grey, blur, noise; then JPEG at quality 25-95."""
    image = crop.astype(np.float32) / 255.0
    image = image * rng.uniform(0.85, 1.15, 3)
    image = (image - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.1:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0.005, 0.03), image.shape)
    out = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if rng.random() < 0.7:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 96))])
        out = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return out


def augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.stack([photometric(jitter(c, rng), rng) for c in crops])


# --- training --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    huber_beta: float = 0.02  # L1 beyond 0.02 of opening (the mesh's own frame-to-frame noise), L2 inside


def predict(model: LipHead, crops: np.ndarray, batch: int = MAX_BATCH) -> np.ndarray:
    """``(n,)`` openings of uint8 crops, in eval mode."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([np.zeros(0, np.float32)] + [model(torch.from_numpy(crops[i : i + batch])).numpy()[:, 0]
                                                           for i in range(0, len(crops), batch)])


def fit(crops: np.ndarray, aperture: np.ndarray, settings: TrainSettings, config: LipHeadConfig | None = None,
        check: tuple[np.ndarray, np.ndarray] | None = None) -> LipHead:
    """Train a head from ``settings.seed`` on the augmented crops (cosine learning rate, AdamW, Huber loss);
    with ``check`` (crops, openings) print its MAE and correlation after each epoch."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = LipHead(config or LipHeadConfig())
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(crops) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=steps, pct_start=0.1)
    for epoch in range(settings.epochs):
        model.train()
        start, order, total = time.process_time(), rng.permutation(len(crops)), 0.0
        for i in range(0, len(order), settings.batch_size):
            rows = order[i : i + settings.batch_size]
            x = torch.from_numpy(augment(crops[rows], rng))
            y = torch.from_numpy(aperture[rows])[:, None]
            loss = F.smooth_l1_loss(model(x), y, beta=settings.huber_beta)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(rows)
        line = f"epoch {epoch + 1}/{settings.epochs}: loss {total / len(crops):.5f}, {time.process_time() - start:.0f} CPU-s"
        if check is not None:
            got = predict(model, check[0])
            line += f"; held out: MAE {np.abs(got - check[1]).mean():.4f}, r {np.corrcoef(got, check[1])[0, 1]:.3f}"
        print(line, flush=True)
    return model.eval()


def export_lip_head(model: LipHead, path: Path, parity_crops: np.ndarray) -> list[ParityReport]:
    """The head as ONNX (weights inside, batch 1..MAX_BATCH) and ONNX Runtime against PyTorch on random
    crops (batch 1 and MAX_BATCH) and on ``parity_crops`` (real ones: their batch and repeated to MAX_BATCH)."""
    export_graph(model.eval(), lip_head_spec(model.config), path, MAX_BATCH)

    def reference(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return [model(torch.from_numpy(feed[LIP_CROPS])).numpy()]

    rng = np.random.default_rng(0)
    size = model.config.crop_size
    random = [{LIP_CROPS: rng.integers(0, 256, (batch, size, size, 3), np.uint8)} for batch in (1, MAX_BATCH)]
    real = [{LIP_CROPS: parity_crops}, {LIP_CROPS: np.resize(parity_crops, (MAX_BATCH, size, size, 3))}]
    candidate = onnx_runner(path)
    return (check_parity(LIP_HEAD, candidate, reference, random, "random", ONNX_TOLERANCE)
            + check_parity(LIP_HEAD, candidate, reference, real, "real", ONNX_TOLERANCE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("checkpoints/lip_head.pt"))
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx/lip_head.onnx"))
    parser.add_argument("--cache", type=Path, default=Path("build/lip_head/teacher.npz"))
    parser.add_argument("--no-synthetic", action="store_true", help="real training videos and their forgeries only")
    parser.add_argument("--hold-out", nargs="*", default=[], metavar="SOURCE",
                        help="train without these sources (e.g. fer_woman2) and report the head on them each epoch")
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sync_defense.preprocessing import landmarks

    landmarks.MODEL_THREADS = args.threads  # the teacher's mesh copies and workers (before any graph is built)
    start = time.time()
    data = build_dataset(args.cache, synthetic=not args.no_synthetic)
    held = np.isin(data["source"], args.hold_out)
    print(f"{len(data['aperture'])} frames from {len(np.unique(data['video']))} videos; {held.sum()} held out "
          f"(teacher: {time.time() - start:.0f} s)", flush=True)
    settings = TrainSettings(seed=args.seed, epochs=args.epochs)
    start = time.time()
    check = (data["crops"][held], data["aperture"][held]) if held.any() else None
    model = fit(data["crops"][~held], data["aperture"][~held], settings, check=check)
    minutes = (time.time() - start) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_lip_head(model, args.out, {"trained_on": {"frames": int((~held).sum()), "sources": sorted({str(s) for s in data["source"][~held]}),
                                                   "epochs": settings.epochs, "seed": settings.seed, "minutes": round(minutes, 1)}})
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} kB after {minutes:.1f} min of training", flush=True)
    for report in export_lip_head(model, args.onnx, data["crops"][:: len(data["crops"]) // 50][:50]):  # 50 across the videos
        print(report)
        if not report.ok:
            raise SystemExit(f"ONNX Runtime disagrees with PyTorch on {LIP_HEAD}")


if __name__ == "__main__":
    main()
