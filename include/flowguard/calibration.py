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
import os
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CALIBRATED = ("mmd", "classifier")
QUADRATIC_MAX_ROWS = 5000  # per side: beyond it the MMD uses random Fourier features
RFF_FEATURES = 512  # random Fourier features of the linear-time MMD
RFF_SIGMA_ROWS = 2048  # reference rows its median-heuristic bandwidth is computed on
RFF_BLOCK_ROWS = 4096  # rows per float64 block of the feature matrix
PARALLEL_MIN_DRAWS = 20  # fewer draws than this are computed in the calling process


def resolve_mmd_backend(backend: str, n_ref: int, n_cur: int) -> str:
    """``auto``: the quadratic ``fast`` MMD up to QUADRATIC_MAX_ROWS rows per side (its
    sweet spot: 0.05 s at 1 k, 1.6 s at 5 k, 18.8 s at 20 k per side, benchmarks/results/
    drift.json), the linear-time ``rff`` one beyond (the whole day); any other name as it
    is."""
    if backend != "auto":
        return backend
    return "fast" if max(n_ref, n_cur) <= QUADRATIC_MAX_ROWS else "rff"


def _median_sigma(x: np.ndarray, rows: int, seed: int) -> float:
    """alibi-detect's median heuristic (see :func:`mmd2`) on at most ``rows`` rows of x."""
    s = x if len(x) <= rows else x[np.random.default_rng(seed).choice(len(x), rows,
                                                                        replace=False)]
    dist = _sq_dist(s, s)
    n = len(s)
    k = n + (n * n - n) // 2 - 1
    return float(np.sqrt(0.5 * np.partition(dist.ravel(), k)[k]))


def _rff_sums(x: np.ndarray, w: np.ndarray, b: np.ndarray, groups: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group row g of ``groups`` (0/1 over the rows of x): the sum of the rows' feature
    vectors z(x) = sqrt(2/D) cos(xW + b) and the sum of their squared norms; and the same
    for all rows. Block by block in float64: memory is one block, not the N x D matrix."""
    d = w.shape[1]
    sums = np.zeros((groups.shape[0], d))
    norms = np.zeros(groups.shape[0])
    total, total_norm = np.zeros(d), 0.0
    for start in range(0, len(x), RFF_BLOCK_ROWS):
        z = np.sqrt(2.0 / d) * np.cos(x[start:start + RFF_BLOCK_ROWS] @ w + b)
        g = groups[:, start:start + RFF_BLOCK_ROWS]
        q = (z * z).sum(1)
        sums += g @ z
        norms += g @ q
        total += z.sum(0)
        total_norm += float(q.sum())
    return sums, norms, total, np.asarray(total_norm)


def rff_mmd_test(x_ref: np.ndarray, x_cur: np.ndarray, n_permutations: int = 100,
                 p_val: float = 0.05, seed: int = 0, n_features: int = RFF_FEATURES
                 ) -> dict[str, Any]:
    """MMD^2 permutation test in linear time: the Gaussian kernel (median-heuristic bandwidth
    on x_ref, as the quadratic test) approximated by ``n_features`` random Fourier features
    (Rahimi & Recht), k(x, y) ~ z(x).z(y), so the unbiased MMD^2 of a split (a, b) is
    (|S_a|^2 - Q_a) / n(n-1) + (|S_b|^2 - Q_b) / m(m-1) - 2 S_a.S_b / nm with S the sum of
    a group's feature vectors and Q the sum of their squared norms. Every permutation costs
    one (P x N) by (N x D) product: O(N D P) time, O(block x D) memory, whole days fit. The
    p-value and threshold follow the quadratic test's rules; the permutations and the
    features are drawn from ``seed`` (numpy), so both runtimes compute the same numbers."""
    x = np.asarray(x_ref, dtype=np.float64)
    y = np.asarray(x_cur, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 rows per side, got n_ref={n}, n_cur={m}")
    started = time.perf_counter()
    rng = np.random.default_rng([seed, 512])
    sigma = _median_sigma(x, RFF_SIGMA_ROWS, seed)
    w = rng.standard_normal((x.shape[1], n_features)) / sigma
    b = rng.uniform(0.0, 2 * np.pi, n_features)
    total = n + m
    groups = np.zeros((n_permutations + 1, total))
    groups[0, :n] = 1.0
    for p in range(1, n_permutations + 1):
        groups[p, rng.permutation(total)[:n]] = 1.0
    sums, norms, all_sum, all_norm = _rff_sums(np.concatenate([x, y]), w, b, groups)
    other, other_norm = all_sum[None, :] - sums, all_norm - norms
    stat = ((np.einsum("pd,pd->p", sums, sums) - norms) / (n * (n - 1))
            + (np.einsum("pd,pd->p", other, other) - other_norm) / (m * (m - 1))
            - 2 * np.einsum("pd,pd->p", sums, other) / (n * m))
    observed, permuted = float(stat[0]), stat[1:]
    p_value = float((observed <= permuted).mean()) if n_permutations else float("nan")
    threshold = (float(np.sort(permuted)[::-1][int(p_val * n_permutations)])
                 if n_permutations else float("nan"))
    return {"is_drift": p_value < p_val, "p_value": p_value, "distance": observed,
            "threshold": threshold, "sigma": sigma, "backend": "rff",
            "n_features": n_features, "n_permutations": n_permutations,
            "seconds": round(time.perf_counter() - started, 3)}


def rff_mmd2(x_ref: np.ndarray, x_cur: np.ndarray, seed: int = 0,
             n_features: int = RFF_FEATURES) -> float:
    """The statistic :func:`rff_mmd_test` reports (no permutations)."""
    return float(rff_mmd_test(x_ref, x_cur, n_permutations=0, seed=seed,
                              n_features=n_features)["distance"])


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
               seed: int, classifier_estimators: int, mmd_backend: str = "fast",
               mmd_seed: int = 0) -> dict[str, float]:
    """The statistic each calibrated detector reports for one (reference, window) pair;
    the ``rff`` MMD with the check's own features (``mmd_seed``: the check's seed)."""
    from flowguard.drift import classifier_drift

    out: dict[str, float] = {}
    if "mmd" in detectors:
        out["mmd"] = (rff_mmd2(x_ref, x_cur, seed=mmd_seed) if mmd_backend == "rff"
                      else mmd2(x_ref, x_cur, seed=seed))
    if "classifier" in detectors:
        out["classifier"] = float(classifier_drift(
            x_ref, x_cur, seed=seed, n_estimators=classifier_estimators)["distance"])
    return out


def block_null(x_ref: np.ndarray, ref_times: np.ndarray, x_rest: np.ndarray,
               rest_times: np.ndarray, n_cur: int, detectors: list[str] | tuple[str, ...],
               draws: int = 99, block_hours: float = 24.0, seed: int = 0,
               classifier_estimators: int = 100, mmd_backend: str = "fast"
               ) -> dict[str, Any]:
    """Null statistics of block-vs-rest draws around the fixed ``x_ref`` (see module doc).

    ``x_ref`` is the check's reference matrix, ``x_rest`` the other reference rows that
    enter no test (the pool blocks are sampled from); ``*_times`` are their timestamps in
    hours (any origin). A span longer than half the reference period is shortened to half,
    so every draw leaves rows outside it. Returns the statistics per detector and what was
    drawn (for the report and the tests)."""
    import scipy.stats  # noqa: F401 - loaded before the limit (see below)
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    # one thread, as the drift runtime runs (OMP_NUM_THREADS=1): OpenMP threads of the
    # boosting fit spin-wait on a loaded machine and multiply the CPU a draw costs.
    # threadpoolctl limits the libraries loaded when the limit is set: scikit-learn's
    # OpenMP runtime loads with its import, so the import comes first (imported inside,
    # two OpenMP threads stayed: 11 s CPU per classifier fit at n = 1000 instead of 0.26 s)
    with threadpool_limits(1):
        out = _block_null(x_ref, ref_times, x_rest, rest_times, n_cur, detectors, draws,
                          block_hours, seed, classifier_estimators, mmd_backend)
    return {**out, "mmd_backend": "rff" if mmd_backend == "rff" else "fast"}


def calibration_jobs(draws: int) -> int:
    """Worker processes for the draws: ``FLOWGUARD_CALIBRATION_JOBS`` (1 = in this process),
    default the cores up to 4; one for fewer than PARALLEL_MIN_DRAWS draws (a worker's start
    and imports cost more than they save)."""
    raw = os.environ.get("FLOWGUARD_CALIBRATION_JOBS", "").strip()
    try:
        jobs = int(raw) if raw else min(os.cpu_count() or 1, 4)
    except ValueError:
        log.warning("FLOWGUARD_CALIBRATION_JOBS=%r is not an integer: one process", raw)
        jobs = 1
    return max(1, min(jobs, draws)) if draws >= PARALLEL_MIN_DRAWS else 1


def _draw_statistics(x_ref: np.ndarray, x_rest: np.ndarray, plan: list[tuple[Any, ...]],
                     detectors: list[str], classifier_estimators: int, mmd_backend: str,
                     seed: int) -> list[dict[str, float]]:
    """The statistics of planned draws (b, kept x_ref rows, added x_rest rows, window rows)."""
    out = []
    for b, keep, extra, cur_rows in plan:
        ref = x_ref[keep]
        if len(extra):
            ref = np.concatenate([ref, x_rest[extra]])
        out.append(statistics(ref, x_rest[cur_rows], detectors, seed + b + 1,
                              classifier_estimators, mmd_backend, seed))
    return out


def _parallel_statistics(x_ref: np.ndarray, x_rest: np.ndarray, plan: list[tuple[Any, ...]],
                         detectors: list[str], classifier_estimators: int, mmd_backend: str,
                         seed: int, jobs: int) -> list[dict[str, float]]:
    """The planned draws split into ``jobs`` contiguous parts, one per worker process (loky:
    fresh interpreters, one thread each, as the drift runtime runs), results in draw order:
    the same numbers as one process computes."""
    from joblib import Parallel, delayed, parallel_config

    parts = [part.tolist() for part in np.array_split(np.arange(len(plan)), jobs) if len(part)]
    with parallel_config(backend="loky", inner_max_num_threads=1):
        done = Parallel(n_jobs=len(parts))(
            delayed(_draw_statistics)(x_ref, x_rest, [plan[i] for i in part], detectors,
                                      classifier_estimators, mmd_backend, seed)
            for part in parts)
    return [stats for part in done for stats in part]


def _block_null(x_ref: np.ndarray, ref_times: np.ndarray, x_rest: np.ndarray,
                rest_times: np.ndarray, n_cur: int, detectors: list[str] | tuple[str, ...],
                draws: int, block_hours: float, seed: int, classifier_estimators: int,
                mmd_backend: str) -> dict[str, Any]:
    detectors = [d for d in detectors if d in CALIBRATED]
    rng = np.random.default_rng([seed, 15])
    all_times = np.concatenate([ref_times, rest_times])
    period = float(all_times.max() - all_times.min())
    span = min(block_hours, period / 2) if period > 0 else 0.0
    started = time.perf_counter()
    # the draws are planned first, in one random stream (rows only), then computed: in this
    # process or split over worker processes, the same numbers either way
    plan: list[tuple[Any, ...]] = []
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
        cur_rows = rng.choice(block_rows, min(n_cur, len(block_rows)), replace=False)
        need = min(int(in_ref.sum()), len(outside))
        keep = np.flatnonzero(~in_ref)
        extra = rng.choice(outside, need, replace=False) if need else np.empty(0, dtype=int)
        if len(keep) + len(extra) < 10:
            continue
        plan.append((b, keep, extra, cur_rows))
    jobs = calibration_jobs(len(plan))
    if jobs > 1:
        results = _parallel_statistics(x_ref, x_rest, plan, detectors, classifier_estimators,
                                       mmd_backend, seed, jobs)
    else:
        results = _draw_statistics(x_ref, x_rest, plan, detectors, classifier_estimators,
                                   mmd_backend, seed)
    null: dict[str, list[float]] = {d: [] for d in detectors}
    for stats in results:
        for name, value in stats.items():
            null[name].append(value)
    return {"null": {d: [round(v, 8) for v in vs] for d, vs in null.items()},
            "draws": len(plan), "block_hours": span, "period_hours": round(period, 3),
            "median_sizes": [int(np.median([len(k) + len(e) for _, k, e, _ in plan])) if plan
                             else 0,
                             int(np.median([len(c) for *_, c in plan])) if plan else 0],
            "jobs": jobs, "seconds": round(time.perf_counter() - started, 2)}


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
        if name == "mmd" and (d.get("backend") == "rff") != (
                calibration.get("mmd_backend", "fast") == "rff"):
            # a window smaller than sample_size can switch auto's MMD form: this null is
            # another statistic's, so the permutation p-value stands alone
            out[name] = {**d, "calibration": f"not applied: null of the "
                         f"{calibration.get('mmd_backend', 'fast')} MMD, check ran "
                         f"{d.get('backend')}"}
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
            "calibration_draws", "calibration_block_hours", "detectors", "mmd_backend")
    blob = json.dumps([reference_digest, {k: settings.get(k) for k in keys}], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
