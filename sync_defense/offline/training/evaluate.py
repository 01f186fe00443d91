"""Evaluate a checkpoint on the held-out clips, in PyTorch and through the Triton ensemble.

    python -m sync_defense.offline.training.evaluate --checkpoint checkpoints/tiny.pt --out build/eval [--triton localhost:8001]

Reports accuracy, precision, recall, F1, ROC-AUC and EER for windows and videos, a breakdown by
fake kind, the detection rate of shifts of 1-15 frames, the same numbers with leading silence trimmed
(published data sets leak the label through leading silence), an ROC plot, and — with
``--triton`` — the verdicts the served ensemble gives on the same mp4 files and their difference.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from sync_defense.inference.decision import DecisionConfig, voting_probability
from sync_defense.model.checkpoint import served_model
from sync_defense.offline.metrics import Metrics, band_report, quantiles
from sync_defense.offline.realdata.score import lips_at_upload
from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing.windows import window_starts

from .train import predict
from .windows import CorpusClip, EvalWindows, audio_window, load_corpus, served_windows, visual_window, window_speech

NO_EVIDENCE = 0.5  # the score of a clip without a speech window (never happens in the corpus: every clip speaks)


def first_speech_s(clips: list[CorpusClip], windows: EvalWindows) -> np.ndarray:
    """Per clip, the start of its first window with speech (inf when it has none)."""
    voiced = windows.speech >= DEFAULT_CONFIG.speech.min_window_fraction
    return np.array([
        float(windows.start_s[rows[0]]) if (rows := np.flatnonzero((windows.clip_index == i) & voiced)).size else np.inf
        for i in range(len(clips))
    ])


def video_scores(clips: list[CorpusClip], windows: EvalWindows, probabilities: np.ndarray, from_s: np.ndarray | None = None,
                 cfg: DecisionConfig | None = None) -> np.ndarray:
    """The served decision rule's probability per clip; windows starting before ``from_s[clip]`` are dropped."""
    scores = []
    for i in range(len(clips)):
        rows = windows.clip_index == i
        if from_s is not None:
            rows &= windows.start_s >= from_s[i]
        p = voting_probability(probabilities[rows], windows.speech[rows], cfg or DecisionConfig.from_calibration())
        scores.append(NO_EVIDENCE if p is None else p)
    return np.array(scores)


def evaluate(clips: list[CorpusClip], probabilities: np.ndarray, windows: EvalWindows) -> dict:
    """Every metric of the report from per-window probabilities on the served windows."""
    report: dict = {}
    labels = np.array([c.record["label"] for c in clips])
    kinds = np.array([c.record["kind"] for c in clips])
    first_speech = first_speech_s(clips, windows)
    videos = video_scores(clips, windows, probabilities)
    for key, rows, scores in (
        ("as_is", windows.judged, videos),
        ("leading_silence_trimmed", windows.judged & (windows.start_s >= first_speech[windows.clip_index]),
         video_scores(clips, windows, probabilities, first_speech)),
    ):
        report[key] = {
            "windows": asdict(Metrics.of(windows.labels[rows], probabilities[rows])),
            "videos": asdict(Metrics.of(labels, scores)),
        }
    served = DecisionConfig.from_calibration()
    report["videos_at_served_thresholds"] = band_report(scores=videos, labels=labels, lo=served.real_threshold, hi=served.fake_threshold)
    report["video_recall_by_kind"] = {
        kind: round(float(np.mean((videos[kinds == kind] >= 0.5) == labels[kinds == kind])), 4) for kind in sorted(set(kinds))
    }
    # Every held-out face is unseen; the one colour photo (astronaut) is reported on its own.
    faces = [c.record.get("face", "unknown") for c in clips]  # data-set adapters record no face
    sources = np.array(["lfw" if face.startswith("lfw_") else face for face in faces])
    report["video_accuracy_by_face_source"] = {
        source: {"clips": int((sources == source).sum()),
                 "accuracy": round(float(np.mean((videos[sources == source] >= 0.5) == labels[sources == source])), 4)}
        for source in sorted(set(sources))
    }
    offsets = np.array([round(abs(c.record.get("offset_s", 0.0)) * DEFAULT_CONFIG.timeline.fps) for c in clips])
    shifted = np.isin(kinds, ["shift_small", "shift_large"])
    report["shift_detection_by_frames"] = {
        int(f): round(float(np.mean(videos[shifted & (offsets == f)] >= 0.5)), 4) for f in sorted(set(offsets[shifted]))
    }
    return report


def shift_sweep(model: torch.nn.Module, clips: list[CorpusClip], shifts: tuple[int, ...] = (1, 2, 3, 5, 8, 15)) -> dict:
    """Share of held-out real clips called fake (p >= 0.5) when their audio is moved by +-d frames.

    The shift is applied to the served windows' audio (exactly an audio offset in the container);
    each real clip counts twice, once per direction.
    """
    real = [c for c in clips if c.record["kind"] == "real"]
    rates = {}
    for d in shifts:
        detected = []
        for clip in real:
            for sign in (-1, 1):
                starts = [int(s) for s in window_starts(clip.n_frames, DEFAULT_CONFIG)
                          if 0 <= s + sign * d <= clip.n_frames - DEFAULT_CONFIG.timeline.clip_frames]
                if not starts:
                    continue
                probabilities = predict(
                    model, np.stack([visual_window(clip, s) for s in starts]),
                    np.stack([audio_window(clip, s + sign * d) for s in starts]),
                )
                speech = np.array([window_speech(clip, s + sign * d) for s in starts])
                p = voting_probability(probabilities, speech, DecisionConfig.from_calibration())
                if p is not None:
                    detected.append(p >= 0.5)
        rates[d] = {"clips": len(detected), "detected": round(float(np.mean(detected)), 4) if detected else None}
    return rates


def plot_roc(clips: list[CorpusClip], windows: EvalWindows, probabilities: np.ndarray, videos: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.array([c.record["label"] for c in clips])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, s in (
        ("windows", windows.labels[windows.judged], probabilities[windows.judged]),
        ("videos", labels, videos),
    ):
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Held-out clips (unseen voices, sentences, faces)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def triton_answers(root: Path, clips: list[CorpusClip], url: str) -> list:
    """The served ensemble's answer (``contract.Answer`` fields) for each held-out mp4 file."""
    from sync_defense.client import SyncDefenseClient

    with SyncDefenseClient(url) as client:
        return [client.detect(root / c.record["mp4"]) for c in clips]


def served_verdicts(answers: list, labels: np.ndarray) -> dict:
    """The served verdicts against the labels: accuracy of the decided ones, the uncertain share, the deciding evidence."""
    verdicts = np.array([a.verdict for a in answers])
    decided = np.isin(verdicts, ("real", "fake"))
    correct = (verdicts == "fake") == (labels == 1)
    evidence = [a.deciding_face.evidence if a.deciding_face else "none" for a in answers]
    classes = {"genuine": labels == 0, "fakes": labels == 1}
    return {"videos": len(answers), "uncertain": int(np.sum(verdicts == "uncertain")),
            "no_face_or_no_speech": int(np.sum(~decided & (verdicts != "uncertain"))), "wrong": int(np.sum(decided & ~correct)),
            "accuracy_of_decided": round(float(np.mean(correct[decided])), 4) if decided.any() else None,
            "accuracy_all_videos": round(float(np.mean(decided & correct)), 4),
            "deciding_evidence": {e: evidence.count(e) for e in sorted(set(evidence))},
            "verdicts": {name: {v: int(np.sum(verdicts[rows] == v)) for v in sorted(set(verdicts))} for name, rows in classes.items()},
            "lips_at_zero": {name: quantiles([lips_at_upload(a.deciding_face) for a, keep in zip(answers, rows, strict=True) if keep])
                             for name, rows in classes.items()}}


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
    report["real_clips_shifted_detected"] = shift_sweep(model, clips)
    torch_videos = video_scores(clips, windows, probabilities)
    plot_roc(clips, windows, probabilities, torch_videos, args.out / "roc.png")
    if args.triton:
        answers = triton_answers(args.corpus, clips, args.triton)
        served = np.array([NO_EVIDENCE if a.fake_probability is None else a.fake_probability for a in answers])
        labels = np.array([c.record["label"] for c in clips])
        report["triton"] = {
            "served_verdicts": served_verdicts(answers, labels),
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
