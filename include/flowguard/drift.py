"""Drift detectors. This module runs in the drift runtime (alibi-detect 0.11.4, numpy<2).

It must import nothing platform-only (no Airflow, Feast, MLflow): the monitoring DAG ships
the call through ``@task.external_python`` and passes file paths in and a dict of plain
floats, booleans and strings out. Inputs are already preprocessed (signed log1p, scaled with
statistics fitted on a separate reference split), hence ``x_ref_preprocessed=True``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def run_detectors(
    ref_path: str, cur_path: str, p_val: float = 0.05, n_permutations: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Run MMDDrift (PyTorch) and ClassifierDrift (scikit-learn) on two ``.npy`` matrices."""
    import numpy as np
    from alibi_detect.cd import ClassifierDrift, MMDDrift
    from alibi_detect.utils._random import set_seed
    from sklearn.ensemble import RandomForestClassifier

    x_ref = np.load(ref_path).astype(np.float32)
    x_cur = np.load(cur_path).astype(np.float32)
    set_seed(seed)
    out: dict[str, Any] = {"n_ref": int(len(x_ref)), "n_cur": int(len(x_cur)), "p_val": p_val}

    started = time.perf_counter()
    mmd = MMDDrift(x_ref, backend="pytorch", p_val=p_val, x_ref_preprocessed=True,
                   n_permutations=n_permutations, device="cpu")
    pred = mmd.predict(x_cur)["data"]
    out["mmd"] = {
        "is_drift": bool(pred["is_drift"]),
        "p_value": float(pred["p_val"]),
        "distance": float(pred["distance"]),
        "threshold": float(pred["distance_threshold"]),
        "seconds": round(time.perf_counter() - started, 3),
    }

    started = time.perf_counter()
    model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=seed, n_jobs=1)
    clf = ClassifierDrift(x_ref, model=model, backend="sklearn", p_val=p_val,
                          x_ref_preprocessed=True, preds_type="probs", binarize_preds=False,
                          n_folds=5, train_size=None, seed=seed)
    pred = clf.predict(x_cur)["data"]
    out["classifier"] = {
        "is_drift": bool(pred["is_drift"]),
        "p_value": float(pred["p_val"]),
        "distance": float(pred["distance"]),  # out-of-fold AUC-style score
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("drift detectors: %s", out)
    return out
