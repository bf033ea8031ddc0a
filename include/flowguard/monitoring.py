"""Monitoring, platform side: build the detectors' inputs, add prediction drift, report.

The detectors themselves run in the drift runtime (:mod:`flowguard.drift`). This side reads
the champion's reference sample (saved with the model at training time) and the window's
flows through the same feature service as training, preprocesses both with statistics
fitted on a *separate* half of the reference (fitting on x_ref itself raises false alarms),
and writes two ``.npy`` matrices for the drift runtime.
"""

from __future__ import annotations

import html
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from flowguard.schema import FEATURE_COLUMNS

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

log = logging.getLogger(__name__)


def signed_log(x: np.ndarray) -> np.ndarray:
    """Tame heavy tails (bytes/s spans 10 orders of magnitude) while keeping the sign."""
    return np.sign(x) * np.log1p(np.abs(x))


def fit_scaler(fit_rows: pd.DataFrame) -> dict[str, list[float]]:
    z = signed_log(fit_rows[FEATURE_COLUMNS].to_numpy(dtype=float))
    center = np.median(z, axis=0)
    spread = np.percentile(z, 75, axis=0) - np.percentile(z, 25, axis=0)
    spread = np.where(spread > 0, spread, z.std(axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    return {"center": center.tolist(), "scale": spread.tolist()}


def transform(frame: pd.DataFrame, scaler: dict[str, list[float]]) -> np.ndarray:
    z = signed_log(frame[FEATURE_COLUMNS].to_numpy(dtype=float))
    return ((z - np.asarray(scaler["center"])) / np.asarray(scaler["scale"])).astype(np.float32)


def prepare_inputs(reference: pd.DataFrame, current: pd.DataFrame, out_dir: Path,
                   n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Split the reference into a preprocessing half and x_ref, sample the window, save both."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reference))
    half = len(reference) // 2
    fit_rows, ref_rows = reference.iloc[order[:half]], reference.iloc[order[half:]]
    ref_rows = ref_rows.iloc[: min(n, len(ref_rows))]
    cur_rows = current.sample(min(n, len(current)), random_state=seed)
    scaler = fit_scaler(fit_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "x_ref.npy", transform(ref_rows, scaler))
    np.save(out_dir / "x_cur.npy", transform(cur_rows, scaler))
    (out_dir / "scaler.json").write_text(json.dumps(scaler))
    return {"ref_path": str(out_dir / "x_ref.npy"), "cur_path": str(out_dir / "x_cur.npy"),
            "n_ref": len(ref_rows), "n_cur": len(cur_rows), "n_window": len(current)}


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


def feature_shift(reference: pd.DataFrame, current: pd.DataFrame, top: int = 5
                  ) -> list[dict[str, Any]]:
    """Features ranked by two-sample Kolmogorov-Smirnov statistic (Bonferroni p-values)."""
    from scipy.stats import ks_2samp

    rows = []
    for col in FEATURE_COLUMNS:
        stat, p = ks_2samp(reference[col].to_numpy(), current[col].to_numpy())
        rows.append({"feature": col, "ks": float(stat),
                     "p_adjusted": float(min(1.0, p * len(FEATURE_COLUMNS)))})
    return sorted(rows, key=lambda r: -r["ks"])[:top]


def decide(detectors: dict[str, Any], policy: str = "all") -> tuple[bool, str]:
    """Drift decision: ``all`` detectors must agree (default) or ``any`` one suffices."""
    flags = {name: detectors[name]["is_drift"] for name in ("mmd", "classifier")}
    drift = all(flags.values()) if policy == "all" else any(flags.values())
    pvals = ", ".join(f"{k} p={detectors[k]['p_value']:.3g}" for k in flags)
    return drift, f"{'drift' if drift else 'no drift'} ({policy} of {pvals})"


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Write the run's report as JSON and a small self-contained HTML page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "drift_report.json"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    det = report["detectors"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{det[name]['p_value']:.4g}</td>"
        f"<td>{'DRIFT' if det[name]['is_drift'] else 'ok'}</td><td>{det[name]['seconds']}</td></tr>"
        for name in ("mmd", "classifier"))
    feats = "".join(f"<tr><td>{html.escape(f['feature'])}</td><td>{f['ks']:.3f}</td>"
                    f"<td>{f['p_adjusted']:.3g}</td></tr>" for f in report["top_features"])
    mix = report["prediction_drift"]
    page = f"""<!doctype html><meta charset="utf-8"><title>Drift report {report['window']}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .8em;border-bottom:1px solid #ddd}}</style>
<h1>Drift report: window {html.escape(report['window'])}</h1>
<p><b>Decision: {html.escape(report['decision'])}</b>. Champion v{report['champion_version']};
reference n={det['n_ref']}, window n={det['n_cur']} sampled from {report['n_window']} flows.</p>
<h2>Detectors (p-value threshold {det['p_val']})</h2>
<table><tr><th>detector</th><th>p-value</th><th>result</th><th>seconds</th></tr>{rows}</table>
<h2>Top shifted features (KS, Bonferroni-adjusted p)</h2>
<table><tr><th>feature</th><th>KS</th><th>p adj.</th></tr>{feats}</table>
<h2>Prediction drift (champion's class mix), chi-square p={mix['p_value']:.3g}</h2>
<pre>reference: {html.escape(json.dumps(mix['reference_mix']))}
window:    {html.escape(json.dumps(mix['window_mix']))}</pre>
"""
    html_path = out_dir / "drift_report.html"
    html_path.write_text(page)
    return {"json": str(json_path), "html": str(html_path)}
