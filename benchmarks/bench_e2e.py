"""End-to-end benchmark: a week through the pipeline, stage by stage, against its floor.

Stages (each in its own process, so its peak RSS is its own; the DAG tasks' functions):

1. ingest: ``pipeline.validate_interval`` for each day of the week (read, GX contract,
   valid rows, quarantine, host windows, data docs);
2. materialize: ``pipeline.apply_feature_repo`` + ``pipeline.materialize_interval`` of the
   week into the online store (SQLite);
3. training_set: ``pipeline.build_training_set`` (point-in-time, through the feature service);
4. train: ``pipeline.train_model`` with the training DAG's defaults (budget 45 s, 15 trials,
   the budget scaled to the data).

The floor, measured in the same run: ``pyarrow.csv.read_csv`` of the same landing files,
plus one ``xgboost`` fit with the final parameters and round count of stage 4 on the rows its
final fit saw (the class-capped train + validation split, no host-dropout copies). Ratios
per stage: ingest / read_csv, train / floor fit, total / floor total. Data: the synthetic
week (``synth.generate_week``) at ``--scale`` (1.0 = the published 2.83 M rows), generated
once (untimed) or read from ``--data``. Results: ``benchmarks/results/e2e.json``.

    .venv/bin/python benchmarks/bench_e2e.py --quick          # scale 0.02, one run
    .venv/bin/python benchmarks/bench_e2e.py --scale 1.0      # the full week

``--stages`` runs some stages only (no floor, no ratios), ``--work`` keeps the run's home in
a folder: ``--stages ingest,materialize,training_set --work W`` once, then
``--stages training_set --work W`` again (another checkout's code on ``PYTHONPATH``) measures
one stage of two code versions on the same ingested week.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "materialize", "training_set", "train")


def _peak_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def stage(name: str, landing: Path, home: Path, state: Path) -> dict:
    """Child process: one stage, timed after its imports."""
    os.environ["FLOWGUARD_HOME"] = str(home)
    os.environ["FLOWGUARD_LANDING_DIR"] = str(landing)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from flowguard import pipeline
    from flowguard.synth import WEEK_START

    start = datetime.combine(WEEK_START, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=7)
    info = json.loads(state.read_text()) if state.exists() else {}
    started = time.perf_counter()
    if name == "ingest":
        rows = 0
        for d in range(7):
            day = start + timedelta(days=d)
            try:
                out = pipeline.validate_interval(day.isoformat(), (day + timedelta(days=1))
                                                 .isoformat(), f"bench-{d}")
                rows += int(out.get("valid_rows", out.get("rows_valid", 0)) or 0)
            except pipeline.NothingToDo:
                continue
        info["ingest_valid_rows"] = rows
    elif name == "materialize":
        pipeline.apply_feature_repo()
        pipeline.materialize_interval(start.isoformat(), end.isoformat())
    elif name == "training_set":
        built = pipeline.build_training_set(end.date().isoformat(), 7, "bench-e2e")
        info.update(training_set=built["path"], training_rows=built["rows"],
                    digest=built["digest"])
    elif name == "train":
        trained = pipeline.train_model(info["training_set"], {"dag_run_id": "bench-e2e",
                                                               "trigger_reason": "bench"},
                                       {"budget_seconds": 45.0, "max_trials": 15,
                                        "budget_per_100k_rows": 45.0})
        import mlflow

        run = mlflow.MlflowClient().get_run(trained["run_id"])
        info.update(run_id=trained["run_id"], macro_f1=trained["macro_f1"],
                    params={k: run.data.params[k] for k in (
                        "max_depth", "learning_rate", "min_child_weight", "subsample",
                        "colsample_bytree", "colsample_bynode", "reg_lambda")},
                    best_iteration=int(run.data.metrics["best_iteration"]),
                    trials=int(run.data.metrics["tuning_trials"]),
                    budget_s=float(run.data.params["tuning_budget_s"]),
                    tuning_seconds=run.data.metrics["tuning_seconds"],
                    fit_seconds=run.data.metrics["fit_seconds"],
                    stage_peaks={k.split(".", 1)[1]: v for k, v in run.data.metrics.items()
                                 if k.startswith("peak_rss_mb.")})
    seconds = time.perf_counter() - started
    state.write_text(json.dumps(info))
    # training resets VmHWM between its stages: its peak is the largest stage's
    peak = max([_peak_mb(), *info.get("stage_peaks", {}).values()]) if name == "train" \
        else _peak_mb()
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}


def floor(landing: Path, state: Path) -> dict:
    """Child process: read_csv of the landing files, one fit with the final parameters."""
    import numpy as np
    import pandas as pd
    import pyarrow.csv as pacsv
    from xgboost import XGBClassifier

    from flowguard.schema import MODEL_FEATURES
    from flowguard.training import (
        N_THREADS,
        TuningConfig,
        cap_per_class,
        read_training_set,
        time_aware_split,
    )

    info = json.loads(state.read_text())
    files = sorted(landing.glob("*.csv"))
    started = time.perf_counter()
    rows = sum(pacsv.read_csv(f).num_rows for f in files)
    read_seconds = time.perf_counter() - started
    train, valid, _ = time_aware_split(read_training_set(Path(info["training_set"])))
    classes = sorted(train["label"].unique())
    fitted, weights = cap_per_class(pd.concat([train, valid], ignore_index=True),
                                    TuningConfig().max_class_rows, 42)
    params = {k: float(v) if "." in v or "e" in v else int(v) for k, v in info["params"].items()}
    model = XGBClassifier(n_estimators=info["best_iteration"] + 1, tree_method="hist",
                          max_bin=64, objective="multi:softprob", n_jobs=N_THREADS,
                          random_state=42, **params)
    target = fitted["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    features = fitted[MODEL_FEATURES].to_numpy(dtype=np.float32)
    started = time.perf_counter()
    model.fit(features, target, sample_weight=weights, verbose=False)
    fit_seconds = time.perf_counter() - started
    return {"read_csv_seconds": round(read_seconds, 2), "csv_rows": rows,
            "fit_seconds": round(fit_seconds, 2), "fit_rows": len(fitted),
            "peak_rss_mb": round(_peak_mb(), 1)}


def _child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
                                            "MLFLOW_DISABLE_TELEMETRY": "true"})
    if done.returncode:
        raise RuntimeError(f"{args[:2]} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_run(landing: Path, work: Path, names: tuple[str, ...] = STAGES) -> dict:
    home, state = work / "home", work / "state.json"
    load_before = os.getloadavg()
    stages = {name: _child(["--stage", name, str(landing), str(home), str(state)])
              for name in names}
    if names != STAGES:  # some stages only: no floor, no ratios
        info = json.loads(state.read_text())
        return {"stages": stages, "training_rows": info.get("training_rows"),
                "digest": info.get("digest"),
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()]}
    base = _child(["--floor", str(landing), str(state)])
    info = json.loads(state.read_text())
    total = sum(s["seconds"] for s in stages.values())
    floor_total = base["read_csv_seconds"] + base["fit_seconds"]
    return {"stages": stages, "floor": base, "total_seconds": round(total, 2),
            "floor_seconds": round(floor_total, 2),
            "ratio_total": round(total / floor_total, 2),
            "ratio_ingest_vs_read_csv": round(stages["ingest"]["seconds"]
                                              / base["read_csv_seconds"], 2),
            "ratio_train_vs_fit": round(stages["train"]["seconds"] / base["fit_seconds"], 2),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
            "bytes_per_row_train": round(stages["train"]["peak_rss_mb"] * 2**20
                                         / max(1, info["training_rows"])),
            "training_rows": info["training_rows"], "macro_f1": info["macro_f1"],
            "trials": info["trials"], "search_budget_s": info["budget_s"],
            "tuning_seconds": round(info["tuning_seconds"], 2),
            "final_fit_seconds": round(info["fit_seconds"], 2),
            "train_stage_peaks_mb": info["stage_peaks"],
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def _triple(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] in ("--stage", "--floor"):
        if sys.argv[1] == "--stage":
            out = stage(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
        else:
            out = floor(Path(sys.argv[2]), Path(sys.argv[3]))
        print(json.dumps(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scale 0.02, one run")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--data", type=Path, help="a week in the published layout to read")
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results" / "e2e.json")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated, in order, of {','.join(STAGES)} (default all)")
    parser.add_argument("--work", type=Path,
                        help="keep the run's home and state here (one run; reused if present)")
    args = parser.parse_args(argv)
    names = tuple(n.strip() for n in args.stages.split(",") if n.strip())
    if not names or any(n not in STAGES for n in names) or \
            list(names) != sorted(names, key=STAGES.index):
        parser.error(f"--stages: a subset of {','.join(STAGES)} in that order")
    if args.work is not None and args.runs != 1:
        parser.error("--work keeps one run's home: use --runs 1")
    if args.quick:
        args.scale, args.runs = 0.02, 1
        if args.out.name == "e2e.json":
            args.out = args.out.with_name("e2e-quick.json")
    from flowguard.synth import generate_week

    runs = []
    with tempfile.TemporaryDirectory(prefix="flowguard-bench-e2e-") as tmp:
        landing = args.data
        if landing is None:
            landing = Path(tmp) / "landing"
            generate_week(landing, scale=args.scale, min_per_class=40)
        for i in range(args.runs):
            work = args.work.resolve() if args.work else Path(tmp) / f"run{i}"
            work.mkdir(parents=True, exist_ok=args.work is not None)
            runs.append(one_run(landing, work, names))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "stages"}), flush=True)
    summary = {} if names != STAGES else {key: _triple([r[key] for r in runs]) for key in (
        "total_seconds", "floor_seconds", "ratio_total", "ratio_ingest_vs_read_csv",
        "ratio_train_vs_fit", "peak_rss_mb", "bytes_per_row_train")}
    for name in names:
        summary[f"{name}_seconds"] = _triple([r["stages"][name]["seconds"] for r in runs])
        summary[f"{name}_peak_rss_mb"] = _triple([r["stages"][name]["peak_rss_mb"] for r in runs])
    report = {"benchmark": "e2e", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {"scale": args.scale, "runs": args.runs, "stages": list(names),
                           "data": str(args.data or f"synthetic week, scale {args.scale}")},
              "summary": summary, "runs_detail": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
