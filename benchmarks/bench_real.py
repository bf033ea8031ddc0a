"""Real-traffic benchmark: how far the synthetic week is from real CICIDS2017 flows, and how a
model trained on it does on real flows it never saw.

Real rows: the samples committed under ``data/real/`` (``data/real/PROVENANCE.md``), read by
the project's loader; :mod:`flowguard.realflows` splits each class's rows into the ``pool``
the generator draws from and ``eval`` rows it never draws (by source repository, else file,
else line order; the method per class is in the output). Everything below is measured on
the ``eval`` side, for the real-flow week (``source=real``, the default generator) and, in
the same run, the parametric week it replaced (``source=parametric``).

1. Distance per class: a classifier two-sample test, synthetic rows of the class against its
   real eval rows (77 flow features; a random forest, 5-fold cross-validated ROC AUC,
   equal numbers per side, at most 2000). 0.5 = indistinguishable; goal <= 0.75. The floor,
   measured in the same run: the real pool rows against the real eval rows themselves.
2. Transfer: the pipeline's own training (:func:`flowguard.training.train_and_log`, the
   training DAG's default 45 s search budget; ``--quick``: 10 s) on the synthetic week with
   host activity joined as the feature service joins it, then scored on the real eval rows.
   The real rows are scored on their flow features, host activity unknown (NaN): a sample is
   not a day of traffic, so no host window can be computed for it. Reported: per-class recall,
   macro-F1 over the classes present, the benign false-positive rate, and how many web-attack
   flows were called some web attack. Goals: benign FPR < 1 %, macro-F1 >= 0.9, web attacks
   recognised as web attacks.
   Beside it, the same model on its own synthetic holdout with the host features as joined
   and hidden: how much it leans on host context it will not always have (synthetic figures).
3. Real rows alone: the same training on every real row (pool and eval), its own per-class
   time-aware split and holdout (published references for real CICIDS2017: accuracy 0.99+,
   macro-F1 0.94-0.98 on grouped classes).

    .venv/bin/python benchmarks/bench_real.py --quick
    .venv/bin/python benchmarks/bench_real.py            # scale 0.01 (the demo's week)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
WEB = ("Web Attack - Brute Force", "Web Attack - XSS", "Web Attack - Sql Injection")
MAX_SIDE = 2000
# name -> (generator source, host dropout in training; None: the training default). The
# parametric week with today's training runs only when the real-flow week differs from it
# (some class has enough real pool rows to be drawn from them).
VARIANTS = {"real-flow week": ("real", None), "parametric week": ("parametric", None),
            "before: parametric week, no host dropout": ("parametric", 0.0)}
MERGED_FAMILIES = {"webattack": "web_attack", "dos": "dos", "bruteforce": "brute_force",
                   "portscan": "reconnaissance", "bot": "botnet", "benign": "benign",
                   "infiltration": "infiltration", "ddos": "ddos"}

MIN_SIDE = 10


def two_sample_auc(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a classifier telling rows of ``a`` from rows of ``b``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), MAX_SIDE)
    x = np.vstack([a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    folds = StratifiedKFold(n_splits=min(5, n), shuffle=True, random_state=seed)
    forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, n_jobs=2,
                                    random_state=seed)
    score = cross_val_predict(forest, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, score))


def distances(synthetic, real) -> dict[str, dict]:
    from flowguard.schema import FEATURE_COLUMNS

    out = {}
    for label, group in real.groupby("label", sort=True):
        syn = synthetic[synthetic["label"] == label]
        entry = {"synthetic_rows": len(syn), "real_eval_rows": len(group)}
        if len(syn) >= MIN_SIDE and len(group) >= MIN_SIDE:
            entry["auc"] = round(two_sample_auc(syn[FEATURE_COLUMNS].to_numpy(float),
                                                group[FEATURE_COLUMNS].to_numpy(float)), 4)
        else:
            entry["auc"] = None
            entry["note"] = f"fewer than {MIN_SIDE} rows on a side"
        out[str(label)] = entry
    return out


def score_real(model_uri: str, classes: list[str], real) -> dict:
    """The trained model on real eval rows (host activity unknown)."""
    import mlflow

    from flowguard.evaluation import evaluate
    from flowguard.schema import HOST_FEATURES
    from flowguard.training import predict_labels

    model = mlflow.xgboost.load_model(model_uri)
    frame = real.copy()
    for col in HOST_FEATURES:
        frame[col] = np.nan
    known = frame["label"].isin(classes)
    frame = frame[known]
    truth = frame["label"].to_numpy()
    predicted = predict_labels(model, classes, frame)
    present = sorted(set(truth))
    metrics = evaluate(truth, predicted, present)
    per_class = {}
    for label in present:
        rows = truth == label
        per_class[label] = {"rows": int(rows.sum()),
                            "recall": round(float((predicted[rows] == label).mean()), 4),
                            "f1": round(float(metrics.get(f"f1.{_key(label)}", np.nan)), 4)}
        wrong = predicted[rows][predicted[rows] != label]
        if len(wrong):
            values, counts = np.unique(wrong, return_counts=True)
            per_class[label]["mistaken_for"] = {str(v): int(c) for v, c in
                                                sorted(zip(values, counts, strict=True),
                                                       key=lambda vc: -vc[1])[:3]}
    benign = truth == "BENIGN"
    web = np.isin(truth, WEB)
    from bench_drift import wilson

    false_alarms = int((predicted[benign] != "BENIGN").sum())
    return {"rows": len(frame), "rows_of_unknown_classes": int((~known).sum()),
            "classes_present": present, "macro_f1": round(float(metrics["macro_f1"]), 4),
            "accuracy": round(float((predicted == truth).mean()), 4),
            "benign_false_positive_rate": round(false_alarms / benign.sum(), 4)
            if benign.any() else None,
            "benign_false_positives": f"{false_alarms}/{int(benign.sum())}",
            "benign_false_positive_ci95": wilson(false_alarms, int(benign.sum())),
            "web_attacks_called_web_attack": round(float(np.isin(predicted[web], WEB).mean()), 4)
            if web.any() else None,
            "per_class": per_class}


def score_holdout(model_uri: str, classes: list[str], week: Path) -> dict:
    """The model on its own synthetic holdout (the newest 20 % per class, as training split
    it), with the host features as joined and with them hidden (NaN): how much the model
    leans on the host context it will not always have."""
    import mlflow
    import pandas as pd

    from flowguard.evaluation import evaluate
    from flowguard.schema import HOST_FEATURES
    from flowguard.training import predict_labels, time_aware_split

    model = mlflow.xgboost.load_model(model_uri)
    _, _, test = time_aware_split(pd.read_parquet(week))
    out = {}
    for name, frame in (("hosts_known", test), ("hosts_unknown", test.assign(
            **{c: np.nan for c in HOST_FEATURES}))):
        predicted = predict_labels(model, classes, frame)
        truth = frame["label"].to_numpy()
        benign = truth == "BENIGN"
        out[name] = {"macro_f1": round(evaluate(truth, predicted)["macro_f1"], 4),
                     "benign_false_positive_rate":
                         round(float((predicted[benign] != "BENIGN").mean()), 4)}
    return out


def read_preprocessed(path: Path):
    """Real rows of a pre-processed public copy the loader refuses (no ``Destination Port``,
    merged labels such as ``WebAttack``): its flow features by header key and the family of
    its label. Measurement only: the model cannot score these rows (no port)."""
    import pandas as pd

    from flowguard.schema import (
        CICIDS2017_COLUMNS,
        FEATURE_COLUMNS,
        LABEL_FAMILIES,
        canonical_label,
        header_key,
    )

    raw = pd.read_csv(path, encoding="latin-1", low_memory=False)
    names = {header_key(h): c for h, c in CICIDS2017_COLUMNS if c != "fwd_header_len_dup"}
    frame = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        name = names.get(header_key(column))
        if name and name not in frame:
            frame[name] = pd.to_numeric(raw[column], errors="coerce")
    labels = raw[raw.columns[-1]].astype(str)
    frame["label_family"] = [LABEL_FAMILIES.get(canonical_label(v) or "") or
                             MERGED_FAMILIES.get("".join(ch for ch in v.lower() if ch.isalnum()))
                             for v in labels]
    features = [c for c in FEATURE_COLUMNS if c in frame]
    finite = np.isfinite(frame[features].to_numpy(float)).all(axis=1)
    return frame[finite & frame["label_family"].notna()], features


def family_distances(synthetic, real, features: list[str]) -> dict[str, dict]:
    """Two-sample AUC per label family, on the features both sides have."""
    from flowguard.schema import LABEL_FAMILIES

    synthetic = synthetic.assign(label_family=synthetic["label"].map(LABEL_FAMILIES))
    out = {}
    for family, group in real.groupby("label_family", sort=True):
        syn = synthetic[synthetic["label_family"] == family]
        entry = {"synthetic_rows": len(syn), "real_rows": len(group)}
        entry["auc"] = (round(two_sample_auc(syn[features].to_numpy(float),
                                             group[features].to_numpy(float)), 4)
                        if len(syn) >= MIN_SIDE and len(group) >= MIN_SIDE else None)
        out[str(family)] = entry
    return out


def _key(label: str) -> str:
    from flowguard.evaluation import metric_key

    return metric_key(label)


def train(path: Path, work: Path, budget: float, trials: int, host_dropout: float | None = None
          ) -> tuple[str, list[str], dict]:
    import mlflow

    from flowguard.training import TuningConfig, train_and_log

    store = work / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    mlflow.set_registry_uri(f"sqlite:///{store}")
    started = time.perf_counter()
    tuning = TuningConfig(budget_seconds=budget, max_trials=trials)
    if host_dropout is not None:
        tuning.host_dropout = host_dropout
    result = train_and_log(path, work / "artifacts", "bench-real", {"trigger_reason": "bench"},
                           tuning=tuning)
    holdout = {k: round(v, 4) for k, v in result.metrics.items()
               if k in ("macro_f1", "accuracy") or k.startswith("f1.")}
    return result.model_uri, result.classes, {"seconds": round(time.perf_counter() - started, 1),
                                              "trials": result.trials, "holdout": holdout}


def real_training_set(real, out: Path) -> Path:
    """Every real row as a training set: host activity unknown, unique ``flow_uid``s."""
    from flowguard.schema import HOST_FEATURES

    frame = real.copy()
    for col in HOST_FEATURES:
        frame[col] = np.nan
    files = {f: i for i, f in enumerate(sorted(frame["sample_file"].unique()))}
    frame["flow_uid"] = frame["sample_file"].map(files) * 10_000_000 + frame["source_line"]
    # Rows without a time (MachineLearningCVE outside a weekday-named file) sort by file and line.
    frame["event_timestamp"] = frame["event_timestamp"].fillna(
        datetime(2017, 7, 10, tzinfo=UTC))
    frame["label"] = frame["label"].astype(str)
    frame.drop(columns=["real_split", "sample_file", "source_repo", "source_layout"]).to_parquet(
        out, index=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller week, a 10 s search")
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--budget", type=float, default=45.0, help="tuning budget (s)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--preprocessed", type=Path, nargs="*", default=[],
                        help="pre-processed real copies (no ports, merged labels) to measure "
                             "the synthetic week's distance to, per label family")
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results" / "real.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.budget, args.trials = 0.003, 10.0, 3
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import pandas as pd
    from bench_training import build_week

    from flowguard.realflows import load_real, split_summary
    from flowguard.synth import generate_week, week_sources

    started = time.perf_counter()
    real = load_real()
    if real.empty:
        print("no real samples under data/real (see data/real/PROVENANCE.md)", file=sys.stderr)
        return 1
    evaluation = real[real["real_split"] == "eval"]
    report: dict = {
        "benchmark": "real", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"scale": args.scale, "tuning_budget_s": args.budget,
                     "max_trials": args.trials, "quick": args.quick,
                     "scoring": "real eval rows, host activity unknown (NaN)"},
        "real_rows": {"pool": int((real["real_split"] == "pool").sum()),
                      "eval": len(evaluation), "split": split_summary(real)},
        "synthetic": {}, "models": {},
        # The floor for the distance: real pool rows against real eval rows of the same class
        # (no generator). A synthetic week drawn from the pool cannot be closer than this.
        "real_pool_vs_eval": distances(real[real["real_split"] == "pool"], evaluation),
    }
    with tempfile.TemporaryDirectory(prefix="flowguard-bench-real-") as tmp:
        work = Path(tmp)
        weeks: dict[str, tuple[Path, dict]] = {}
        all_parametric = all(v.startswith("parametric") for v in week_sources("real").values())
        report["real_flow_week_is_parametric"] = all_parametric
        for name in args.variants:
            source, host_dropout = VARIANTS[name]
            if name == "parametric week" and all_parametric and "real-flow week" in args.variants:
                continue  # the same week and training as the real-flow week
            if source not in weeks:
                landing = work / f"landing-{source}"
                generate_week(landing, scale=args.scale, source=source)
                (work / f"cache-{source}").mkdir()
                week = build_week(0, work / f"cache-{source}", landing)
                synthetic = pd.read_parquet(week)
                entry = {"rows": len(synthetic), "classes": week_sources(source),
                         "distance": distances(synthetic, evaluation)}
                aucs = [v["auc"] for v in entry["distance"].values() if v["auc"] is not None]
                entry["auc_max"] = max(aucs) if aucs else None
                entry["classes_within_0_75"] = f"{sum(a <= 0.75 for a in aucs)}/{len(aucs)}"
                weeks[source] = (week, entry)
                report["synthetic"][source] = entry
                del synthetic
            week, entry = weeks[source]
            model_uri, classes, fit = train(week, work / f"train-{len(report['models'])}",
                                            args.budget, args.trials, host_dropout)
            result = {"source": source, "host_dropout": host_dropout, "training": fit,
                      "synthetic_holdout": score_holdout(model_uri, classes, week),
                      "on_real": score_real(model_uri, classes, evaluation)}
            report["models"][name] = result
            print(f"{name}: week AUC max {entry['auc_max']}; on real: macro-F1 "
                  f"{result['on_real']['macro_f1']}, benign FPR "
                  f"{result['on_real']['benign_false_positive_rate']}", flush=True)
        for extra in args.preprocessed:
            rows, features = read_preprocessed(extra)
            report.setdefault("preprocessed_real", {})[extra.name] = {
                "rows": len(rows), "features": len(features),
                "distance_by_family": {source: family_distances(
                    pd.read_parquet(week), rows, features) for source, (week, _) in weeks.items()}}
        path = real_training_set(real, work / "real.parquet")
        _, _, fit = train(path, work / "train-real-only", args.budget, args.trials)
        report["real_only"] = fit
        print(f"real only: holdout {fit['holdout']}", flush=True)
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
