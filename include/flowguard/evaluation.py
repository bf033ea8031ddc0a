"""Evaluation metrics. Macro-F1 comes first: benign traffic dominates accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path


def metric_key(label: str) -> str:
    """A class name as an MLflow metric key fragment (``DoS Hulk`` -> ``DoS_Hulk``)."""
    return "".join(ch if ch.isalnum() else "_" for ch in label)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str] | None = None,
             proba: np.ndarray | None = None) -> dict[str, float]:
    """Macro-F1, accuracy, per-class precision/recall/F1 (and log-loss given probabilities).

    Per-class metrics cover the classes present in ``y_true``. Classes the model cannot
    predict (new attack families) still count: a model that never saw PortScan gets F1 0 on
    it, which is exactly what a champion/challenger gate must see. ``proba`` holds the
    model's probabilities over ``classes`` (its own class order); rows whose true class the
    model does not know get probability ~0 for it, so log-loss punishes them too.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    labels = sorted(set(y_true))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    metrics = {"macro_f1": float(np.mean(f1)) if len(labels) else 0.0,
               "accuracy": float(accuracy_score(y_true, y_pred))}
    for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True):
        key = metric_key(label)
        metrics[f"f1.{key}"] = float(f)
        metrics[f"recall.{key}"] = float(r)
        metrics[f"precision.{key}"] = float(p)
        metrics[f"support.{key}"] = float(s)
    if proba is not None and classes is not None:
        metrics["log_loss"] = log_loss(y_true, proba, classes)
    return metrics


def log_loss(y_true: np.ndarray, proba: np.ndarray, classes: list[str], eps: float = 1e-15
             ) -> float:
    """Mean negative log-likelihood of the true class; unknown classes get probability ``eps``."""
    index = {c: i for i, c in enumerate(classes)}
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:  # binary:logistic returns P(class 1) only in some paths
        proba = np.column_stack([1 - proba, proba])
    rows = np.arange(len(y_true))
    cols = np.array([index.get(y, -1) for y in y_true])
    p = np.where(cols >= 0, proba[rows, np.clip(cols, 0, None)], 0.0)
    return float(-np.mean(np.log(np.clip(p, eps, 1.0))))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Labels (true and predicted, sorted) and the confusion matrix over them."""
    from sklearn.metrics import confusion_matrix

    labels = sorted(set(np.asarray(y_true)) | set(np.asarray(y_pred)))
    return labels, confusion_matrix(y_true, y_pred, labels=labels)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> Path:
    """Row-normalised confusion matrix as a PNG, counts written in each cell."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a task
    import matplotlib.pyplot as plt

    labels, matrix = confusion(y_true, y_pred)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
