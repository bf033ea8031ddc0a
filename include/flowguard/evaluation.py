"""Evaluation metrics. Macro-F1 comes first: benign traffic dominates accuracy."""

from __future__ import annotations

import numpy as np


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str] | None = None
             ) -> dict[str, float]:
    """Macro-F1, accuracy and per-class F1/recall over the classes present in ``y_true``.

    Classes the model cannot predict (new attack families) still count: a model that never
    saw PortScan gets F1 0 on it, which is exactly what a champion/challenger gate must see.
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    labels = sorted(set(np.asarray(y_true)))
    metrics = {
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    per_f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for label, f1, recall in zip(labels, per_f1, per_recall, strict=True):
        key = "".join(ch if ch.isalnum() else "_" for ch in label)
        metrics[f"f1.{key}"] = float(f1)
        metrics[f"recall.{key}"] = float(recall)
    return metrics
