"""Monitoring, platform side: configuration, detectors' inputs, the decision, the report.

The detectors themselves run in the drift runtime (:mod:`flowguard.drift`). This side reads
the champion's reference sample (saved with the model at training time) and the window's
flows through the same feature service as training, preprocesses both with statistics
fitted on a *separate* split of the reference (fitting on x_ref itself raises false alarms),
and writes two ``.npy`` matrices for the drift runtime. It also adds prediction drift,
performance drift (where the window has labels) and per-feature KS tests, decides with the
configured policy, applies the retraining cooldown (a durable ledger next to the reports)
and writes the HTML + JSON report.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowguard.profiles import active
from flowguard.schema import FEATURE_COLUMNS, UNSW_NB15_NULLABLE, as_utc

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import pandas as pd

log = logging.getLogger(__name__)

VOTERS = ("mmd", "classifier", "novelty", "prediction", "performance", "harm")
P_VOTERS = ("mmd", "classifier", "novelty", "prediction")  # vote with a p-value
POLICIES = ("holm", "all", "any")
MMD_BACKENDS = ("auto", "fast", "rff", "alibi")


class ConfigError(ValueError):
    """The monitoring configuration is invalid; the message names the file and key."""


@dataclass(frozen=True)
class MonitoringConfig:
    """Settings of one drift check; defaults documented in ``config/monitoring.yaml``."""

    sample_size: int = 1000
    reference_size: int = 1000
    p_value: float = 0.05
    n_permutations: int = 100
    mmd_backend: str = "auto"
    detectors: tuple[str, ...] = ("mmd", "classifier", "novelty")
    classifier_estimators: int = 100
    performance_drop: float = 0.05
    policy: str = "holm"
    calibration_draws: int = 99
    calibration_block_hours: float = 24.0
    novelty_tail: float = 0.005
    novelty_delta: float = 0.05
    novelty_neighbours: int = 5
    novelty_max_flows: int = 50_000
    harm_drop: float = 0.05
    cooldown_days: int = 2
    top_features: int = 5
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["detectors"] = list(self.detectors)
        return out

    @property
    def drift_detectors(self) -> list[str]:
        """The voters that run in the drift runtime (the others are computed here)."""
        return [d for d in self.detectors if d in ("mmd", "classifier")]


_RANGES: dict[str, tuple[float, float]] = {
    "sample_size": (10, 1_000_000), "reference_size": (10, 1_000_000),
    "p_value": (1e-6, 0.5), "n_permutations": (10, 100_000),
    "classifier_estimators": (1, 10_000), "performance_drop": (0.0, 1.0),
    "cooldown_days": (0, 3650), "top_features": (1, len(FEATURE_COLUMNS)), "seed": (0, 2**31),
    "calibration_draws": (0, 10_000), "calibration_block_hours": (0.01, 24 * 365),
    "novelty_tail": (1e-5, 0.5), "novelty_delta": (1e-4, 0.5), "novelty_neighbours": (1, 100),
    "novelty_max_flows": (100, 10_000_000), "harm_drop": (0.0, 1.0),
}


def _coerce(source: str, key: str, value: Any, default: Any) -> Any:
    where = f"{source}: {key}"
    if key == "detectors":
        items = [value] if isinstance(value, str) else list(value or [])
        bad = [d for d in items if d not in VOTERS]
        if bad or not items:
            raise ConfigError(f"{where}: {value!r} must be a non-empty list of {list(VOTERS)}")
        return tuple(dict.fromkeys(items))
    if key == "policy":
        if value not in POLICIES:
            raise ConfigError(f"{where}: {value!r} must be one of {list(POLICIES)}")
        return value
    if key == "mmd_backend":
        if value not in MMD_BACKENDS:
            raise ConfigError(f"{where}: {value!r} must be one of {list(MMD_BACKENDS)}")
        return value
    kind = type(default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and float(value) != int(value)):
        raise ConfigError(f"{where}: {value!r} is not a{'n integer' if kind is int else ' number'}")
    value = kind(value)
    low, high = _RANGES[key]
    if not low <= value <= high:
        raise ConfigError(f"{where}: {value} is outside [{low:g}, {high:g}]")
    return value


def load_monitoring_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None
                           ) -> MonitoringConfig:
    """Read the YAML config (default: settings' ``monitoring_config``) and apply overrides
    (Airflow Params, CLI options; ``None`` values mean "keep the file's"). Unknown keys and
    bad values raise :class:`ConfigError` naming the file or source and the key."""
    import yaml

    if path is None:
        from flowguard.config import get_settings

        path = get_settings().monitoring_config
    defaults = MonitoringConfig()
    known = {f.name: getattr(defaults, f.name) for f in fields(MonitoringConfig)}
    values: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        for key, value in loaded.items():
            if key not in known:
                raise ConfigError(f"{path}: unknown key {key!r}; known: {sorted(known)}")
            values[key] = _coerce(str(path), key, value, known[key])
    else:
        log.warning("monitoring config %s not found: using the built-in defaults", path)
    for key, value in (overrides or {}).items():
        if value is None or value == "":
            continue
        if key not in known:
            raise ConfigError(f"override: unknown key {key!r}; known: {sorted(known)}")
        values[key] = _coerce("override", key, value, known[key])
    return MonitoringConfig(**values)


def signed_log(x: np.ndarray) -> np.ndarray:
    """Tame heavy tails (bytes/s spans 10 orders of magnitude) while keeping the sign."""
    return np.sign(x) * np.log1p(np.abs(x))


def drift_features() -> list[str]:
    """The features the drift tests compare: the active profile's flow statistics (the model's
    own inputs, not the host context or the categorical codes)."""
    return active().block_features


def _values(frame: pd.DataFrame) -> np.ndarray:
    """The drift features as floats; a field that does not apply to a flow (UNSW-NB15's
    nullable HTTP/FTP counters, NaN) counts as 0, so every flow has a point in the space.
    Validated CICIDS2017 flows have no missing value: unchanged for them."""
    return np.nan_to_num(frame[drift_features()].to_numpy(dtype=float), nan=0.0,
                         posinf=np.inf, neginf=-np.inf)


def fit_scaler(fit_rows: pd.DataFrame) -> dict[str, list[float]]:
    z = signed_log(_values(fit_rows))
    center = np.median(z, axis=0)
    spread = np.percentile(z, 75, axis=0) - np.percentile(z, 25, axis=0)
    spread = np.where(spread > 0, spread, z.std(axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    return {"center": center.tolist(), "scale": spread.tolist()}


def transform(frame: pd.DataFrame, scaler: dict[str, list[float]]) -> np.ndarray:
    z = signed_log(_values(frame))
    return ((z - np.asarray(scaler["center"])) / np.asarray(scaler["scale"])).astype(np.float32)


SCALER_ROWS = 5000  # reference rows the preprocessing is fitted on (at most half the sample)


class DriftInputError(ValueError):
    """A reference or current file cannot be used for a drift check."""


class ReferenceTooSmall(DriftInputError):
    """The (champion's saved) reference sample cannot give x_ref the configured size."""


def reference_split(n_reference: int) -> tuple[int, int]:
    """(rows that fit the scaler, most rows x_ref can have) for a reference sample of
    ``n_reference`` rows: the scaler gets ``min(SCALER_ROWS, n_reference // 2)``, x_ref is
    drawn from the rest. A saved sample of ``reference_size + 5000`` rows (training saves
    25 000: x_ref up to 20 000) is enough."""
    n_fit = min(SCALER_ROWS, n_reference // 2)
    return n_fit, n_reference - n_fit


def prepare_inputs(reference: pd.DataFrame, current: pd.DataFrame, out_dir: Path,
                   n: int = 1000, seed: int = 0, reference_size: int | None = None
                   ) -> dict[str, Any]:
    """Split the reference into a preprocessing part and x_ref, sample the window, save both.

    The scaler is fitted on ``min(SCALER_ROWS, half)`` reference rows that never enter a
    test; x_ref gets ``reference_size`` rows (default ``n``) of the others. If the reference
    sample is too small for that, :class:`ReferenceTooSmall` says so (no silent shrinking,
    no resampling: the configured size is the size the false-alarm rate and power were
    measured at). The window is sampled down to ``n`` rows (a smaller window is used whole).
    """
    if len(reference) < 4 or len(current) < 2:
        raise ValueError(f"too few rows for a drift check: reference {len(reference)}, "
                         f"window {len(current)}")
    wanted = n if reference_size is None else reference_size
    n_fit, available = reference_split(len(reference))
    if wanted > available:
        raise ReferenceTooSmall(
            f"reference_size={wanted} but the reference sample has {len(reference)} rows: "
            f"{n_fit} fit the preprocessing, so x_ref can have at most {available}. Lower "
            f"reference_size (config/monitoring.yaml or the run's Param) to <= {available}, "
            f"or retrain the champion: training saves a reference sample of up to 25 000 "
            f"rows (training.REFERENCE_ROWS), enough for reference_size <= 20 000 when the "
            "training set has that many rows (docs/monitoring.md)")
    fit_rows, ref_rows, _rest = split_reference(reference, seed, wanted)
    cur_rows = current.sample(min(n, len(current)), random_state=seed)
    scaler = fit_scaler(fit_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "x_ref.npy", transform(ref_rows, scaler))
    np.save(out_dir / "x_cur.npy", transform(cur_rows, scaler))
    (out_dir / "scaler.json").write_text(json.dumps(scaler))
    return {"ref_path": str(out_dir / "x_ref.npy"), "cur_path": str(out_dir / "x_cur.npy"),
            "n_ref": len(ref_rows), "n_cur": len(cur_rows), "n_window": len(current),
            "n_scaler_fit": len(fit_rows)}


def split_reference(reference: pd.DataFrame, seed: int, reference_size: int
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(scaler fit rows, x_ref rows, the rest) of the reference sample, as every check draws
    them: one seeded permutation, the scaler's share first, then x_ref."""
    n_fit, _ = reference_split(len(reference))
    order = np.random.default_rng(seed).permutation(len(reference))
    return (reference.iloc[order[:n_fit]], reference.iloc[order[n_fit:n_fit + reference_size]],
            reference.iloc[order[n_fit + reference_size:]])


def _hours(frame: pd.DataFrame) -> np.ndarray:
    """Row times in hours since the epoch (all zero when the frame has no timestamps)."""
    import pandas as pd

    if "event_timestamp" not in frame.columns:
        return np.zeros(len(frame))
    ts = pd.to_datetime(frame["event_timestamp"], utc=True, errors="coerce")
    hours = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy() / 3600.0
    return np.nan_to_num(hours, nan=float(np.nanmedian(hours)) if np.isfinite(hours).any()
                         else 0.0)


def frame_digest(frame: pd.DataFrame) -> str:
    """Content digest of a frame's features and timestamps (what a calibration depends on)."""
    import hashlib

    import pandas as pd

    cols = [c for c in [*drift_features(), "event_timestamp"] if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def calibrate(reference: pd.DataFrame, config: MonitoringConfig,
              cache_dir: Path | None = None, saved: dict[str, Any] | None = None
              ) -> dict[str, Any] | None:
    """The block-calibrated null of the check's detectors for this reference
    (:mod:`flowguard.calibration`), keyed by the reference's content and the settings it
    depends on. In order: ``saved`` (the calibration training stored with the champion) if
    its key matches, the cache in ``cache_dir``, else computed here (~0.3 s per draw at the
    default sizes) and cached. ``source`` says which. ``None`` when disabled
    (``calibration_draws: 0``) or no detector needs it."""
    from flowguard.calibration import block_null, calibration_key, resolve_mmd_backend

    detectors = [d for d in config.drift_detectors]
    if config.calibration_draws == 0 or not detectors:
        return None
    key = calibration_key(frame_digest(reference), config.as_dict())
    path = cache_dir / f"calibration-{key}.json" if cache_dir is not None else None
    if saved is not None:
        if saved.get("key") == key:
            out = {**saved, "source": "champion"}
            if path is not None and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_json(path, out)
            return out
        log.warning("the champion's saved calibration (key %s) is not this check's (key %s: "
                    "other settings or reference rows); computing it", saved.get("key"), key)
    if path is not None and path.exists():
        return {**json.loads(path.read_text()), "source": "cache"}
    fit_rows, ref_rows, rest = split_reference(reference, config.seed, config.reference_size)
    if len(rest) < 20:
        log.warning("calibration skipped: only %d reference rows outside the scaler's and "
                    "x_ref's (permutation p-values only)", len(rest))
        return None
    scaler = fit_scaler(fit_rows)
    out = block_null(transform(ref_rows, scaler), _hours(ref_rows), transform(rest, scaler),
                     _hours(rest), config.sample_size, detectors,
                     draws=config.calibration_draws, block_hours=config.calibration_block_hours,
                     seed=config.seed, classifier_estimators=config.classifier_estimators,
                     mmd_backend=resolve_mmd_backend(config.mmd_backend, len(ref_rows),
                                                     config.sample_size))
    out["key"] = key
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, out)
    return {**out, "source": "computed"}


def novelty_check(reference: pd.DataFrame, current: pd.DataFrame, config: MonitoringConfig
                  ) -> dict[str, Any]:
    """The per-flow novelty test (:mod:`flowguard.novelty`) on the whole window (up to
    ``novelty_max_flows``, sampled beyond), the novel flows named by id, source host, time
    and nearest known class."""
    from flowguard.novelty import novelty_test

    fit_rows, ref_rows, rest = split_reference(reference, config.seed, config.reference_size)
    scaler = fit_scaler(fit_rows)
    window = current if len(current) <= config.novelty_max_flows else current.sample(
        config.novelty_max_flows, random_state=config.seed)
    labels = fit_rows["label"].astype(str).to_numpy() if "label" in fit_rows.columns else None
    import pandas as pd

    result = novelty_test(transform(fit_rows, scaler),
                          transform(pd.concat([ref_rows, rest]), scaler),
                          transform(window, scaler), labels, tail=config.novelty_tail,
                          delta=config.novelty_delta, neighbours=config.novelty_neighbours,
                          p_val=config.p_value)
    for row in result["novel"]:
        flow = window.iloc[row["row"]]
        for col in ("flow_uid", "src_ip", "dst_ip", "event_timestamp", "label"):
            if col in window.columns:
                value = flow[col]
                row[col if col != "label" else "window_label"] = (
                    None if value is None or (isinstance(value, float) and np.isnan(value))
                    else str(value))
    return result


def prediction_drift(ref_pred: np.ndarray, cur_pred: np.ndarray, classes: list[str]
                     ) -> dict[str, Any]:
    """Chi-square test of the champion's predicted class mix, reference vs window."""
    from scipy.stats import chi2_contingency

    ref_counts = np.array([(ref_pred == c).sum() for c in classes])
    cur_counts = np.array([(cur_pred == c).sum() for c in classes])
    keep = (ref_counts + cur_counts) > 0
    table = np.vstack([ref_counts[keep], cur_counts[keep]])
    p_value = 1.0 if table.shape[1] < 2 else float(chi2_contingency(table)[1])
    return {"p_value": p_value,
            "reference_mix": {c: int(n) for c, n in zip(classes, ref_counts, strict=True) if n},
            "window_mix": {c: int(n) for c, n in zip(classes, cur_counts, strict=True) if n}}


def performance_drift(labels: np.ndarray, predicted: np.ndarray, baseline_macro_f1: float,
                      drop: float = 0.05) -> dict[str, Any] | None:
    """Macro-F1 of the champion on the window's labelled flows vs its baseline (the gate's
    holdout score); ``is_drift`` when it fell by more than ``drop``. ``None`` without labels."""
    from sklearn.metrics import f1_score

    known = np.array([isinstance(v, str) and v != "" for v in labels])
    if known.sum() == 0:
        return None
    f1 = float(f1_score(labels[known], predicted[known], average="macro", zero_division=0))
    return {"window_macro_f1": round(f1, 4), "baseline_macro_f1": round(baseline_macro_f1, 4),
            "drop": round(baseline_macro_f1 - f1, 4), "max_drop": drop,
            "n_labelled": int(known.sum()), "is_drift": bool(baseline_macro_f1 - f1 > drop)}


def _histogram(ref: np.ndarray, cur: np.ndarray, bins: int = 20) -> dict[str, list[float]]:
    """Shared-edge histograms (shares) of signed-log values, for the report's plots."""
    a, b = signed_log(ref[np.isfinite(ref)]), signed_log(cur[np.isfinite(cur)])
    both = np.concatenate([a, b])
    low, high = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    ref_counts = np.histogram(a, edges)[0] / max(len(a), 1)
    cur_counts = np.histogram(b, edges)[0] / max(len(b), 1)
    return {"edges": np.round(edges, 4).tolist(), "reference": np.round(ref_counts, 4).tolist(),
            "window": np.round(cur_counts, 4).tolist()}


def feature_shift(reference: pd.DataFrame, current: pd.DataFrame, top: int = 5
                  ) -> list[dict[str, Any]]:
    """Features ranked by two-sample Kolmogorov-Smirnov statistic, Bonferroni-adjusted
    p-values over all features, with both distributions (signed-log histograms)."""
    from scipy.stats import ks_2samp

    rows = []
    features = drift_features()
    for col in features:
        ref, cur = reference[col].to_numpy(dtype=float), current[col].to_numpy(dtype=float)
        stat, p = ks_2samp(ref[np.isfinite(ref)], cur[np.isfinite(cur)])
        rows.append({"feature": col, "ks": float(stat),
                     "p_adjusted": float(min(1.0, p * len(features)))})
    ranked = sorted(rows, key=lambda r: (-r["ks"], r["feature"]))[:top]
    for row in ranked:
        row["histogram"] = _histogram(reference[row["feature"]].to_numpy(dtype=float),
                                      current[row["feature"]].to_numpy(dtype=float))
    return ranked


def holm(p_values: dict[str, float], alpha: float) -> list[str]:
    """Holm's step-down procedure: the hypotheses (detectors) rejected at family-wise level
    ``alpha``. The family is rejected as a whole (some detector flags) exactly when the
    smallest p-value is at most alpha / k, so the decision's false-alarm rate is at most
    ``alpha`` whatever the dependence between the detectors."""
    ranked = sorted(p_values.items(), key=lambda kv: (kv[1], kv[0]))
    rejected = []
    for i, (name, p) in enumerate(ranked):
        if p > alpha / (len(ranked) - i):
            break
        rejected.append(name)
    return rejected


def decide(detectors: dict[str, Any], policy: str = "holm",
           voters: tuple[str, ...] | list[str] = ("mmd", "classifier", "novelty"),
           p_val: float = 0.05) -> tuple[bool, str]:
    """Drift decision over the voting detectors present. ``holm`` (default): Holm over the
    p-value voters at ``p_val`` (one false-alarm budget for the decision); the harm voters
    (``performance``: measured macro-F1 drop, ``harm``: estimated drop) add their own flag.
    ``all``: every voter must flag its own test; ``any``: one suffices. A voter without a
    result (performance without labels) abstains."""
    present = [n for n in voters if detectors.get(n) is not None]
    if not present:
        return False, f"no drift (no voting detector of {list(voters)} produced a result)"
    parts = []
    for name in present:
        d = detectors[name]
        parts.append(f"{name} p={d['p_value']:.3g}" if "p_value" in d
                     else f"{name} drop={d.get('drop', 0):.3f}")
    if policy == "holm":
        p_values = {n: float(detectors[n]["p_value"]) for n in present if n in P_VOTERS}
        rejected = holm(p_values, p_val) if p_values else []
        rejected += [n for n in present if n not in P_VOTERS and detectors[n]["is_drift"]]
        drift = bool(rejected)
        flagged = f"; flagged: {', '.join(rejected)}" if rejected else ""
        return drift, (f"{'drift' if drift else 'no drift'} (holm at {p_val:g} over "
                       f"{', '.join(parts)}{flagged})")
    flags = {name: bool(detectors[name]["is_drift"]) for name in present}
    drift = all(flags.values()) if policy == "all" else any(flags.values())
    return drift, f"{'drift' if drift else 'no drift'} ({policy} of {', '.join(parts)})"


# ---------------------------------------------------------------- cooldown and history


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    tmp.replace(path)


def retrain_decision(ledger: Path, window: str, champion_version: str, drift: bool,
                     cooldown_days: int, run_id: str = "") -> dict[str, Any]:
    """Whether this window's drift may trigger retraining; records the trigger if so.

    At most one trigger per window (a second run for the same day does not trigger again;
    a retry of the deciding run gets the same answer, so a failure after this point cannot
    lose the trigger), and none within ``cooldown_days`` windows of a trigger made against the
    same champion version (the retraining it started is the answer; a new champion resets
    the cooldown). The ledger is a JSON file, updated under a file lock.
    """
    if not drift:
        return {"retrain": False, "why": "no drift"}
    with _locked(ledger):
        entries = json.loads(ledger.read_text()) if ledger.exists() else []
        day = date.fromisoformat(window)
        for entry in entries:
            if entry["window"] == window:
                if run_id and entry.get("run_id") == run_id:
                    # A retry of the run that recorded it: the same answer (the trigger's
                    # run id is derived from the Airflow run id, so it cannot run twice).
                    return {"retrain": True, "why": "drift; trigger recorded by this run"}
                return {"retrain": False, "why": f"already triggered for window {window} "
                        f"(run {entry.get('run_id') or '?'})"}
        recent = [e for e in entries if e["champion_version"] == str(champion_version)
                  and abs((day - date.fromisoformat(e["window"])).days) < cooldown_days]
        if recent:
            last = max(recent, key=lambda e: e["window"])
            return {"retrain": False, "why": (
                f"cooldown: retraining was triggered for window {last['window']} against "
                f"champion v{champion_version}; no new trigger within {cooldown_days} days "
                "until a new champion is promoted")}
        entries.append({"window": window, "champion_version": str(champion_version),
                        "run_id": run_id, "decided_at": datetime.now(UTC).isoformat()})
        _write_json(ledger, sorted(entries, key=lambda e: e["window"]))
    return {"retrain": True, "why": "drift; no trigger for this window or within the cooldown"}


def action_sentence(action: dict[str, Any]) -> str:
    """What the run did, as one sentence: "Retraining triggered (...)." or "Retraining not
    triggered: <why>." (the ledger's reason reads as a reason, not as a second decision)."""
    why = str(action.get("why", "")).removeprefix("drift; ").strip()
    if action.get("retrain"):
        return f"Retraining triggered ({why})." if why else "Retraining triggered."
    return f"Retraining not triggered: {why}." if why else "Retraining not triggered."


def record_history(history: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Add this run's p-values to the history (one entry per window, the latest run wins);
    return the history sorted by window."""
    with _locked(history):
        entries = json.loads(history.read_text()) if history.exists() else []
        entries = [e for e in entries if e["window"] != entry["window"]] + [entry]
        entries.sort(key=lambda e: e["window"])
        _write_json(history, entries)
    return entries


# ---------------------------------------------------------------- report


def _svg_hist(hist: dict[str, list[float]], width: int = 320, height: int = 90) -> str:
    ref, cur = hist["reference"], hist["window"]
    peak = max([*ref, *cur, 1e-9])
    bar = width / len(ref)
    bars = []
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        for value, color, offset in ((r, "#1f77b4", 0.0), (c, "#d62728", bar / 2)):
            h = height * value / peak
            bars.append(f'<rect x="{i * bar + offset:.1f}" y="{height - h:.1f}" '
                        f'width="{bar / 2 - 0.5:.1f}" height="{h:.1f}" fill="{color}"/>')
    lo, hi = hist["edges"][0], hist["edges"][-1]
    return (f'<svg width="{width}" height="{height + 14}" role="img">{"".join(bars)}'
            f'<text x="0" y="{height + 12}" font-size="10">{lo:g}</text>'
            f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">{hi:g}'
            "</text></svg>")


def _history(history: list[dict[str, Any]], p_val: float) -> str:
    """The p-value history, drawn by matplotlib as on the health page: p = 0 shows on the
    floor as its own marker, detectors side by side (:func:`flowguard.health.draw_p_values`)."""
    from flowguard.health import p_value_history_svg

    return p_value_history_svg(history, p_val)


def _calibration_html(calibration: dict[str, Any] | None, det: dict[str, Any]) -> str:
    if not calibration:
        return ("<p>Calibrated null: none (disabled, or the reference is too small); MMD and "
                "classifier p-values are their permutation / held-out tests'.</p>")
    parts = ", ".join(
        f"{name}: permutation p={det[name]['p_value_permutation']:.3g}, calibrated "
        f"p={det[name]['p_value_calibrated']:.3g}" for name in ("mmd", "classifier")
        if det.get(name) and "p_value_calibrated" in det[name])
    return (f"<p>Calibrated null: {calibration['draws']} draws of {calibration['block_hours']:g}"
            f"-hour blocks of the {calibration['period_hours']:g}-hour reference period vs the "
            f"rest; each detector's p-value is the larger of its permutation and calibrated "
            f"p-values ({html.escape(parts)}). "
            f"{_SOURCES.get(str(calibration.get('source')), '')}</p>")


_SOURCES = {"champion": "Saved with the champion at training.",
            "cache": "Read from this home's calibration cache.",
            "computed": "Computed by this check (the champion saved none for these settings)."}


def _novel_html(novelty: dict[str, Any] | None) -> str:
    if not novelty:
        return ""
    cols = [c for c in ("flow_uid", "src_ip", "event_timestamp", "nearest_class", "score")
            if any(c in r for r in novelty["novel"])]
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols)
                   + "</tr>" for r in novelty["novel"])
    table = (f"<table><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{body}</table>"
             if body else "")
    return (f"<h2>Novel flows: {novelty['n_novel']} of {novelty['n_window']} beyond the "
            f"reference's own tail (expected at most {novelty['expected_at_most']:g}), "
            f"p={novelty['p_value']:.3g}</h2>"
            f"<p>Flows further from their {novelty['neighbours']} nearest reference flows than "
            f"all but {novelty['tail']:g} of the reference's own flows; most novel first.</p>"
            f"{table}")


# ---------------------------------------------------------------- served traffic

SERVED = "served"  # lake/served/date=<day served>/ (flowguard.serve.ServedLog)
# fewer flows served by the champion than this: class mix only, no per-feature KS tests
MIN_SERVED_FOR_FEATURES = 30


def served_window(lake_dir: Path, start: Any, end: Any) -> pd.DataFrame:
    """The window's flows as ``flowguard serve`` answered them: rows of ``lake/served/``
    whose ``event_timestamp`` falls in ``[start, end)``, whenever they were served.

    The window is a day of flows by event time, like the monitor's other inputs; the served
    partitions are by the day served, which is the same day live and later in a replay (the
    demo's 2017 week scored today). Partitions from the day before ``start`` on are read
    (clock skew), earlier ones cannot hold the window's flows. An empty frame when nothing
    of the window was served.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    lo, hi = as_utc(start), as_utc(end)
    first = f"date={(lo - pd.Timedelta(days=1)):%Y-%m-%d}"
    files = [str(f) for d in sorted((Path(lake_dir) / SERVED).glob("date=*"))
             if d.is_dir() and d.name >= first for f in sorted(d.glob("*.parquet"))]
    if not files:
        return pd.DataFrame()
    stamp = pa.timestamp("ns", tz="UTC")
    when = ds.field("event_timestamp")
    table = ds.dataset(files, format="parquet").to_table(
        filter=(when >= pa.scalar(lo.value, stamp)) & (when < pa.scalar(hi.value, stamp)))
    return table.to_pandas().sort_values("served_at", kind="stable").reset_index(drop=True)


def served_traffic_check(reference: pd.DataFrame, reference_pred: np.ndarray,
                         served: pd.DataFrame, classes: list[str], champion_version: str,
                         p_value: float, top: int = 5) -> dict[str, Any] | None:
    """Prediction drift on served traffic: the class mix the champion actually answered
    for the window's flows (``served``, from :func:`served_window`) against its predictions
    on the reference (chi-square), and the served flows' features against the reference
    (KS, as :func:`feature_shift`). Only the flows the champion scored are compared (a
    version that served earlier in the day predicts differently); the others are counted.

    Reported, not a voter: the decision's false-alarm rate is calibrated over the window's
    detectors. ``None`` when nothing of the window was served.
    """
    if served.empty:
        return None
    versions = served["model_version"].astype(str)
    compared = served[versions == str(champion_version)]
    result: dict[str, Any] = {
        "n_served": len(served), "n_compared": len(compared),
        "champion_version": str(champion_version),
        "by_version": {str(k): int(v) for k, v in versions.value_counts().items()},
        "host_features_fresh_share": round(float(served["host_features_fresh"].mean()), 4),
        "served_from": str(served["served_at"].min()), "served_to": str(served["served_at"].max()),
        "prediction": None, "top_features": [], "note": ""}
    if compared.empty:
        result["note"] = (f"none of the window's served flows was scored by the champion "
                          f"v{champion_version}: nothing to compare")
        return result
    mix = prediction_drift(reference_pred, compared["predicted_label"].to_numpy(dtype=object),
                           classes)
    result["prediction"] = {**mix, "is_drift": bool(mix["p_value"] < p_value)}
    result["mean_confidence"] = round(float(compared["confidence"].mean()), 4)
    if len(compared) >= MIN_SERVED_FOR_FEATURES:
        result["top_features"] = feature_shift(reference, compared, top=top)
    else:
        result["note"] = (f"{len(compared)} flows served by the champion: class mix only, no "
                          f"feature tests below {MIN_SERVED_FOR_FEATURES}")
    return result


def _served_html(served: dict[str, Any] | None) -> str:
    if not served:
        return ("<h2>Served traffic</h2><p>None of this window's flows was scored by "
                "<code>flowguard serve</code>.</p>")
    versions = ", ".join(f"v{k}: {v}" for k, v in served["by_version"].items())
    head = (f"<h2>Served traffic: {served['n_served']} of this window's flows scored by "
            "<code>flowguard serve</code></h2>"
            f"<p>By model version: {html.escape(versions)}; compared: the "
            f"{served['n_compared']} the champion v{html.escape(served['champion_version'])} "
            f"answered. Host features fresh for {served['host_features_fresh_share']:.1%}; "
            f"served {html.escape(served['served_from'])} to {html.escape(served['served_to'])}."
            " Reported, not a voter in the decision.</p>")
    pred = served.get("prediction")
    if pred:
        head += (f"<p><b>Served class mix vs the champion's reference predictions: chi-square "
                 f"p={pred['p_value']:.3g} ({'DRIFT' if pred['is_drift'] else 'ok'})</b></p>"
                 f"<pre>reference: {html.escape(json.dumps(pred['reference_mix']))}\n"
                 f"served:    {html.escape(json.dumps(pred['window_mix']))}</pre>")
    if served.get("note"):
        head += f"<p>{html.escape(served['note'])}</p>"
    if served.get("top_features"):
        head += ("<table><tr><th>feature (served vs reference)</th><th>KS</th><th>p adj.</th>"
                 "<th>distribution: <span style=\"color:#1f77b4\">&#9632; reference</span> "
                 "<span style=\"color:#d62728\">&#9632; served</span></th></tr>" + "".join(
                     f"<tr><td>{html.escape(f['feature'])}</td><td>{f['ks']:.3f}</td>"
                     f"<td>{f['p_adjusted']:.3g}</td><td>{_svg_hist(f['histogram'])}</td></tr>"
                     for f in served["top_features"]) + "</table>")
    return head


def write_report(report: dict[str, Any], out_dir: Path,
                 history: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Write the run's report as JSON and a self-contained HTML page: decision, detectors,
    top drifted features with both distributions, p-value history, class mix."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "drift_report.json"
    json_path.write_text(json.dumps({**report, "history": history or []}, indent=2,
                                    default=str))
    det = report["detectors"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{det[name]['p_value']:.4g}</td>"
        f"<td>{'DRIFT' if det[name]['is_drift'] else 'ok'}</td>"
        f"<td>{det[name].get('seconds', '')}</td></tr>"
        for name in ("mmd", "classifier", "novelty", "prediction") if det.get(name))
    perf = det.get("performance")
    if perf:
        rows += (f"<tr><td>performance</td><td>macro-F1 {perf['window_macro_f1']:.3f} vs "
                 f"{perf['baseline_macro_f1']:.3f}</td>"
                 f"<td>{'DRIFT' if perf['is_drift'] else 'ok'}</td><td></td></tr>")
    harm = det.get("harm")
    if harm:
        rows += (f"<tr><td>harm (estimated)</td><td>macro-F1 {harm['estimated_macro_f1']:.3f}"
                 f" vs {harm['reference_estimated_macro_f1']:.3f} on the reference</td>"
                 f"<td>{'DRIFT' if harm['is_drift'] else 'ok'}</td><td></td></tr>")
    feats = "".join(
        f"<tr><td>{html.escape(f['feature'])}</td><td>{f['ks']:.3f}</td>"
        f"<td>{f['p_adjusted']:.3g}</td><td>{_svg_hist(f['histogram']) if 'histogram' in f else ''}"
        "</td></tr>" for f in report["top_features"])
    mix = report["prediction_drift"]
    action = report.get("action", {})
    page = f"""<!doctype html><meta charset="utf-8"><title>Drift report {html.escape(report['window'])}</title>
<style>body{{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em}}td,th{{padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:middle}}
pre{{white-space:pre-wrap;overflow-wrap:anywhere}}svg{{max-width:100%;height:auto}}</style>
<h1>Drift report: window {html.escape(report['window'])}</h1>
<p><b>Decision: {html.escape(report['decision'])}</b>.
{html.escape(action_sentence(action))}</p>
<p>Champion v{html.escape(str(report['champion_version']))}; reference n={det['n_ref']}, window
n={det['n_cur']} sampled from {report['n_window']} flows; policy <code>{html.escape(str(report.get('policy', '')))}</code>
over {html.escape(', '.join(report.get('voters', [])))}.</p>
<h2>Detectors (p-value threshold {det['p_val']})</h2>
<table><tr><th>detector</th><th>p-value</th><th>result</th><th>seconds</th></tr>{rows}</table>
{_calibration_html(report.get('calibration'), det)}
{_novel_html(det.get('novelty'))}
<h2>p-value history</h2>
{_history(history or [], det['p_val'])}
<h2>Top drifted features (KS, Bonferroni-adjusted p)</h2>
<p>Distributions on the signed-log scale: <span style="color:#1f77b4">&#9632; reference</span>
<span style="color:#d62728">&#9632; window</span>.</p>
<table><tr><th>feature</th><th>KS</th><th>p adj.</th><th>distribution</th></tr>{feats}</table>
<h2>Prediction drift (champion's class mix), chi-square p={mix['p_value']:.3g}</h2>
<pre>reference: {html.escape(json.dumps(mix['reference_mix']))}
window:    {html.escape(json.dumps(mix['window_mix']))}</pre>
{_served_html(report.get('served_traffic')) if 'served_traffic' in report else ''}
<h2>Configuration</h2>
<pre>{html.escape(json.dumps(report.get('config', {}), indent=1))}</pre>
"""
    html_path = out_dir / "drift_report.html"
    html_path.write_text(page)
    return {"json": str(json_path), "html": str(html_path)}


# ---------------------------------------------------------------- outside Airflow


def read_flows(path: Path, day: date | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Canonical flows of a file for a drift check: canonical parquet, or a landing CSV in a
    supported layout (through :mod:`flowguard.ingest`). Rows that cannot be used (parse
    errors, non-finite features) are left out and counted with their reasons."""
    import pandas as pd

    if not path.exists():
        raise DriftInputError(f"{path}: no such file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        missing = [c for c in drift_features() if c not in frame.columns]
        if missing:
            raise DriftInputError(f"{path}: not canonical flows, missing columns {missing[:5]}"
                                  f"{' ...' if len(missing) > 5 else ''}")
        reasons = pd.Series("", index=frame.index, dtype=object)
    elif path.suffix.lower() == ".csv":
        from flowguard.ingest import read_landing_file

        frame = read_landing_file(path, day or date.today(), 0)
        reasons = frame["parse_error"].fillna("").astype(object)
    else:
        raise DriftInputError(f"{path}: expected a .parquet (canonical) or .csv (landing) file")
    features = drift_features()
    values = frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    # a nullable UNSW-NB15 field may be empty (it does not apply to the flow)
    bad_cols = ~np.isfinite(values) & ~(np.isnan(values) & np.isin(features, UNSW_NB15_NULLABLE))
    for row in np.flatnonzero(bad_cols.any(axis=1)):
        if not reasons.iloc[row]:
            cols = [features[i] for i in np.flatnonzero(bad_cols[row])][:3]
            reasons.iloc[row] = f"non-finite {', '.join(cols)}"
    keep = reasons.to_numpy() == ""
    excluded = {"rows": int((~keep).sum()), "examples": [
        {"row": int(i) + (2 if path.suffix.lower() == ".csv" else 0), "reason": reasons.iloc[i]}
        for i in np.flatnonzero(~keep)[:5]]}
    out = frame.loc[keep].reset_index(drop=True)
    if len(out) < 10:
        raise DriftInputError(f"{path}: only {len(out)} usable rows ({excluded['rows']} left "
                              f"out, e.g. {excluded['examples'][:2]})")
    return out, excluded


def run_in_drift_runtime(drift_args: dict[str, Any], drift_python: Path) -> dict[str, Any]:
    """Run :func:`flowguard.drift.run_detectors` in the drift runtime as the DAG does: the
    drift runtime's python, PYTHONPATH at the package, OMP_NUM_THREADS=1, paths in, JSON out."""
    import os
    import subprocess

    from flowguard.config import PROJECT_ROOT

    if not drift_python.exists():
        raise FileNotFoundError(f"drift runtime missing at {drift_python}: run scripts/bootstrap.sh")
    a = drift_args
    cmd = [str(drift_python), "-m", "flowguard.drift", a["ref_path"], a["cur_path"],
           "--p-val", str(a["p_val"]), "--n-permutations", str(a["n_permutations"]),
           "--seed", str(a["seed"]), "--detectors", ",".join(a["detectors"]),
           "--mmd-backend", a["mmd_backend"],
           "--classifier-estimators", str(a["classifier_estimators"])]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(PROJECT_ROOT / "include"), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"drift runtime failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_files(reference_path: Path, current_path: Path, config: MonitoringConfig,
                drift_python: Path, work_dir: Path, day: date | None = None,
                cache_dir: Path | None = None) -> dict[str, Any]:
    """The DAG's drift check on two files: same preprocessing, calibration, detectors and
    policy (the voters that need the champion, prediction, performance and harm, abstain).
    The calibration is cached in ``cache_dir`` (default: under ``work_dir``)."""
    import time

    started = time.perf_counter()
    reference, ref_excluded = read_flows(reference_path, day)
    current, cur_excluded = read_flows(current_path, day)
    prepared = prepare_inputs(reference, current, work_dir, n=config.sample_size,
                              seed=config.seed, reference_size=config.reference_size)
    in_runtime = config.drift_detectors
    detectors: dict[str, Any] = {}
    if in_runtime:
        detectors = run_in_drift_runtime({
            "ref_path": prepared["ref_path"], "cur_path": prepared["cur_path"],
            "p_val": config.p_value, "n_permutations": config.n_permutations,
            "seed": config.seed, "detectors": in_runtime, "mmd_backend": config.mmd_backend,
            "classifier_estimators": config.classifier_estimators}, drift_python)
    calibration = calibrate(reference, config, cache_dir or work_dir / "calibration")
    detectors = apply_calibration_to(detectors, calibration, config.p_value)
    if "novelty" in config.detectors:
        detectors["novelty"] = novelty_check(reference, current, config)
    # prediction and performance need the champion: they abstain here
    voters = [v for v in config.detectors if v in detectors] or in_runtime or ["mmd"]
    drift, reason = decide(detectors, config.policy, voters, config.p_value)
    top = feature_shift(reference, current, top=config.top_features)
    return {
        "drift": drift, "decision": reason, "reference": str(reference_path),
        "current": str(current_path),
        "p_values": {k: detectors[k]["p_value"] for k in voters},
        "detectors": {k: dict(detectors[k]) for k in voters},
        "calibration": _calibration_summary(calibration),
        "top_features": [{k: v for k, v in f.items() if k != "histogram"} for f in top],
        "n_ref": prepared["n_ref"], "n_cur": prepared["n_cur"],
        "rows": {"reference": len(reference), "current": len(current)},
        "excluded": {"reference": ref_excluded, "current": cur_excluded},
        "config": config.as_dict(), "seconds": round(time.perf_counter() - started, 2),
    }


def apply_calibration_to(detectors: dict[str, Any], calibration: dict[str, Any] | None,
                         p_val: float) -> dict[str, Any]:
    """:func:`flowguard.calibration.apply_calibration` (a platform-side name for it)."""
    from flowguard.calibration import apply_calibration

    return apply_calibration(detectors, calibration, p_val)


def _calibration_summary(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the report shows of a calibration: its size and shape, not the null itself."""
    if not calibration:
        return None
    return {"draws": calibration["draws"], "block_hours": calibration["block_hours"],
            "period_hours": calibration["period_hours"],
            "median_sizes": calibration["median_sizes"], "key": calibration.get("key"),
            "source": calibration.get("source"),
            "q95": {k: round(float(np.quantile(v, 0.95)), 8)
                    for k, v in calibration["null"].items() if v}}
