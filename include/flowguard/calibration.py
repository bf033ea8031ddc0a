"""A null calibrated on the reference period's own variation (issue 15, item 1).

The permutation tests of :mod:`flowguard.drift` answer "are these two samples
exchangeable?". Real traffic never is: a later hour of the same benign traffic differs from
an earlier one, so a permutation test alarms on every ordinary day. The question a daily
check must answer is "is this window further from the reference than the reference
period's own windows are from each other?".

So each detector's statistic is also computed between *blocks* of the reference period and
the rest, drawn the way production windows are: a block is a contiguous time span of the
reference (``block_hours`` long, placed at a random start, so draws overlap and cover all
hours and days), the "window" side is a sample of the block's rows, the "reference" side is
the check's own fixed x_ref with its rows inside the block replaced by reference rows from
outside the block (so the reference side never shares time with the window side, and stays
as close as possible to the x_ref production uses every day). ``draws`` such statistics
form the null; a window's calibrated p-value is the finite-sample empirical one,
``(1 + #{null >= observed}) / (1 + draws)``, valid for any shape of the statistic (no tail is
fitted: the previous attempt fitted a t tail to a right-skewed MMD and was
anti-conservative). The check uses ``max(permutation p, calibrated p)``: valid under
either null, so a calibration from too few distinct blocks cannot make a detector less
conservative than its permutation test.

Torch-free (numpy, scipy, scikit-learn): it runs in both runtimes. The MMD statistic here is
:func:`flowguard.drift.mmd_permutation_test`'s (unbiased MMD^2, Gaussian kernel,
median-heuristic bandwidth on the reference side) in numpy float64; the classifier statistic
is :func:`flowguard.drift.classifier_drift`'s held-out AUC - 0.5, from that very function.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CALIBRATED = ("mmd", "classifier")


def _sq_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 1e-30)


def mmd2(x_ref: np.ndarray, x_cur: np.ndarray, sigma_rows: int = 8192,
         seed: int = 0) -> float:
    """Unbiased MMD^2 with the Gaussian kernel and the median heuristic on ``x_ref`` (the
    statistic :func:`flowguard.drift.mmd_permutation_test` reports), float64 numpy."""
    x = np.asarray(x_ref, dtype=np.float64)
    y = np.asarray(x_cur, dtype=np.float64)
    s = x if len(x) <= sigma_rows else x[np.random.default_rng(seed).choice(
        len(x), sigma_rows, replace=False)]
    dist = _sq_dist(s, s)
    n = len(s)
    k = n + (n * n - n) // 2 - 1  # alibi-detect's index into the sorted distances
    sigma = float(np.sqrt(0.5 * np.partition(dist.ravel(), k)[k]))
    gamma = 1.0 / (2.0 * sigma**2)
    kxx, kyy, kxy = (np.exp(-gamma * _sq_dist(a, b)) for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    np.fill_diagonal(kxx, 0.0)
    np.fill_diagonal(kyy, 0.0)
    return float(kxx.sum() / (n * (n - 1)) + kyy.sum() / (m * (m - 1)) - 2 * kxy.mean())


def statistics(x_ref: np.ndarray, x_cur: np.ndarray, detectors: list[str] | tuple[str, ...],
               seed: int, classifier_estimators: int) -> dict[str, float]:
    """The statistic each calibrated detector reports for one (reference, window) pair."""
    from flowguard.drift import classifier_drift

    out: dict[str, float] = {}
    if "mmd" in detectors:
        out["mmd"] = mmd2(x_ref, x_cur, seed=seed)
    if "classifier" in detectors:
        out["classifier"] = float(classifier_drift(
            x_ref, x_cur, seed=seed, n_estimators=classifier_estimators)["distance"])
    return out


def block_null(x_ref: np.ndarray, ref_times: np.ndarray, x_rest: np.ndarray,
               rest_times: np.ndarray, n_cur: int, detectors: list[str] | tuple[str, ...],
               draws: int = 99, block_hours: float = 24.0, seed: int = 0,
               classifier_estimators: int = 100) -> dict[str, Any]:
    """Null statistics of block-vs-rest draws around the fixed ``x_ref`` (see module doc).

    ``x_ref`` is the check's reference matrix, ``x_rest`` the other reference rows that
    enter no test (the pool blocks are sampled from); ``*_times`` are their timestamps in
    hours (any origin). A span longer than half the reference period is shortened to half,
    so every draw leaves rows outside it. Returns the statistics per detector and what was
    drawn (for the report and the tests)."""
    from threadpoolctl import threadpool_limits

    # one thread, as the drift runtime runs (OMP_NUM_THREADS=1): OpenMP threads of the
    # boosting fit spin-wait on a loaded machine and multiply the CPU a draw costs
    with threadpool_limits(1):
        return _block_null(x_ref, ref_times, x_rest, rest_times, n_cur, detectors, draws,
                           block_hours, seed, classifier_estimators)


def _block_null(x_ref: np.ndarray, ref_times: np.ndarray, x_rest: np.ndarray,
                rest_times: np.ndarray, n_cur: int, detectors: list[str] | tuple[str, ...],
                draws: int, block_hours: float, seed: int, classifier_estimators: int
                ) -> dict[str, Any]:
    detectors = [d for d in detectors if d in CALIBRATED]
    rng = np.random.default_rng([seed, 15])
    all_times = np.concatenate([ref_times, rest_times])
    period = float(all_times.max() - all_times.min())
    span = min(block_hours, period / 2) if period > 0 else 0.0
    started = time.perf_counter()
    null: dict[str, list[float]] = {d: [] for d in detectors}
    sizes = []
    for b in range(draws):
        if span > 0:
            lo, hi = float(all_times.min()), float(all_times.max())
            start = rng.uniform(lo, max(lo, hi - span))
            in_ref = (ref_times >= start) & (ref_times < start + span)
            in_rest = (rest_times >= start) & (rest_times < start + span)
        else:  # no time information: random subsets (then this is a plain resampling null)
            in_ref = rng.random(len(ref_times)) < n_cur / max(len(ref_times) + n_cur, 1)
            in_rest = rng.random(len(rest_times)) < 0.5
        block_rows, outside = np.flatnonzero(in_rest), np.flatnonzero(~in_rest)
        if len(block_rows) < 10:
            continue
        cur = x_rest[rng.choice(block_rows, min(n_cur, len(block_rows)), replace=False)]
        need = min(int(in_ref.sum()), len(outside))
        ref = x_ref[~in_ref]
        if need:
            ref = np.concatenate([ref, x_rest[rng.choice(outside, need, replace=False)]])
        if len(ref) < 10:
            continue
        sizes.append((len(ref), len(cur)))
        for name, value in statistics(ref, cur, detectors, seed + b + 1,
                                      classifier_estimators).items():
            null[name].append(value)
    return {"null": {d: [round(v, 8) for v in vs] for d, vs in null.items()},
            "draws": len(sizes), "block_hours": span, "period_hours": round(period, 3),
            "median_sizes": [int(np.median([s[0] for s in sizes])) if sizes else 0,
                             int(np.median([s[1] for s in sizes])) if sizes else 0],
            "seconds": round(time.perf_counter() - started, 2)}


def calibrated_p(observed: float, null: list[float]) -> float:
    """Finite-sample empirical p-value: (1 + #{null >= observed}) / (1 + len(null))."""
    values = np.asarray(null, dtype=float)
    return float((1 + (values >= observed).sum()) / (1 + len(values)))


def apply_calibration(detectors: dict[str, Any], calibration: dict[str, Any] | None,
                      p_val: float) -> dict[str, Any]:
    """Give each calibrated detector ``p_value = max(permutation p, calibrated p)`` and
    recompute ``is_drift``; the permutation p-value stays as ``p_value_permutation``."""
    if not calibration:
        return detectors
    out = dict(detectors)
    for name in CALIBRATED:
        d, null = out.get(name), calibration.get("null", {}).get(name)
        if not d or not null:
            continue
        p_cal = calibrated_p(float(d["distance"]), null)
        p_perm = float(d["p_value"])
        out[name] = {**d, "p_value_permutation": p_perm, "p_value_calibrated": round(p_cal, 6),
                     "p_value": max(p_perm, p_cal), "is_drift": max(p_perm, p_cal) < p_val,
                     "null_draws": len(null),
                     "null_q95": round(float(np.quantile(null, 0.95)), 8)}
    return out


def calibration_key(reference_digest: str, settings: dict[str, Any]) -> str:
    """Digest of what a calibration depends on: the reference sample and the settings that
    shape x_ref, the window sample and the statistics."""
    keys = ("sample_size", "reference_size", "seed", "classifier_estimators",
            "calibration_draws", "calibration_block_hours", "detectors")
    blob = json.dumps([reference_digest, {k: settings.get(k) for k in keys}], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
