"""Per-flow novelty test against the champion's reference (issue 15, item 2).

A new attack family starts small: a few percent of a day's flows, too few to move the
window's distribution as a whole, but each of them unlike anything in the reference. So:

1. Score: the mean distance of a flow to its ``k`` nearest reference flows in the check's
   scaled feature space (signed log1p, robust scale), fitted on the reference rows that fit
   the scaler. The nearest neighbour's label is the flow's *nearest known class*.
2. Tail: the scores of the other reference rows (never fitted on: up to 20 000) calibrate
   the reference's own tail. The threshold is the r-th largest calibration score with r
   chosen so that, with probability ``1 - delta`` over the reference sample, the share of
   normal flows above it is at most ``tail`` (the share of exchangeable flows above the
   r-th largest of n is Beta(r, n + 1 - r) distributed). This makes the test valid
   *conditionally on the reference*, the way production runs it (one champion, one
   reference, many days), not only on average over references.
3. Test: the number X of window flows above the threshold against Binomial(m, tail):
   ``p = P(Binomial(m, tail) >= X)``. Conservative by step 2.

The flows above the threshold, most novel first, are listed (row index, score, nearest
known class) for the report and the alert. Torch-free: numpy, scipy, scikit-learn.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

LISTED = 20


def tail_rank(n_cal: int, tail: float, delta: float) -> int:
    """Largest r such that Beta(r, n_cal + 1 - r).ppf(1 - delta) <= tail (at least 1)."""
    from scipy.stats import beta

    r = max(1, int(tail * (n_cal + 1)))
    while r > 1 and beta.ppf(1 - delta, r, n_cal + 1 - r) > tail:
        r -= 1
    return r


def novelty_test(x_fit: np.ndarray, x_cal: np.ndarray, x_win: np.ndarray,
                 fit_labels: np.ndarray | None = None, tail: float = 0.005,
                 delta: float = 0.05, neighbours: int = 5, p_val: float = 0.05,
                 listed: int = LISTED) -> dict[str, Any]:
    """Binomial test on the share of window flows beyond the reference's own tail."""
    from scipy.stats import binom
    from sklearn.neighbors import NearestNeighbors

    if len(x_fit) <= neighbours or len(x_cal) < 20 or len(x_win) < 1:
        raise ValueError(f"novelty test needs more than {neighbours} fit rows, 20 calibration "
                         f"rows and a window row; got {len(x_fit)}, {len(x_cal)}, {len(x_win)}")
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(1):  # one thread, as the drift runtime: no spin-waiting under load
        knn = NearestNeighbors(n_neighbors=neighbours).fit(np.asarray(x_fit, dtype=np.float32))
        cal = knn.kneighbors(np.asarray(x_cal, dtype=np.float32))[0].mean(1)
        dist, index = knn.kneighbors(np.asarray(x_win, dtype=np.float32))
    score = dist.mean(1)
    r = tail_rank(len(cal), tail, delta)
    threshold = float(np.sort(cal)[::-1][r - 1])
    novel = np.flatnonzero(score > threshold)
    m, x = len(score), len(novel)
    p_value = float(binom.sf(x - 1, m, tail)) if x else 1.0
    order = novel[np.argsort(-score[novel])][:listed]
    rows = [{"row": int(i), "score": round(float(score[i]), 4),
             "nearest_class": (str(fit_labels[index[i, 0]]) if fit_labels is not None
                               else None)} for i in order]
    return {"is_drift": p_value < p_val, "p_value": p_value, "n_novel": x, "n_window": m,
            "share_novel": round(x / m, 6), "tail": tail, "delta": delta,
            "expected_at_most": round(tail * m, 2), "threshold": round(threshold, 6),
            "n_fit": len(x_fit), "n_calibration": len(cal), "calibration_rank": r,
            "neighbours": neighbours, "novel": rows,
            "seconds": round(time.perf_counter() - started, 3)}
