"""Train the sync detector on the corpus: one command, a config file, checkpoints and resume.

    python -m sync_defense.offline.training.train --config configs/tiny.json            # --resume continues a stopped run

Windows are sampled anywhere in the training clips, with the labels of the corpus (whole-clip
and partial fakes) plus SyncNet-style negatives made on the fly: the audio of a real clip taken
a few frames off its video, which is exactly an audio shift in the container.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sync_defense.model.checkpoint import init_model, load_checkpoint, save_checkpoint
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.model.kinetics import load_kinetics_weights
from sync_defense.preprocessing import DEFAULT_CONFIG

from .windows import CorpusClip, EvalWindows, audio_window, load_corpus, served_windows, visual_window, window_label, window_speech


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    corpus: str = "build/corpus"
    run_dir: str = "build/train/tiny"
    out: str = "checkpoints/tiny.pt"
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    minutes: float = 32.0  # training time budget; the schedule runs over max_steps or this, whichever ends first
    max_steps: int = 750
    warmup_steps: int = 50
    shift_negative_rate: float = 0.25  # share of real windows turned into shifted negatives
    min_shift_frames: int = 2
    max_shift_frames: int = 20
    eval_every: int = 250
    threads: int = 2
    kinetics_weights: str | None = None  # torchvision r2plus1d_18 state dict for the base visual encoder
    init_weights: str | None = None  # fine-tune: start from this checkpoint's weights (optimizer, schedule and steps fresh)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        return cls(**json.loads(path.read_text()))


class WindowSampler:
    """Random labelled windows: ``(mouths, mels, labels)`` batches for the loss."""

    def __init__(self, clips: list[CorpusClip], cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.clips, self.cfg, self.rng = clips, cfg, rng
        self.min_speech = DEFAULT_CONFIG.speech.min_window_fraction
        self.T = DEFAULT_CONFIG.timeline.clip_frames

    def _one(self) -> tuple[np.ndarray, np.ndarray, int]:
        while True:
            clip = self.clips[self.rng.integers(len(self.clips))]
            start = int(self.rng.integers(0, clip.n_frames - self.T + 1))
            label = window_label(clip.record, start)
            if label is None or window_speech(clip, start) < self.min_speech:
                continue  # no clear label, or too little speech to judge (the decision ignores such windows too)
            audio_start = start
            if label == 0 and self.rng.random() < self.cfg.shift_negative_rate:
                shift = int(self.rng.integers(self.cfg.min_shift_frames, self.cfg.max_shift_frames + 1)) * int(self.rng.choice([-1, 1]))
                audio_start = start + shift
                if not 0 <= audio_start <= clip.n_frames - self.T or window_speech(clip, audio_start) < self.min_speech:
                    continue
                label = 1
            return self._augment(visual_window(clip, start), audio_window(clip, audio_start)) + (label,)

    def _augment(self, mouths: np.ndarray, mels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What real uploads do to a window: mirror, light, a small or blurred face, a 12 fps source, background noise."""
        if self.rng.random() < 0.5:
            mouths = mouths[:, :, :, ::-1]
        if self.rng.random() < 0.3:  # a face a few dozen pixels wide: detail lost, then upscaled to the crop
            factor = int(self.rng.integers(2, 5))
            size = mouths.shape[-1]
            small = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(mouths)).reshape(-1, 1, size, size), factor)
            mouths = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False).reshape(mouths.shape).numpy()
        if self.rng.random() < 0.15:  # a 12 fps source on the 25 fps timeline: every frame held twice
            mouths = np.repeat(mouths[:, ::2], 2, axis=1)[:, : mouths.shape[1]]
        mouths = mouths * self.rng.uniform(0.8, 1.2) + self.rng.uniform(-0.3, 0.3)
        if self.rng.random() < 0.3:  # background noise: a floor under the quiet parts of the spectrum
            mels = np.maximum(mels, self.rng.uniform(-1.5, 0.0))
        mels = mels + self.rng.uniform(-0.4, 0.4)  # loudness
        if self.rng.random() < 0.3:  # a masked frequency band
            band = int(self.rng.integers(0, mels.shape[1] - 8))
            mels = mels.copy()
            mels[:, band : band + int(self.rng.integers(2, 8))] = mels.mean()
        return np.ascontiguousarray(mouths, np.float32), np.ascontiguousarray(mels, np.float32)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mouths, mels, labels = zip(*(self._one() for _ in range(self.cfg.batch_size)), strict=True)
        return torch.from_numpy(np.stack(mouths)), torch.from_numpy(np.stack(mels)), torch.tensor(labels, dtype=torch.float32)


def _schedule(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return 0.5 * (1 + np.cos(np.pi * progress))


def window_auc(model: torch.nn.Module, windows: EvalWindows) -> float:
    """ROC-AUC over the held-out served windows that have speech and a clear label."""
    from sklearn.metrics import roc_auc_score

    keep = windows.judged
    return float(roc_auc_score(windows.labels[keep], predict(model, windows.visual[keep], windows.audio[keep])))


@torch.no_grad()
def predict(model: torch.nn.Module, mouths: np.ndarray, mels: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-window fake probabilities, in eval mode."""
    was_training = model.training
    model.eval()
    out = [
        model(torch.from_numpy(mouths[i : i + batch]), torch.from_numpy(mels[i : i + batch])).numpy().reshape(-1)
        for i in range(0, len(mouths), batch)
    ]
    model.train(was_training)
    return np.concatenate(out)


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = (load_checkpoint(Path(cfg.init_weights)) if cfg.init_weights else init_model(cfg.model, cfg.seed)).train()
    if cfg.init_weights and model.config != MODEL_CONFIGS[cfg.model]:
        raise ValueError(f"{cfg.init_weights} is not a {cfg.model!r} model")
    if cfg.kinetics_weights:
        load_kinetics_weights(model.visual, torch.load(cfg.kinetics_weights, map_location="cpu", weights_only=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, cfg))
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, history = 0, 0.0, []
    last = run_dir / "last.pt"
    if resume and last.exists():
        state = torch.load(last, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, elapsed, history = state["step"], state["elapsed_s"], state["history"]
    train_clips = load_corpus(Path(cfg.corpus), "train")
    val_clips = load_corpus(Path(cfg.corpus), "val")
    val_windows = served_windows(val_clips)  # cut once, scored at every evaluation
    sampler = WindowSampler(train_clips, cfg, rng)
    print(f"{len(train_clips)} training clips, {len(val_clips)} held-out clips; from step {step}")

    def save_state() -> None:
        torch.save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step, "elapsed_s": elapsed,
            "history": history,
        }, last)

    progress = tqdm(total=cfg.max_steps, initial=step, desc="train")
    started = time.monotonic() - elapsed
    running = None
    while step < cfg.max_steps and elapsed < cfg.minutes * 60:
        mouths, mels, labels = sampler.batch()
        loss = F.binary_cross_entropy_with_logits(model.logit(mouths, mels), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        elapsed = time.monotonic() - started
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.3f}", min=f"{elapsed / 60:.1f}")
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            auc = window_auc(model, val_windows)
            history.append({"step": step, "minutes": round(elapsed / 60, 2), "loss": round(running, 4), "val_window_auc": round(auc, 4)})
            progress.write(json.dumps(history[-1]))
            save_state()
    progress.close()
    save_state()
    out = Path(cfg.out)
    save_checkpoint(model.eval(), out, train_config=asdict(cfg), steps=step, minutes=round(elapsed / 60, 1), history=history)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    print(f"saved {out} after {step} steps, {elapsed / 60:.1f} min")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/tiny.json"))
    parser.add_argument("--resume", action="store_true", help="continue from <run_dir>/last.pt")
    args = parser.parse_args()
    train(TrainConfig.from_file(args.config), resume=args.resume)


if __name__ == "__main__":
    main()
