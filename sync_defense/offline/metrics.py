"""Every metric of the offline reports in one place, computed with scikit-learn: the held-out split's
(``training.evaluate``), the calibration's band (``training.calibrate``) and the real recordings'
(``realdata.score``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve


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


def band_errors(scores: np.ndarray, labels: np.ndarray, lo: float, hi: float) -> int:
    return int(np.sum((scores >= hi) & (labels == 0)) + np.sum((scores <= lo) & (labels == 1)))


def band_report(scores: np.ndarray, labels: np.ndarray, lo: float, hi: float) -> dict:
    decided = (scores <= lo) | (scores >= hi)
    errors = band_errors(scores, labels, lo, hi)
    return {"videos": int(len(scores)), "uncertain": int((~decided).sum()), "wrong": errors,
            "accuracy_of_decided": round(1 - errors / max(1, decided.sum()), 4),
            "binary_accuracy_at_0.5": round(float(np.mean((scores >= 0.5) == labels)), 4)}


def roc_auc(genuine: list[float], fake: list[float]) -> float | None:
    """The area under the ROC curve of fakes against genuine clips (None without both)."""
    if not genuine or not fake:
        return None
    return float(roc_auc_score([0] * len(genuine) + [1] * len(fake), [*genuine, *fake]))


def quantiles(values: list[float | None]) -> list[float] | None:
    """10th, 50th and 90th percentiles of the values that exist (None: none do)."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return [round(float(np.percentile(present, q)), 3) for q in (10, 50, 90)]
