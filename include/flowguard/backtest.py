"""Replay a dataset day by day under three retraining policies, through the real pipeline.

Question answered: "would this drift policy have protected us, and what does it cost?"

Each policy replays the same landing files in a throwaway home of its own (its own lake,
Feast registry, MLflow store and registered model), calling the same functions the DAG tasks
call (:mod:`flowguard.pipeline`) and the drift runtime exactly as the monitoring DAG does:

* ``static``: train once at the end of the warm-up days, never retrain;
* ``drift``: after each day, retrain only when the monitoring decision says drift;
* ``always``: retrain after every day.

Protocol per day ``d`` after the warm-up (labels of a day are known once the day is over):
ingest and validate ``d``; score ``d``'s labelled flows with the serving ``champion``
(macro-F1, per-class recall); run the monitoring check of ``d``; then, if the policy says
so, train on the window ending with ``d`` and gate it; a promoted model serves ``d + 1``.

Injected shifts (``shifts=["byte_scale:factor=2@2017-07-06", ...]``) answer the same question
for a change the dataset does not contain: each spec is a :mod:`flowguard.shifts` kind with its
parameters, applied to the validated flows of its day *and every later day* (a collector that
starts counting headers, or a new attack campaign, does not go away overnight). The shift is
applied once, to the shared ingested data before any policy replays it, and the day's host
windows are recomputed from the shifted flows, so host features stay consistent with them.
Spec grammar: ``KIND[:key=value[,key=value...]]@YYYY-MM-DD``; for ``class_mix`` every
``key=value`` is a class share (``class_mix:BENIGN=0.5@2017-07-06``).
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from flowguard.config import environment

log = logging.getLogger(__name__)

POLICIES = ("static", "drift", "always")


@dataclass(frozen=True)
class ShiftSpec:
    """A controlled shift injected into the replay from ``start`` on (see the docstring)."""

    kind: str
    params: dict[str, Any]
    start: date
    spec: str

    @classmethod
    def parse(cls, spec: str) -> ShiftSpec:
        from flowguard.shifts import KINDS, ShiftError

        body, sep, day = spec.strip().rpartition("@")
        if not sep or not body:
            raise ShiftError(f"shift {spec!r}: expected KIND[:key=value,...]@YYYY-MM-DD")
        try:
            start = date.fromisoformat(day)
        except ValueError:
            raise ShiftError(f"shift {spec!r}: {day!r} is not a YYYY-MM-DD day") from None
        kind, _, args = body.partition(":")
        if kind not in KINDS:
            raise ShiftError(f"shift {spec!r}: unknown kind {kind!r}; one of {KINDS}")
        params: dict[str, Any] = {}
        for item in filter(None, (a.strip() for a in args.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ShiftError(f"shift {spec!r}: {item!r} is not key=value")
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
        if kind == "class_mix":
            params = {"weights": params}
        return cls(kind, params, start, spec.strip())


@dataclass
class DayRecord:
    """One (policy, day) row of the backtest table."""

    policy: str
    day: str
    rows: int
    serving_version: str | None
    macro_f1: float | None
    macro_f1_known: float | None
    unseen_share: float
    recall: dict[str, float] = field(default_factory=dict)
    mmd_p_value: float | None = None
    classifier_p_value: float | None = None
    prediction_p_value: float | None = None
    novelty_p_value: float | None = None
    n_novel: int | None = None
    estimated_macro_f1: float | None = None  # label-free (CBPE-style), beside macro_f1
    drift: bool | None = None
    decision: str = ""
    retrained: bool = False
    promoted: bool = False
    new_version: str | None = None
    monitor_seconds: float = 0.0
    train_seconds: float = 0.0


def landing_days(landing_dir: Path) -> list[date]:
    """The capture days that have landing files, in order (the CICIDS2017 week by default)."""
    from flowguard.ingest import files_for_day
    from flowguard.synth import WEEK_START

    days = [WEEK_START + timedelta(days=i) for i in range(7)]
    found = [d for d in days if files_for_day(landing_dir, d)]
    if not found:
        raise FileNotFoundError(f"no landing CSVs named after a weekday under {landing_dir}")
    return found


def _score_day(policy: str, day: date) -> DayRecord:
    """The serving champion on the day's labelled flows: macro-F1 over every class present,
    macro-F1 over the classes the model was trained on, and the share of flows of classes
    it has never seen (a new attack family cannot be recognised on its first day)."""
    from flowguard.config import get_settings
    from flowguard.evaluation import evaluate
    from flowguard.features import entity_rows, get_store, historical_features
    from flowguard.pipeline import _mlflow
    from flowguard.registry import champion_version, load_model
    from flowguard.training import predict_labels

    settings = get_settings()
    client = _mlflow(settings)
    frame = historical_features(get_store(settings.feature_repo, settings.home),
                                entity_rows(settings.flows_source, [day]))
    version = champion_version(client, settings.model_name)
    if version is None:
        raise LookupError(f"{policy}: no champion to score {day} with")
    model, classes = load_model(client, settings.model_name, version)
    truth = frame["label"].to_numpy()
    predicted = predict_labels(model, classes, frame)
    metrics = evaluate(truth, predicted, classes)
    known = frame["label"].isin(classes).to_numpy()
    known_f1 = evaluate(truth[known], predicted[known], classes)["macro_f1"] if known.any() else None
    recall = {k.removeprefix("recall."): v for k, v in metrics.items() if k.startswith("recall.")}
    return DayRecord(policy, day.isoformat(), len(frame), version, metrics["macro_f1"],
                     known_f1, float(1 - known.mean()), recall)


def _retrain(policy: str, as_of: date, window_days: int, reason: str) -> tuple[bool, str]:
    from flowguard.features import FEATURE_SERVICE
    from flowguard.pipeline import build_training_set, promote_if_better, train_model

    run_id = f"backtest__{policy}__{as_of.isoformat()}"
    built = build_training_set(as_of.isoformat(), window_days, run_id)
    trained = train_model(built["path"], {
        "dag_run_id": run_id, "trigger_reason": reason, "feature_service": FEATURE_SERVICE,
        "training_days": ",".join(built["days"])})
    gate = promote_if_better(trained["version"])
    return bool(gate.get("promoted")), str(trained["version"])


def ingest_all(landing_dir: Path, data_home: Path) -> dict[str, float]:
    """Ingest and validate every landing day once (validation does not depend on the policy).

    Returns the seconds each day took. Policies then copy a day's partitions into their own
    home only when the replay reaches that day, so no policy can train on future flows.
    """
    from flowguard.pipeline import validate_interval

    seconds = {}
    with environment(FLOWGUARD_HOME=str(data_home), FLOWGUARD_LANDING_DIR=str(landing_dir)):
        for day in landing_days(landing_dir):
            started = time.perf_counter()
            validate_interval(day.isoformat(), (day + timedelta(days=1)).isoformat(),
                              run_name=f"backtest-{day.isoformat()}")
            seconds[day.isoformat()] = round(time.perf_counter() - started, 2)
    return seconds


def _shift_pool(data_home: Path, days: list[date], label: str) -> pd.DataFrame | None:
    """Validated rows of ``label`` from any ingested day (a new class borrowed from later in
    the week keeps its real addresses and ports); None when the dataset never has it."""
    from flowguard.features import partition_path

    frames = [pd.read_parquet(partition_path(data_home / "lake" / "flows", day),
                              filters=[("label", "==", label)]) for day in days]
    pool = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return pool if len(pool) else None


def inject_shifts(data_home: Path, days: list[date], shifts: list[ShiftSpec],
                  seed: int = 0) -> list[dict[str, Any]]:
    """Apply ``shifts`` to the ingested flows in ``data_home`` (each from its day on), then
    rebuild those days' host windows from the shifted flows. Returns what changed per day."""
    import numpy as np

    from flowguard.features import partition_path, write_host_activity, write_partition
    from flowguard.ingest import uid_base
    from flowguard.schema import FEATURE_COLUMNS, as_utc
    from flowguard.shifts import ShiftError, apply_shift, synthetic_rows

    unknown = [s.spec for s in shifts if s.start not in days]
    if unknown:
        raise ShiftError(f"shifts {unknown} start on a day that is not replayed "
                         f"({', '.join(d.isoformat() for d in days)})")
    flows_root, hosts_root = data_home / "lake" / "flows", data_home / "lake" / "hosts"
    rng = np.random.default_rng(seed)
    pools = {s.params["label"]: _shift_pool(data_home, days, s.params["label"])
             for s in shifts if s.kind == "new_class" and "label" in s.params}
    changes, injected = [], 1
    for day in days:  # in order: a day's host windows read the previous day's shifted flows
        active = [s for s in shifts if s.start <= day]
        if not active:
            continue
        path = partition_path(flows_root, day)
        flows = pd.read_parquet(path)
        rows_before = len(flows)
        for shift in active:
            params = dict(shift.params)
            if shift.kind == "new_class":
                label = params.get("label")
                pool = pools.get(label)
                if pool is None:  # never in the data: the generator's profile of the class
                    pool = synthetic_rows(label, max(1, len(flows)), rng, day)
                    donors = flows.iloc[rng.integers(0, len(flows), len(pool))]
                    pool = pd.concat([donors.drop(columns=[*FEATURE_COLUMNS, "label"])
                                      .reset_index(drop=True), pool.reset_index(drop=True)],
                                     axis=1)
                # Stamped inside this day: timestamps drawn from the day's own flows.
                pool = pool.assign(event_timestamp=flows["event_timestamp"].to_numpy()[
                    rng.integers(0, len(flows), len(pool))])
                # New rows get identities of their own (the flows view is keyed on flow_uid):
                # negative uids of the day, which the loader never produces; their source
                # says where they came from.
                pool["flow_uid"] = -(uid_base(day, 0) + injected + np.arange(len(pool)))
                injected += len(pool)
                pool["source_file"] = f"shift:{shift.spec}"
                params["pool"] = pool
            try:
                flows = apply_shift(flows, shift.kind, rng, **params)
            except (KeyError, TypeError) as exc:
                raise ShiftError(f"shift {shift.spec!r}: missing or wrong parameter ({exc})"
                                 ) from None
        for col in ("src_ip", "dst_ip", "flow_id", "label", "source_file"):
            if col in flows and flows[col].dtype != "string":
                flows[col] = flows[col].astype("string")
        flows["event_timestamp"] = flows["event_timestamp"].astype("datetime64[ns, UTC]")
        flows = flows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
        write_partition(flows, flows_root, day)
        ingested_at = as_utc(pd.Timestamp(flows["ingested_at"].iloc[0]))
        write_host_activity(flows, hosts_root, day, ingested_at, flows_root=flows_root)
        changes.append({"day": day.isoformat(), "shifts": [s.spec for s in active],
                        "rows_before": rows_before, "rows_after": len(flows),
                        "label_counts": flows["label"].value_counts().to_dict()})
        log.info("backtest: shifted %s with %s: %d -> %d rows", day, [s.spec for s in active],
                 rows_before, len(flows))
    return changes


def _release_day(data_home: Path, home: Path, day: date) -> None:
    """Make ``day``'s validated partitions visible in a policy's home (the day is over)."""
    from flowguard.features import partition_path

    for table in ("flows", "hosts"):
        source = partition_path(data_home / "lake" / table, day)
        target = partition_path(home / "lake" / table, day)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def replay_policy(policy: str, data_home: Path, home: Path, days: list[date], *,
                  warmup_days: int = 2, window_days: int = 7, sample_size: int = 1000,
                  p_val: float = 0.05, n_permutations: int = 100) -> list[DayRecord]:
    """Replay the ingested ``days`` under one policy in the throwaway ``home``."""
    from flowguard.config import get_settings
    from flowguard.monitoring import run_in_drift_runtime
    from flowguard.pipeline import (
        apply_feature_repo,
        drift_runtime_args,
        prepare_monitoring,
        report_and_decide,
    )

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose from {POLICIES}")
    if len(days) <= warmup_days:
        raise ValueError(f"{len(days)} day(s) to replay: need more than the "
                         f"{warmup_days} warm-up day(s)")
    records: list[DayRecord] = []
    with environment(FLOWGUARD_HOME=str(home), MLFLOW_TRACKING_URI=None,
                      FLOWGUARD_MODEL_NAME=f"backtest-{policy}"):
        apply_feature_repo()
        for index, day in enumerate(days):
            start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
            _release_day(data_home, home, day)
            if index < warmup_days - 1:
                continue
            if index == warmup_days - 1:  # end of warm-up: the first champion
                promoted, version = _retrain(policy, day + timedelta(days=1), window_days,
                                             "backtest warm-up")
                if not promoted:
                    raise RuntimeError(f"{policy}: the warm-up model (v{version}) did not clear "
                                       "the gate's floor; lengthen the warm-up")
                continue
            record = _score_day(policy, day)
            started = time.perf_counter()
            run_id = f"backtest__{policy}__{start}"
            # Both sides of each test at sample_size (the configured defaults are equal too):
            # a short warm-up saves a small reference sample.
            prepared = prepare_monitoring(start, end, run_id, overrides={
                "sample_size": sample_size, "reference_size": sample_size, "p_value": p_val,
                "n_permutations": n_permutations})
            # The drift runtime, called exactly as the monitoring DAG's task calls it.
            detectors = run_in_drift_runtime(drift_runtime_args(prepared),
                                             get_settings().drift_python)
            decision = report_and_decide(prepared, detectors, run_id)
            record.monitor_seconds = round(time.perf_counter() - started, 2)
            record.mmd_p_value = decision.get("mmd_p_value")
            record.classifier_p_value = decision.get("classifier_p_value")
            record.prediction_p_value = decision.get("prediction_p_value")
            record.novelty_p_value = decision.get("novelty_p_value")
            record.n_novel = (prepared.get("novelty") or {}).get("n_novel")
            record.estimated_macro_f1 = decision.get("estimated_macro_f1")
            record.drift, record.decision = bool(decision["drift"]), decision["reason"]
            # The configured policy decides (voting detectors, cooldown, one trigger a window).
            if policy == "always" or (policy == "drift" and decision["retrain"]):
                started = time.perf_counter()
                reason = "daily" if policy == "always" else f"drift: {record.decision}"
                record.promoted, record.new_version = _retrain(
                    policy, day + timedelta(days=1), window_days, reason)
                record.retrained = True
                record.train_seconds = round(time.perf_counter() - started, 2)
            log.info("backtest %s %s: %s", policy, start, asdict(record))
            records.append(record)
    return records


def summarise(records: list[DayRecord]) -> dict[str, dict[str, float]]:
    """Per policy: mean/min macro-F1 over the replayed days, retrains, promotions, compute."""
    frame = pd.DataFrame([asdict(r) for r in records])
    out: dict[str, dict[str, float]] = {}
    for policy, group in frame.groupby("policy", sort=False):
        # Monitoring is spent only by the policy that needs it to decide.
        monitor = group["monitor_seconds"].sum() if policy == "drift" else 0.0
        out[str(policy)] = {
            "mean_macro_f1": round(float(group["macro_f1"].mean()), 4),
            "min_macro_f1": round(float(group["macro_f1"].min()), 4),
            "mean_macro_f1_known": round(float(group["macro_f1_known"].mean()), 4),
            "mean_unseen_share": round(float(group["unseen_share"].mean()), 4),
            "retrains": int(group["retrained"].sum()),
            "promotions": int(group["promoted"].sum()),
            "drift_alarms": int(group["drift"].fillna(False).sum()),
            "train_seconds": round(float(group["train_seconds"].sum()), 1),
            "monitor_seconds": round(float(monitor), 1),
            "compute_seconds": round(float(group["train_seconds"].sum() + monitor), 1),
        }
    return out


def plot(records: list[DayRecord], png: Path, p_val: float = 0.05,
         n_permutations: int = 100) -> Path:
    """Macro-F1 per day per policy (drift alarms marked) above detector p-values per day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame([asdict(r) for r in records])
    frame["day"] = pd.to_datetime(frame["day"])
    policies = list(dict.fromkeys(frame["policy"]))
    # Policies often agree (same model, same p-values): each is drawn a few hours to the side
    # of the day, in its own colour in both panels, so no line hides another.
    shift = {p: pd.Timedelta(hours=3 * (i - (len(policies) - 1) / 2))
             for i, p in enumerate(policies)}
    colour = {p: f"C{i}" for i, p in enumerate(policies)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    for policy, group in frame.groupby("policy", sort=False):
        x = group["day"] + shift[policy]
        top.plot(x, group["macro_f1"], marker="o", color=colour[policy], label=policy)
        top.plot(x, group["macro_f1_known"], linestyle=":", color=colour[policy],
                 label=f"{policy} (known classes only)")
        alarms = group["drift"].fillna(False).astype(bool).to_numpy()
        if policy == "drift" and alarms.any():
            top.scatter(x[alarms], group["macro_f1"][alarms], s=220, facecolors="none",
                        edgecolors="red", linewidths=2, zorder=5, label="drift alarm -> retrain")
        promoted = group["promoted"].astype(bool).to_numpy()
        top.scatter(x[promoted], group["macro_f1"][promoted], marker="^", s=70,
                    color=colour[policy], zorder=6)
    top.set_ylabel("macro-F1 of the serving model")
    top.set_ylim(0, 1.05)
    top.set_title("Serving model on each day's labelled traffic (^ = new champion after the day)")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    floor = 1.0 / max(int(n_permutations), 1)
    for policy, group in frame.groupby("policy", sort=False):
        for column, style in (("mmd_p_value", "-"), ("classifier_p_value", "--"),
                              ("novelty_p_value", ":")):
            if column not in group or group[column].isna().all():
                continue
            # A permutation p-value of 0 means "below 1/permutations"; draw it at that floor.
            values = group[column].astype(float).clip(
                lower=floor if column == "mmd_p_value" else 1e-12)
            bottom.plot(group["day"] + shift[policy], values, style, marker=".",
                        color=colour[policy],
                        label=f"{policy} {column.removesuffix('_p_value')}")
    bottom.axhline(p_val, color="grey", linewidth=1, label=f"p = {p_val}")
    bottom.set_yscale("log")
    bottom.set_ylabel("detector p-value (log)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    days = sorted(frame["day"].unique())
    bottom.set_xticks(days, [f"{pd.Timestamp(d):%a %Y-%m-%d}" for d in days])
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def write_outputs(records: list[DayRecord], summary: dict[str, Any], out_dir: Path,
                  meta: dict[str, Any]) -> dict[str, str]:
    """JSON, CSV, PNG and a self-contained HTML page under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([asdict(r) for r in records])
    flat = table.drop(columns=["recall"]).join(
        pd.json_normalize(table["recall"].tolist()).add_prefix("recall."))
    csv = out_dir / "backtest.csv"
    flat.to_csv(csv, index=False)
    js = out_dir / "backtest.json"
    js.write_text(json.dumps({"meta": meta, "summary": summary,
                              "days": [asdict(r) for r in records]}, indent=2, default=str))
    png = plot(records, out_dir / "backtest.png", meta["p_val"], meta["n_permutations"])
    image = base64.b64encode(png.read_bytes()).decode()
    summary_html = pd.DataFrame(summary).T.to_html()
    days_html = flat.drop(columns=[c for c in flat.columns if c.startswith("recall.")]).to_html(
        index=False, float_format=lambda v: f"{v:.4g}")
    html = out_dir / "backtest.html"
    html.write_text(
        "<!doctype html><meta charset='utf-8'><title>flowguard backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}</style>"
        f"<h1>Retraining policy backtest</h1><p>{json.dumps(meta)}</p>"
        f"<img alt='macro-F1 and p-values per day' src='data:image/png;base64,{image}'>"
        f"<h2>Per policy</h2>{summary_html}<h2>Per day</h2>{days_html}")
    return {"json": str(js), "csv": str(csv), "png": str(png), "html": str(html)}


def run_backtest(landing_dir: Path | None, out_dir: Path, *, scale: float = 0.01, seed: int = 7,
                 policies: tuple[str, ...] = POLICIES, warmup_days: int = 2,
                 window_days: int = 7, sample_size: int = 1000, p_val: float = 0.05,
                 n_permutations: int = 100, log_to_mlflow: bool = True,
                 shifts: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Replay ``landing_dir`` (a synthetic week when None) under ``policies``, with the
    controlled ``shifts`` (specs, see the module docstring) injected."""
    from flowguard.synth import generate_week

    specs = [ShiftSpec.parse(s) for s in shifts]  # a bad spec fails before any work
    out_dir = Path(out_dir).resolve()
    if landing_dir is None:
        landing_dir = out_dir / "landing"
        generate_week(landing_dir, scale=scale, seed=seed)
    landing_dir = Path(landing_dir).resolve()
    meta = {"landing_dir": str(landing_dir), "scale": scale, "seed": seed,
            "warmup_days": warmup_days, "window_days": window_days, "sample_size": sample_size,
            "p_val": p_val, "n_permutations": n_permutations, "policies": list(policies),
            "shifts": [s.spec for s in specs]}
    records: list[DayRecord] = []
    started = time.perf_counter()
    # A rerun (an Airflow retry) starts from empty homes, so it gives the same result.
    shutil.rmtree(out_dir / "homes", ignore_errors=True)
    data_home = out_dir / "homes" / "data"
    meta["ingest_seconds"] = ingest_all(landing_dir, data_home)
    days = [date.fromisoformat(d) for d in meta["ingest_seconds"]]
    if specs:
        meta["shifted"] = inject_shifts(data_home, days, specs, seed=seed)
    for policy in policies:
        records += replay_policy(policy, data_home, out_dir / "homes" / policy, days,
                                 warmup_days=warmup_days, window_days=window_days,
                                 sample_size=sample_size, p_val=p_val,
                                 n_permutations=n_permutations)
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    summary = summarise(records)
    paths = write_outputs(records, summary, out_dir, meta)
    if log_to_mlflow:
        paths["mlflow_run_id"] = _log_to_mlflow(summary, meta, paths)
    return {"summary": summary, "paths": paths, "meta": meta}


def _log_to_mlflow(summary: dict[str, Any], meta: dict[str, Any], paths: dict[str, str]) -> str:
    """Log the result to the caller's tracking store (not the throwaway homes')."""
    import mlflow

    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow
    from flowguard.training import ensure_experiment

    settings = get_settings()
    _mlflow(settings)
    experiment = ensure_experiment("flowguard-backtest",
                                   settings.home / "mlflow" / "artifacts" / "flowguard-backtest")
    with mlflow.start_run(experiment_id=experiment, run_name="backtest") as run:
        mlflow.log_params({k: v for k, v in meta.items() if k not in {"landing_dir", "shifted"}})
        mlflow.set_tag("landing_dir", meta["landing_dir"])
        for policy, values in summary.items():
            mlflow.log_metrics({f"{policy}.{k}": float(v) for k, v in values.items()})
        for key in ("json", "csv", "png", "html"):
            mlflow.log_artifact(paths[key])
        return run.info.run_id
