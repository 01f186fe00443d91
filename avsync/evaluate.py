"""Evaluate a checkpoint on the held-out clips, in PyTorch and through the Triton ensemble.

    python -m avsync.evaluate --checkpoint checkpoints/tiny.pt --out build/eval [--triton localhost:8001]

Reports accuracy, precision, recall, F1, ROC-AUC and EER for windows and videos, a breakdown by
fake kind, the detection rate of small shifts, the same numbers with leading silence trimmed
(published data sets leak the label through leading silence), an ROC plot, and — with
``--triton`` — the verdicts the served ensemble gives on the same mp4 files and their difference.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

from preprocessing import DEFAULT_CONFIG

from .checkpoint import served_model
from .decision import decide
from .train import predict
from .windows import CorpusClip, EvalWindows, load_corpus, served_windows


@dataclass(frozen=True)
class Metrics:
    n: int
    positives: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    eer: float

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Metrics:
        predicted = (scores >= threshold).astype(int)
        fpr, tpr, _ = roc_curve(labels, scores)
        eer_at = int(np.argmin(np.abs(fpr - (1 - tpr))))
        return cls(
            n=len(labels), positives=int(labels.sum()),
            accuracy=round(float(accuracy_score(labels, predicted)), 4),
            precision=round(float(precision_score(labels, predicted, zero_division=0)), 4),
            recall=round(float(recall_score(labels, predicted, zero_division=0)), 4),
            f1=round(float(f1_score(labels, predicted, zero_division=0)), 4),
            roc_auc=round(float(roc_auc_score(labels, scores)), 4),
            eer=round(float((fpr[eer_at] + 1 - tpr[eer_at]) / 2), 4),
        )


def _first_speech_s(windows: EvalWindows, clip: int) -> float:
    rows = np.flatnonzero((windows.clip_index == clip) & (windows.speech >= DEFAULT_CONFIG.min_speech_fraction))
    return float(windows.start_s[rows[0]]) if rows.size else np.inf


def video_scores(clips: list[CorpusClip], windows: EvalWindows, probabilities: np.ndarray, trim_leading_silence: bool) -> np.ndarray:
    """The served decision rule's probability per clip (windows before the first speech dropped if asked)."""
    scores = []
    for i in range(len(clips)):
        rows = windows.clip_index == i
        if trim_leading_silence:
            rows &= windows.start_s >= _first_speech_s(windows, i)
        scores.append(decide(probabilities[rows], windows.speech[rows], True).fake_probability)
    return np.array(scores)


def evaluate(clips: list[CorpusClip], probabilities: np.ndarray, windows: EvalWindows) -> dict:
    """Every metric of the report from per-window probabilities on the served windows."""
    report: dict = {}
    judged = (windows.labels >= 0) & (windows.speech >= DEFAULT_CONFIG.min_speech_fraction)
    labels = np.array([c.record["label"] for c in clips])
    kinds = np.array([c.record["kind"] for c in clips])
    for trimmed in (False, True):
        rows = judged.copy()
        if trimmed:
            rows &= windows.start_s >= np.array([_first_speech_s(windows, i) for i in windows.clip_index])
        videos = video_scores(clips, windows, probabilities, trimmed)
        key = "leading_silence_trimmed" if trimmed else "as_is"
        report[key] = {
            "windows": asdict(Metrics.of(windows.labels[rows], probabilities[rows])),
            "videos": asdict(Metrics.of(labels, videos)),
        }
    videos = video_scores(clips, windows, probabilities, False)
    report["video_recall_by_kind"] = {
        kind: round(float(np.mean((videos[kinds == kind] >= 0.5) == labels[kinds == kind])), 4) for kind in sorted(set(kinds))
    }
    offsets = np.array([round(abs(c.record["offset_s"]) * 25) for c in clips])
    shifted = np.isin(kinds, ["shift_small", "shift_large"])
    report["shift_detection_by_frames"] = {
        int(f): round(float(np.mean(videos[shifted & (offsets == f)] >= 0.5)), 4) for f in sorted(set(offsets[shifted]))
    }
    report["_video_scores"] = videos.tolist()
    return report


def plot_roc(clips: list[CorpusClip], windows: EvalWindows, probabilities: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = (windows.labels >= 0) & (windows.speech >= DEFAULT_CONFIG.min_speech_fraction)
    labels = np.array([c.record["label"] for c in clips])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, s in (
        ("windows", windows.labels[judged], probabilities[judged]),
        ("videos", labels, video_scores(clips, windows, probabilities, False)),
    ):
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Held-out clips (unseen voices, sentences, faces)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def triton_scores(root: Path, clips: list[CorpusClip], url: str) -> np.ndarray:
    """The served ensemble's video probability for each held-out mp4 file."""
    from client import SyncDefenseClient

    with SyncDefenseClient(url) as client:
        return np.array([client.detect(root / c.record["mp4"]).fake_probability for c in clips])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: the committed checkpoint")
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--out", type=Path, default=Path("build/eval"))
    parser.add_argument("--triton", metavar="HOST:PORT", help="also classify the held-out mp4 files through this gRPC server")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = served_model(args.checkpoint)
    clips = load_corpus(args.corpus, "val")
    windows = served_windows(clips)
    probabilities = predict(model, windows.visual, windows.audio)
    report = evaluate(clips, probabilities, windows)
    plot_roc(clips, windows, probabilities, args.out / "roc.png")
    torch_videos = np.array(report.pop("_video_scores"))
    if args.triton:
        served = triton_scores(args.corpus, clips, args.triton)
        labels = np.array([c.record["label"] for c in clips])
        report["triton"] = {
            "videos": asdict(Metrics.of(labels, served)),
            "max_abs_probability_difference": round(float(np.max(np.abs(served - torch_videos))), 6),
            "accuracy_difference_points": round(
                100 * abs(np.mean((served >= 0.5) == labels) - np.mean((torch_videos >= 0.5) == labels)), 3
            ),
        }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
