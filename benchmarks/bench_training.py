"""Training benchmark: time and peak memory of one training run at several sizes, and the
macro-F1 it reaches on the synthetic week.

Data: the synthetic CICIDS2017 week (``flowguard.synth.generate_week``, published layout)
read through the real loader (``flowguard.ingest.read_day``); host activity is joined the
way the feature service does it (the completed clock hour before each flow). The data is
built once per scale, cached under ``$FLOWGUARD_HOME/bench/`` and not timed; smaller sizes
are seeded per-class-proportional samples of the larger week.

Timed: :func:`flowguard.training.train_and_log` end to end (split, Optuna search under its
budget with nested runs, refit, metrics, confusion matrix, model card, ``log_model``) into a
fresh SQLite MLflow store, each run in its own process so its peak RSS (``VmHWM``) is that run's own.
Reported per size: median, min and max over the runs of total, tuning and final-fit
seconds, peak RSS and peak RSS per training row (``bytes_per_row``; each run's peak per
stage beside it), holdout macro-F1, trials completed, and the load average before and
after (five helpers share these 2 cores).

    .venv/bin/python benchmarks/bench_training.py --quick
    .venv/bin/python benchmarks/bench_training.py --sizes 100000 1000000 --runs 3 1
    .venv/bin/python benchmarks/bench_training.py --data /path/to/week   # no regeneration
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
FULL_ROWS = 2_830_743  # the published TrafficLabelling week


def build_week(rows: int, cache: Path, data: Path | None = None) -> Path:
    """The canonical training frame of a synthetic week with about ``rows`` flows.

    ``data``: a folder already holding a week in the published CSV layout (what
    ``flowguard generate`` / ``synth.generate_week`` write); it is read, not regenerated.
    Host features are joined as the feature service joins them: the newest host window
    ending at or before each flow, within the view's ttl.
    """
    import pandas as pd

    from flowguard.features import HOST_TTL, host_activity
    from flowguard.ingest import files_for_day, read_day
    from flowguard.schema import HOST_FEATURES
    from flowguard.synth import WEEK_START, generate_week

    if data is not None:
        tag = "data_" + "".join(ch if ch.isalnum() else "_" for ch in str(data.resolve()))[-60:]
        landing = data
    else:
        tag = f"week_{rows / FULL_ROWS:.4f}"
        landing = cache / f"landing_{rows / FULL_ROWS:.4f}"
    out = cache / f"{tag}.parquet"
    if out.exists():
        return out
    if data is None:
        generate_week(landing, scale=rows / FULL_ROWS, min_per_class=40)
    days = [WEEK_START + timedelta(days=d) for d in range(7)]
    frames = [read_day(landing, day) for day in days if files_for_day(landing, day)]
    if not frames:
        raise FileNotFoundError(f"no CICIDS2017 day files under {landing}")
    frame = pd.concat(frames, ignore_index=True)
    del frames
    frame = frame[(frame["parse_error"] == "") & frame["label"].notna()].drop(
        columns=["parse_error", "raw_label"])
    frame["src_ip"] = frame["src_ip"].astype("string")
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    hosts = host_activity(frame).sort_values("event_timestamp")
    frame = pd.merge_asof(frame.sort_values("event_timestamp"), hosts, on="event_timestamp",
                          by="src_ip", direction="backward", tolerance=HOST_TTL)
    assert all(c in frame for c in HOST_FEATURES)
    frame["label"] = frame["label"].astype(str)
    frame.to_parquet(out, index=False)
    return out


def sample(week: Path, rows: int, out: Path, seed: int = 0) -> Path:
    import pandas as pd

    if rows >= pd.read_parquet(week, columns=["label"]).shape[0]:
        return week  # the whole week: no copy
    frame = pd.read_parquet(week)
    if rows < len(frame):
        share = rows / len(frame)
        frame = pd.concat(
            g.sample(n=max(min(len(g), 20), int(round(len(g) * share))), random_state=seed)
            for _, g in frame.groupby("label", sort=True))
    frame.to_parquet(out, index=False)
    return out


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: a child's ru_maxrss starts at its
    parent's RSS at fork (Linux keeps it across exec), which reported the parent's prepared
    data (~4 GB) as a 100 k-row training run's peak."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def one_run(path: Path, budget: float, trials: int, n_estimators: int,
            per_100k: float = 45.0) -> dict:
    """Child process: one timed training run into a throwaway MLflow store."""
    import mlflow
    import pandas as pd

    from flowguard.training import TuningConfig, train_and_log

    rows = len(pd.read_parquet(path, columns=["label"]))
    # an older checkout (measuring before and after) has no scaled budget
    scaled = ({"budget_per_100k_rows": per_100k}
              if "budget_per_100k_rows" in TuningConfig.__dataclass_fields__ else {})
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_registry_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.get_experiment_by_name("warm-up")  # creates the schema outside the timing
        load_before = os.getloadavg()
        started = time.perf_counter()
        result = train_and_log(path, Path(tmp) / "artifacts", "bench", {"trigger_reason": "bench"},
                               tuning=TuningConfig(budget_seconds=budget, max_trials=trials,
                                                   n_estimators=n_estimators, **scaled))
        total = time.perf_counter() - started
        run = mlflow.MlflowClient().get_run(result.run_id)
    # training resets VmHWM between its stages: the run's peak is the largest stage's
    stages = {k.split(".", 1)[1]: v for k, v in run.data.metrics.items()
              if k.startswith("peak_rss_mb.")}
    peak = max([_peak_mb(), *stages.values()])
    return {"rows": rows, "seconds_total": round(total, 2),
            "seconds_tuning": round(run.data.metrics["tuning_seconds"], 2),
            "seconds_final_fit": round(run.data.metrics["fit_seconds"], 2),
            "trials": result.trials, "best_iteration": int(run.data.metrics["best_iteration"]),
            "macro_f1": round(result.metrics["macro_f1"], 4),
            "accuracy": round(result.metrics["accuracy"], 4),
            "log_loss": round(result.metrics["log_loss"], 4),
            "classes": len(result.classes),
            "peak_rss_mb": round(peak, 1),
            "bytes_per_row": round(peak * 2**20 / max(1, rows)),
            # per stage of train_and_log (read + split, logged inputs, search, final fit,
            # evaluation + model logging): peak RSS within the stage
            "stage_peak_rss_mb": stages,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def summarise(runs: list[dict]) -> dict:
    out: dict = {"runs": runs, "n_runs": len(runs), "rows": runs[0]["rows"]}
    for key in ("seconds_total", "seconds_tuning", "seconds_final_fit", "peak_rss_mb",
                "bytes_per_row", "macro_f1", "trials"):
        values = [r[key] for r in runs]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small size, seconds")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, FULL_ROWS],
                        help="rows per size; a size >= the week's rows uses the whole week")
    parser.add_argument("--data", type=Path, help="read this folder's week (published CSV "
                        "layout, e.g. written by `flowguard generate`) instead of generating")
    parser.add_argument("--runs", type=int, nargs="+", default=[3, 1, 1],
                        help="runs per size (last value repeats)")
    parser.add_argument("--budget", type=float, default=45.0,
                        help="tuning budget (s); 45 is the training DAG's default")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--budget-per-100k", type=float, default=45.0,
                        help="search budget per 100 k trial rows, as the training DAG sets it "
                             "(0: --budget as given)")
    parser.add_argument("--n-estimators", type=int, default=300)
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results" / "training.json")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(one_run(args.one, args.budget, args.trials, args.n_estimators,
                                 args.budget_per_100k)))
        return 0
    if args.quick:
        args.sizes, args.runs, args.budget, args.trials = [20_000], [1], 10.0, 3
        if args.out.name == "training.json":
            args.out = args.out.with_name("training-quick.json")  # as run_all names it
    home = Path(os.environ.get("FLOWGUARD_HOME", PROJECT / "var"))
    cache = home / "bench" / "training"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    week = build_week(max(args.sizes), cache, args.data)
    prep = time.perf_counter() - started
    results = []
    for i, size in enumerate(sorted(args.sizes)):
        path = sample(week, size, cache / f"sample_{size}.parquet")
        runs = []
        for _ in range(args.runs[min(i, len(args.runs) - 1)]):
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(path), "--budget", str(args.budget),
                 "--trials", str(args.trials), "--n-estimators", str(args.n_estimators),
                 "--budget-per-100k", str(args.budget_per_100k)],
                capture_output=True, text=True, check=False,
                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
                     "OMP_WAIT_POLICY": "PASSIVE"})
            if child.returncode:
                sys.stderr.write(child.stderr[-4000:])
                return child.returncode
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"{size:>9} rows: {runs[-1]}", flush=True)
        results.append({"size_requested": size, **summarise(runs)})
        write(args, results, prep)  # after each size: a long size cut short keeps the rest
    return 0


def _default_class_cap() -> int:
    from flowguard.training import TuningConfig

    return TuningConfig().max_class_rows


def write(args: argparse.Namespace, results: list[dict], prep: float) -> None:
    report = {
        "benchmark": "training", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"tuning_budget_s": args.budget, "max_trials": args.trials,
                     "budget_per_100k_rows": args.budget_per_100k,
                     "n_estimators": args.n_estimators, "quick": args.quick,
                     "max_class_rows": _default_class_cap(),
                     "data": f"{args.data or 'generated synthetic week'} via ingest.read_day"
                             " + host activity joined as the feature service does",
                     "data_prep_seconds_untimed": round(prep, 1)},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
