"""Controlled distribution shifts on canonical flow frames, for tests and benchmarks.

Each shift takes a *pool* of canonical rows (``FEATURE_COLUMNS`` plus ``label``) and returns a
new frame; callers then sample their window from it. Shifts never duplicate rows: identical
rows in a window would inflate a kernel two-sample statistic and fake an alarm. So a shift
that raises a class's share removes rows of the other classes instead of repeating rows, and
a new class adds freshly generated rows.

Kinds (``apply_shift(frame, kind, rng, **params)``):

- ``none``: the rows unchanged (a no-drift control).
- ``new_class``: ``label``, ``share`` (0-1): rows of an attack class the reference never had,
  at ``share`` of the result; drawn from ``pool`` rows of that class if given, else from the
  synthetic generator's profile of that class.
- ``class_mix``: ``weights`` {label: share}: the class mix changed to these shares (labels
  not named keep their relative proportions in the remaining share).
- ``benign_surge``: ``factor`` (>1): ``factor`` times as many benign flows for the same
  attacks (the benign share rises; benign rows themselves are unchanged).
- ``byte_scale``: ``factor``, ``columns`` (default :data:`BYTE_COUNTERS`): byte counters
  multiplied, e.g. a collector that starts counting headers or reports in other units.
- ``remove_class``: ``label``: one attack class disappears.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from flowguard.schema import CICIDS2017_COLUMNS, FEATURE_COLUMNS, LABELS, canonical_label

BENIGN = "BENIGN"
# Byte-valued counters and the rate computed from them (not packet counts or sizes).
BYTE_COUNTERS = ["totlen_fwd_pkts", "totlen_bwd_pkts", "subflow_fwd_byts", "subflow_bwd_byts",
                 "flow_byts_s"]
KINDS = ("none", "new_class", "class_mix", "benign_surge", "byte_scale", "remove_class")


class ShiftError(ValueError):
    """A shift cannot be applied to this frame with these parameters."""


def synthetic_rows(label: str, n: int, rng: np.random.Generator,
                   day: date = date(2017, 7, 7)) -> pd.DataFrame:
    """``n`` canonical rows of one class from the synthetic generator's parametric profile.

    Parametric, not the real-flow pool: rows drawn from a few hundred real flows repeat, and a
    shift must add fresh rows (module docstring)."""
    from flowguard.synth import PROFILES, _flows_for_class

    published = {canonical_label(k): k for k in PROFILES}
    if label not in published:
        raise ShiftError(f"unknown class {label!r}; known: {sorted(published)}")
    raw = _flows_for_class(rng, published[label], n, day, source="parametric")
    raw.columns = [c for _, c in CICIDS2017_COLUMNS]  # same order as the published header
    frame = raw[FEATURE_COLUMNS].astype("float64")
    frame["label"] = label
    return frame


def _check(frame: pd.DataFrame) -> None:
    missing = [c for c in [*FEATURE_COLUMNS, "label"] if c not in frame.columns]
    if missing:
        raise ShiftError(f"frame is not canonical: missing columns {missing[:5]}")
    if frame.empty:
        raise ShiftError("frame has no rows")


def _subsample_to_mix(frame: pd.DataFrame, target: dict[str, float],
                      rng: np.random.Generator) -> pd.DataFrame:
    """Drop rows (never repeat them) until the class shares equal ``target``."""
    counts = frame["label"].value_counts()
    target = {k: v for k, v in target.items() if v > 0}
    absent = [k for k in target if k not in counts]
    if absent:
        raise ShiftError(f"classes {absent} are not in the frame; use new_class to add them")
    # Largest total that every class can supply without repetition.
    total = min(counts[k] / share for k, share in target.items())
    keep = []
    for label, share in target.items():
        rows = np.flatnonzero(frame["label"].to_numpy() == label)
        k = int(round(total * share))
        keep.append(rng.choice(rows, size=min(k, len(rows)), replace=False))
    picked = np.sort(np.concatenate(keep))
    return frame.iloc[picked].reset_index(drop=True)


def apply_shift(frame: pd.DataFrame, kind: str, rng: np.random.Generator,
                **params: Any) -> pd.DataFrame:
    """Return ``frame`` with the shift ``kind`` applied (see the module docstring)."""
    _check(frame)
    frame = frame.reset_index(drop=True)
    if kind == "none":
        return frame.copy()
    if kind == "new_class":
        label, share = params["label"], float(params["share"])
        if not 0 < share < 1:
            raise ShiftError(f"share must be in (0, 1), got {share}")
        if label not in LABELS:
            raise ShiftError(f"unknown class {label!r}")
        n_new = int(round(len(frame) * share / (1 - share)))
        pool = params.get("pool")
        if pool is not None:
            pool = pool[pool["label"] == label]
            if len(pool) < n_new:
                raise ShiftError(f"pool has {len(pool)} rows of {label!r}, {n_new} needed")
            new = pool.iloc[rng.choice(len(pool), n_new, replace=False)]
        else:
            new = synthetic_rows(label, n_new, rng)
        out = pd.concat([frame, new[frame.columns.intersection(new.columns)]], ignore_index=True)
        return out.iloc[rng.permutation(len(out))].reset_index(drop=True)
    if kind == "class_mix":
        weights = {str(k): float(v) for k, v in params["weights"].items()}
        if sum(weights.values()) > 1 + 1e-9 or min(weights.values()) < 0:
            raise ShiftError(f"class shares must be >= 0 and sum to <= 1, got {weights}")
        shares = frame["label"].value_counts(normalize=True)
        rest = [k for k in shares.index if k not in weights]
        left = 1 - sum(weights.values())
        rest_total = float(shares[rest].sum()) if rest else 0.0
        target = dict(weights)
        for k in rest:
            target[k] = left * shares[k] / rest_total if rest_total else 0.0
        return _subsample_to_mix(frame, target, rng)
    if kind == "benign_surge":
        factor = float(params.get("factor", 3.0))
        if factor <= 1:
            raise ShiftError(f"a surge needs factor > 1, got {factor}")
        shares = frame["label"].value_counts(normalize=True)
        if BENIGN not in shares or len(shares) == 1:
            raise ShiftError("benign_surge needs benign and attack rows")
        weight = shares * np.where(shares.index == BENIGN, factor, 1.0)
        return _subsample_to_mix(frame, (weight / weight.sum()).to_dict(), rng)
    if kind == "byte_scale":
        factor = float(params.get("factor", 1.5))
        columns = list(params.get("columns", BYTE_COUNTERS))
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise ShiftError(f"unknown columns {unknown}")
        out = frame.copy()
        out[columns] = out[columns] * factor
        return out
    if kind == "remove_class":
        label = params["label"]
        keep = frame["label"] != label
        if keep.all():
            raise ShiftError(f"class {label!r} is not in the frame")
        if not keep.any():
            raise ShiftError(f"removing {label!r} leaves no rows")
        return frame[keep].reset_index(drop=True)
    raise ShiftError(f"unknown shift kind {kind!r}; one of {KINDS}")
