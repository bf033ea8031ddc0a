"""One function per DAG task. Each takes and returns small JSON-able values (paths, ids,
metrics), reads its settings from :func:`flowguard.config.get_settings` and calls the stage
modules. The DAG files only wire these together.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from flowguard.config import Settings, get_settings
from flowguard.schema import as_utc

log = logging.getLogger(__name__)


def _day(ts: str | datetime) -> date:
    return pd.Timestamp(ts).date()


def _utc(ts: str | datetime) -> datetime:
    return as_utc(ts).to_pydatetime()


def _run_dir(root: Path, run_id: str) -> Path:
    """A per-run folder; Airflow run ids carry ':' and '+', which stay out of paths."""
    return root / run_id.replace(":", "_").replace("+", "_")


def _mlflow(settings: Settings) -> Any:
    import mlflow

    (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient()


# ---------------------------------------------------------------- ingest + validate


def validate_interval(start: str, end: str, run_name: str) -> dict[str, Any]:
    """Read the interval's landing files, validate them, write valid rows and quarantine."""
    from flowguard.features import write_host_activity, write_partition, write_valid_flows
    from flowguard.ingest import read_day
    from flowguard.validation import check_accounting, get_context, validate_batch

    settings = get_settings()
    started = time.perf_counter()
    day = _day(start)
    frame = read_day(settings.landing_dir, day)
    outcome = validate_batch(frame, get_context(settings.gx_dir), (_utc(start), _utc(end)),
                             run_name=run_name)
    now = datetime.now(UTC)
    valid_path = write_valid_flows(outcome.valid, settings.flows_source, day, now)
    hosts_path = write_host_activity(outcome.valid, settings.lake_dir / "hosts", day, now)
    quarantine = outcome.quarantined.astype({"raw_label": "string", "label": "string"})
    quarantine_path = write_partition(quarantine, settings.quarantine_dir / "flows", day)
    check_accounting(len(frame), len(outcome.valid), len(quarantine), f"ingest {day}")
    result = {
        "day": day.isoformat(), "rows_in": len(frame), "rows_valid": len(outcome.valid),
        "rows_quarantined": len(quarantine), "valid_path": str(valid_path),
        "quarantine_path": str(quarantine_path), "hosts_path": str(hosts_path), "validation_result_id": outcome.result_id,
        "data_docs": str(settings.data_docs_index), "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("validated %s", result)
    return result


def apply_feature_repo() -> list[str]:
    """``feast apply`` the repo's definitions (idempotent; keeps materialization state)."""
    from flowguard.features import apply_definitions

    settings = get_settings()
    return apply_definitions(settings.feature_repo, settings.home)


def materialize_interval(start: str, end: str) -> dict[str, Any]:
    """Materialize the interval into the online store."""
    from flowguard.features import get_store, materialize

    settings = get_settings()
    started = time.perf_counter()
    materialize(get_store(settings.feature_repo, settings.home), _utc(start), _utc(end))
    return {"start": start, "end": end, "seconds": round(time.perf_counter() - started, 2)}


# ---------------------------------------------------------------- train


def training_days(settings: Settings, as_of: str | None, window_days: int) -> list[date]:
    """Days with validated partitions in ``[as_of - window_days, as_of)``."""
    available = sorted(date.fromisoformat(p.name.split("=", 1)[1])
                       for p in settings.flows_source.glob("date=*") if p.is_dir())
    if not available:
        raise FileNotFoundError(f"no validated flows under {settings.flows_source}: run ingest")
    end = date.fromisoformat(as_of) if as_of else available[-1] + timedelta(days=1)
    return [d for d in available if end - timedelta(days=window_days) <= d < end]


def build_training_set(as_of: str | None, window_days: int, run_id: str) -> dict[str, Any]:
    """Point-in-time training set through the feature service, written to the run's folder."""
    from flowguard.features import entity_rows, get_store, historical_features

    settings = get_settings()
    days = training_days(settings, as_of, window_days)
    entities = entity_rows(settings.flows_source, days)
    frame = historical_features(get_store(settings.feature_repo, settings.home), entities)
    path = _run_dir(settings.work_dir / "train", run_id) / "training_set.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return {"path": str(path), "rows": len(frame), "days": [d.isoformat() for d in days],
            "classes": frame["label"].value_counts().to_dict()}


def train_model(training_path: str, lineage: dict[str, str]) -> dict[str, Any]:
    """Train, log to MLflow and register a new version."""
    from flowguard.registry import register
    from flowguard.training import train_and_log

    settings = get_settings()
    client = _mlflow(settings)
    result = train_and_log(Path(training_path), settings.home / "mlflow" / "artifacts",
                           settings.model_name, lineage)
    version = register(client, settings.model_name, result.model_uri, result.run_id)
    return {"run_id": result.run_id, "version": version,
            "macro_f1": result.metrics["macro_f1"], "accuracy": result.metrics["accuracy"],
            "classes": result.classes}


def promote_if_better(version: str) -> dict[str, Any]:
    """Gate the new version against the champion and move the aliases if it wins."""
    from flowguard.registry import gate_and_promote

    settings = get_settings()
    return gate_and_promote(_mlflow(settings), settings.model_name, version).as_dict()


# ---------------------------------------------------------------- monitor


def prepare_monitoring(start: str, end: str, run_id: str, n: int = 1000) -> dict[str, Any]:
    """Reference vs window inputs for the drift runtime, plus prediction and feature shift."""

    from flowguard.features import entity_rows, get_store, historical_features
    from flowguard.monitoring import feature_shift, prediction_drift, prepare_inputs
    from flowguard.registry import champion_version, load_model, load_run_frame
    from flowguard.training import predict_labels

    settings = get_settings()
    client = _mlflow(settings)
    version = champion_version(client, settings.model_name)
    if version is None:
        raise LookupError(f"no '{settings.model_name}@champion' yet: run the training DAG first")
    run_id = client.get_model_version(settings.model_name, version).run_id
    reference = load_run_frame(client, run_id, "reference/reference.parquet")
    current = historical_features(get_store(settings.feature_repo, settings.home),
                                  entity_rows(settings.flows_source, [_day(start)]))
    out_dir = _run_dir(settings.work_dir / "monitor", run_id)
    prepared = prepare_inputs(reference, current, out_dir, n=n)
    model, classes = load_model(client, settings.model_name, version)
    prepared.update(
        window=f"{_day(start)}", champion_version=version,
        prediction_drift=prediction_drift(predict_labels(model, classes, reference),
                                          predict_labels(model, classes, current), classes),
        top_features=feature_shift(reference, current),
    )
    return prepared


def report_and_decide(prepared: dict[str, Any], detectors: dict[str, Any], run_id: str,
                      policy: str = "all") -> dict[str, Any]:
    """Decide, write the HTML/JSON report, log it to MLflow, return the decision."""
    import mlflow

    from flowguard.monitoring import decide, write_report
    from flowguard.training import ensure_experiment

    settings = get_settings()
    _mlflow(settings)
    drift, reason = decide(detectors, policy)
    report = {**{k: v for k, v in prepared.items() if not k.endswith("_path")},
              "detectors": detectors, "drift": drift, "decision": reason, "policy": policy}
    paths = write_report(report, settings.reports_dir / "drift" / prepared["window"])
    experiment = ensure_experiment("flowguard-monitoring",
                                   settings.home / "mlflow" / "artifacts" / "flowguard-monitoring")
    with mlflow.start_run(experiment_id=experiment, run_name=f"drift {prepared['window']}"):
        mlflow.log_metrics({"mmd_p_value": detectors["mmd"]["p_value"],
                            "classifier_p_value": detectors["classifier"]["p_value"],
                            "prediction_p_value": prepared["prediction_drift"]["p_value"],
                            "drift": float(drift)})
        mlflow.set_tags({"window": prepared["window"], "airflow_run_id": run_id,
                         "champion_version": prepared["champion_version"]})
        mlflow.log_artifact(paths["json"])
        mlflow.log_artifact(paths["html"])
    return {"drift": drift, "reason": reason, "report_html": paths["html"],
            "report_json": paths["json"], "window": prepared["window"],
            "mmd_p_value": detectors["mmd"]["p_value"],
            "classifier_p_value": detectors["classifier"]["p_value"]}


# ---------------------------------------------------------------- online scoring


def score_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score flows with ``champion`` and host features from the online store."""
    from flowguard.features import get_store
    from flowguard.registry import champion_version, load_model
    from flowguard.scoring import score_flows

    settings = get_settings()
    client = _mlflow(settings)
    version = champion_version(client, settings.model_name)
    if version is None:
        raise LookupError(f"no '{settings.model_name}@champion' yet: run the training DAG first")
    model, classes = load_model(client, settings.model_name, version)
    store = get_store(settings.feature_repo, settings.home)
    return score_flows(records, store, model, classes, version)
