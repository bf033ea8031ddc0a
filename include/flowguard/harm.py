"""Label-free estimate of the champion's macro-F1 on a window (issue 15, item 4).

Confidence-based performance estimation in the spirit of NannyML's CBPE: if the model's
class probabilities are calibrated, a flow predicted as class c is a true positive of c
with probability p(c), a false positive with 1 - p(c), and a flow predicted as another class
is a false negative of c with probability p(c). Summing gives the expected confusion
counts of every class, hence an expected per-class F1 and macro-F1, without labels.

The estimate is only as good as the probabilities: XGBoost's softmax outputs are used as
they are (no recalibration step exists yet), so the figure is compared with the same
estimate on the reference, not with the holdout's measured macro-F1: the drop is what the
retrain policy can use ("retrain when the estimated macro-F1 falls by more than X").
Where the window has labels the measured macro-F1 is reported beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def expected_macro_f1(proba: np.ndarray, classes: list[str],
                      among: list[str] | None = None) -> dict[str, Any]:
    """Expected per-class and macro F1 from class probabilities (rows sum to one).

    ``among``: the classes that enter the macro average (default: every class with an
    expected support or a prediction of at least one flow, as a measured macro-F1 over the
    labels present would count them)."""
    proba = np.asarray(proba, dtype=float)
    predicted = proba.argmax(axis=1)
    per_class = {}
    for j, name in enumerate(classes):
        is_pred = predicted == j
        tp = float(proba[is_pred, j].sum())
        fp = float((1.0 - proba[is_pred, j]).sum())
        fn = float(proba[~is_pred, j].sum())
        support = tp + fn
        if among is not None and name not in among:
            continue
        if among is None and support < 1.0 and is_pred.sum() == 0:
            continue
        per_class[name] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn > 0 else 0.0
    macro = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return {"macro_f1": round(macro, 4), "per_class": per_class, "n": int(len(proba))}


def harm_estimate(ref_proba: np.ndarray, win_proba: np.ndarray, classes: list[str],
                  max_drop: float = 0.05) -> dict[str, Any]:
    """Estimated macro-F1 on the window vs the same estimate on the reference; ``is_drift``
    when it fell by more than ``max_drop``."""
    ref = expected_macro_f1(ref_proba, classes)
    win = expected_macro_f1(win_proba, classes)
    drop = ref["macro_f1"] - win["macro_f1"]
    return {"estimated_macro_f1": win["macro_f1"], "reference_estimated_macro_f1":
            ref["macro_f1"], "drop": round(drop, 4), "max_drop": max_drop,
            "per_class": win["per_class"], "is_drift": bool(drop > max_drop),
            "method": "CBPE-style expected confusion from the model's probabilities"}
