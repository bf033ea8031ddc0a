"""One function per DAG task. Each takes and returns small JSON-able values (paths, ids,
metrics), reads its settings from :func:`flowguard.config.get_settings` and calls the stage
modules. The DAG files only wire these together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from flowguard.config import Settings, get_settings
from flowguard.logs import quiet_library_logs
from flowguard.schema import as_utc
from flowguard.validation import NoRowsInInterval

log = logging.getLogger(__name__)


class NothingToDo(Exception):  # noqa: N818 - a state, not an error: the DAG task skips
    """The run has nothing to work on (no data for its day, no champion yet): the DAG task
    is skipped with this message instead of failing and retrying."""


class NoDataForDay(NothingToDo, LookupError):
    """No landing data (or no validated partition) for the run's day."""


class WrongDayFiles(NothingToDo, NoRowsInInterval):
    """The day's landing files hold another day's flows (a landing folder with an old week:
    after unpausing, the scheduled run for yesterday finds 2017's Tuesday file)."""


class NoChampion(NothingToDo, LookupError):
    """Nothing to monitor before a first model is promoted."""


def _day(ts: str | datetime) -> date:
    return pd.Timestamp(ts).date()


def _utc(ts: str | datetime) -> datetime:
    return as_utc(ts).to_pydatetime()


def _run_dir(root: Path, run_id: str) -> Path:
    """A per-run folder; Airflow run ids carry ':' and '+', which stay out of paths, and a
    run id such as ``..`` is refused (:func:`flowguard.safepaths.confined`)."""
    from flowguard.safepaths import confined

    return confined(root, run_id)


def _mlflow(settings: Settings) -> Any:
    quiet_library_logs()  # before MLflow draws a progress bar on stderr
    import mlflow

    from flowguard.mlflow_store import install

    install()  # a busy SQLite store is waited for, with a bound and a clear message
    (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    # mlflow.set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ,
    # which get_settings() reads as configuration: a process that later points FLOWGUARD_HOME
    # elsewhere (the backtest's homes, tests) would keep writing to the first home's store.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return mlflow.MlflowClient()


# ---------------------------------------------------------------- ingest + validate


def validate_interval(start: str, end: str, run_name: str,
                      chunk_rows: int | None = None) -> dict[str, Any]:
    """Read the interval's landing files, validate them, write valid rows and quarantine.

    Chunk by chunk, in memory bounded by ``chunk_rows`` (default
    :data:`flowguard.ingest.CHUNK_ROWS`), through the same :func:`flowguard.batch.validate_chunks`
    as ``flowguard validate``: each chunk's valid rows are staged to parquet and folded into
    the host-activity partials, its quarantine appended to the day's quarantine partition.
    The batch-level rules (accounting, labels, interval, rejected share) hold for the whole
    day. Only then are the partitions written, each atomically and exactly as one
    whole-day batch would write them: the validated flows (stamped with ``ingested_at``, after
    the validation results, which :mod:`flowguard.lineage` relies on), the host windows and
    the quarantine. Every chunk's GX result carries ``run_name``.
    """
    import shutil

    from flowguard.ingest import files_for_day
    from flowguard.safepaths import component

    run_name = component(run_name)  # GX files its results under the run name too: first
    settings = get_settings()
    day = _day(start)
    if not files_for_day(settings.landing_dir, day):  # before any work, GX's import included
        raise NoDataForDay(f"no data for {day}: no landing file for {day:%A} in "
                           f"{settings.landing_dir}")
    quiet_library_logs()  # before great_expectations is imported
    import pyarrow.parquet as pq

    from flowguard.batch import (
        ParquetSink,
        day_contract,
        skip_if_no_row_in_interval,
        validate_chunks,
    )
    from flowguard.datadocs import make_offline
    from flowguard.daycommit import begin_day, commit_day
    from flowguard.features import (
        combine_host_partials,
        host_partials,
        partition_path,
        valid_flows_columns,
        valid_flows_frame,
        write_host_activity,
    )
    from flowguard.ingest import CHUNK_ROWS, day_files, iter_day_chunks
    from flowguard.validation import build_data_docs, check_accounting, get_context

    started = time.perf_counter()
    # files of a dataset the model does not read: fail before any work
    contract = day_contract(day_files(settings.landing_dir, day))
    # a weekday file of another week (the scheduled run for yesterday) ends here, before
    # Great Expectations is imported; the chunks read so far are validated, not re-read
    interval, chunk_rows = (_utc(start), _utc(end)), chunk_rows or CHUNK_ROWS
    try:
        chunks = skip_if_no_row_in_interval(iter_day_chunks(settings.landing_dir, day, chunk_rows),
                                            interval, contract, chunk_rows)
    except NoRowsInInterval as exc:
        raise WrongDayFiles(f"no data for {day}: {exc}") from exc
    context = get_context(settings.gx_dir)
    stage_dir = _run_dir(settings.work_dir / "ingest", run_name)
    stage = ParquetSink(stage_dir / "valid.parquet", write_empty=True)
    quarantine = ParquetSink(partition_path(settings.quarantine_dir / "flows", day),
                             write_empty=True)
    valid = ParquetSink(partition_path(settings.flows_source, day), write_empty=True)
    partials: list[Any] = []

    def on_valid(rows: pd.DataFrame) -> None:
        stage.write(rows[valid_flows_columns(rows)])
        partials[:] = [combine_host_partials([*partials, host_partials(rows)])]

    def on_quarantine(rows: pd.DataFrame) -> None:
        quarantine.write(rows.astype({"raw_label": "string", "label": "string"}))

    try:
        tally = validate_chunks(chunks, context, interval, contract,
                                lambda _: run_name, on_valid, on_quarantine, f"ingest {day}")
        # Nothing is written unless every row is accounted for (valid or quarantined).
        check_accounting(tally.rows_in, stage.rows, quarantine.rows, f"ingest {day} (written)")
        build_data_docs(context)
        make_offline(settings.data_docs_index.parent)
        stage.commit()
        begin_day(settings.flows_source, day, run_name)  # readers skip the day until commit
        now = datetime.now(UTC)  # after the validation results: see flowguard.lineage
        staged = pq.ParquetFile(stage.path)
        for group in range(staged.num_row_groups):
            valid.write(valid_flows_frame(staged.read_row_group(group).to_pandas(), now))
        if not staged.num_row_groups:
            valid.write(valid_flows_frame(staged.read().to_pandas(), now))
        valid_path = valid.commit()
        hosts_path = write_host_activity(None, settings.lake_dir / "hosts", day, now,
                                         flows_root=settings.flows_source,
                                         partials=partials[0] if partials else None)
        quarantine_path = quarantine.commit()
        commit_day(settings.flows_source, day)
    except BaseException as exc:
        for sink in (stage, valid, quarantine):
            sink.abort()
            with contextlib.suppress(OSError):  # leave no empty date=<day> folder behind
                sink.path.parent.rmdir()
        if isinstance(exc, NoRowsInInterval):
            raise WrongDayFiles(f"no data for {day}: {exc}") from exc
        raise
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    result = {
        "day": day.isoformat(), "rows_in": tally.rows_in, "rows_valid": tally.rows_valid,
        "rows_quarantined": tally.rows_quarantined, "chunks": tally.chunks,
        "valid_path": str(valid_path), "quarantine_path": str(quarantine_path),
        "hosts_path": str(hosts_path), "validation_result_id": tally.result_ids[-1],
        "data_docs": str(settings.data_docs_index),
        "seconds": round(time.perf_counter() - started, 2),
    }
    from flowguard.dataversion import record  # what this run read and wrote (DVC)

    result["data_version"] = record(settings.home, settings.landing_dir)
    log.info("validated %s", result)
    return result


def apply_feature_repo() -> list[str]:
    """``feast apply`` the repo's definitions (idempotent; keeps materialization state)."""
    from flowguard.features import apply_definitions

    settings = get_settings()
    return apply_definitions(settings.feature_repo, settings.home)


def materialize_interval(start: str, end: str) -> dict[str, Any]:
    """Materialize the interval (plus a small overlap for late data) into the online store."""
    from flowguard.features import get_store, materialize

    settings = get_settings()
    started = time.perf_counter()
    read = materialize(get_store(settings.feature_repo, settings.home), _utc(start), _utc(end),
                       overlap=timedelta(minutes=settings.materialize_overlap_minutes))
    return {"start": start, "end": end, "materialized": [t.isoformat() for t in read],
            "seconds": round(time.perf_counter() - started, 2)}


# ---------------------------------------------------------------- train


def training_days(settings: Settings, as_of: str | None, window_days: int) -> list[date]:
    """Days with validated partitions in ``[as_of - window_days, as_of)``, committed whole
    (:mod:`flowguard.daycommit`)."""
    from flowguard.daycommit import is_complete

    available = sorted(day for day in (date.fromisoformat(p.name.split("=", 1)[1])
                                       for p in settings.flows_source.glob("date=*")
                                       if p.is_dir())
                       if is_complete(settings.flows_source, day))
    if not available:
        raise FileNotFoundError(f"no validated flows under {settings.flows_source}: run ingest")
    end = date.fromisoformat(as_of) if as_of else available[-1] + timedelta(days=1)
    return [d for d in available if end - timedelta(days=window_days) <= d < end]


def build_training_set(as_of: str | None, window_days: int, run_id: str,
                       chunk_rows: int | None = None) -> dict[str, Any]:
    """Point-in-time training set through the feature service, written to the run's folder.

    Retrieved and written ``chunk_rows`` entity rows at a time (default
    ``FLOWGUARD_TRAINING_CHUNK_ROWS``, :data:`flowguard.config.TRAINING_CHUNK_ROWS`), so
    the task's memory is bounded by a chunk, not the window; the file and its digest are
    those of one whole-window retrieval (:func:`flowguard.features.write_training_set`).
    Also returns the lineage of its inputs: the feature service (name, version, features)
    and the Great Expectations validation result behind each day's partition.
    """
    from flowguard.dataversion import record
    from flowguard.features import entity_rows, get_store, write_training_set
    from flowguard.lineage import validation_results_for_days
    from flowguard.profiles import active

    settings = get_settings()
    service_name = active().feast.feature_service
    days = training_days(settings, as_of, window_days)
    # what this run reads, versioned before it reads it (flowguard reproduce checks it out)
    data_version = record(settings.home, settings.landing_dir)
    entities = entity_rows(settings.flows_source, days)
    store = get_store(settings.feature_repo, settings.home)
    path = _run_dir(settings.work_dir / "train", run_id) / "training_set.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    written = write_training_set(store, entities, service_name, path,
                                 chunk_rows or settings.training_chunk_rows)
    del entities
    service = store.get_feature_service(service_name)
    features = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    return {"path": str(path), "rows": written["rows"], "days": [d.isoformat() for d in days],
            "classes": written["classes"], "digest": written["digest"],
            "dataset": settings.dataset, "feature_service": service_name,
            "feature_service_version": service_name.rsplit("_", 1)[-1],
            "feature_service_features": features, "data_version": data_version,
            "validation_results": validation_results_for_days(settings.gx_dir,
                                                              settings.flows_source, days)}


def train_model(training_path: str, lineage: dict[str, Any],
                tuning: dict[str, Any] | None = None, seed: int = 42) -> dict[str, Any]:
    """Tune, train, log to MLflow and register a new version.

    The frozen holdout's flows (once a champion exists) are kept out of training.
    """
    from flowguard.registry import frozen_holdout, register
    from flowguard.training import train_and_log, tuning_config

    settings = get_settings()
    client = _mlflow(settings)
    frozen = frozen_holdout(client, settings.model_name)
    # what `flowguard reproduce` needs beyond the run's params and data version
    lineage = {**lineage, "frozen_holdout_run": frozen[0] if frozen else None,
               "train_on_attempted": settings.train_on_attempted}
    result = train_and_log(Path(training_path), settings.home / "mlflow" / "artifacts",
                           settings.model_name, lineage, seed=seed, tuning=tuning_config(tuning),
                           exclude_uids=frozen[1]["flow_uid"] if frozen else None,
                           include_attempted=settings.train_on_attempted)
    version = register(client, settings.model_name, result.model_uri, result.run_id,
                       description=f"run {result.run_id}: holdout macro-F1 "
                                   f"{result.metrics['macro_f1']:.4f}; see model_card.md")
    return {"run_id": result.run_id, "version": version,
            "experiment_id": client.get_run(result.run_id).info.experiment_id,
            "macro_f1": result.metrics["macro_f1"], "accuracy": result.metrics["accuracy"],
            "log_loss": result.metrics.get("log_loss"), "classes": result.classes,
            "params": result.params, "tuning_trials": result.trials}


def promote_if_better(version: str, airflow_run_id: str | None = None) -> dict[str, Any]:
    """Gate the new version against the champion; move the aliases if it wins, else alert
    (with links to the version's MLflow run and, from a DAG, the Airflow run)."""
    from flowguard.alerts import airflow_run_url, mlflow_run_url, send_alert
    from flowguard.registry import gate_and_promote

    settings = get_settings()
    client = _mlflow(settings)
    decision = gate_and_promote(client, settings.model_name, version, gate_policy(settings),
                                lock_uri=settings.registry_lock_uri,
                                lock_dir=settings.home / "locks").as_dict()
    if not decision["promoted"]:
        run = client.get_run(client.get_model_version(settings.model_name, version).run_id)
        links = f"\nmlflow run: {mlflow_run_url(run.info.experiment_id, run.info.run_id)}"
        if airflow_run_id:
            links += f"\nairflow run: {airflow_run_url('flowguard_train', airflow_run_id)}"
        decision["alert"] = send_alert(
            f"flowguard: model v{version} failed the promotion gate",
            f"{decision['reason']}\nThe champion (v{decision['champion_version']}) is unchanged."
            + links)
    return decision


def gate_policy(settings: Settings) -> Any:
    from flowguard.registry import GatePolicy

    return GatePolicy(tolerance=settings.gate_tolerance, recall_margin=settings.gate_recall_margin,
                      floor=settings.gate_floor)


def rollback_champion(version: str | None = None) -> dict[str, Any]:
    """``champion`` back to ``previous`` (or to ``version``) under the registry lock;
    idempotent. Returns champion, previous, whether it changed and what happened."""
    from flowguard.registry import rollback_to

    settings = get_settings()
    return rollback_to(_mlflow(settings), settings.model_name, version,
                       lock_uri=settings.registry_lock_uri, lock_dir=settings.home / "locks")


# ---------------------------------------------------------------- monitor


def prepare_monitoring(start: str, end: str, run_id: str,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reference vs window inputs for the drift runtime, plus prediction, performance and
    feature shift. Settings: ``config/monitoring.yaml`` with ``overrides`` (the run's Params)."""

    from flowguard.features import (
        entity_rows,
        get_store,
        monitoring_frames,
        partition_path,
    )
    from flowguard.harm import harm_estimate
    from flowguard.monitoring import (
        calibrate,
        feature_shift,
        load_monitoring_config,
        novelty_check,
        performance_drift,
        prediction_drift,
        prepare_inputs,
        served_traffic_check,
        served_window,
    )
    from flowguard.profiles import active
    from flowguard.registry import champion_version, load_model, load_run_frame
    from flowguard.training import predict_labels, predict_proba

    settings = get_settings()
    day_path = partition_path(settings.flows_source, _day(start))
    if not day_path.exists():
        raise NoDataForDay(f"no data for {_day(start)}: no validated flows at {day_path} "
                           "(ingest has not run for that day, or found nothing)")
    # the profile's monitoring settings, then the run's Params over them
    config = load_monitoring_config(settings.monitoring_config,
                                    {**active().monitoring, **(overrides or {})})
    client = _mlflow(settings)
    version = champion_version(client, settings.model_name)
    if version is None:
        raise NoChampion(f"nothing to monitor on {_day(start)}: no "
                         f"'{settings.model_name}@champion' yet (run flowguard_train first)")
    model_run = client.get_model_version(settings.model_name, version).run_id
    service = client.get_run(model_run).data.tags.get("lineage.feature_service",
                                                      active().feast.feature_service)
    reference, current = monitoring_frames(
        get_store(settings.feature_repo, settings.home),
        load_run_frame(client, model_run, "reference/reference.parquet"),
        entity_rows(settings.flows_source, [_day(start)]), service)
    out_dir = _run_dir(settings.work_dir / "monitor", run_id)
    prepared = prepare_inputs(reference, current, out_dir, n=config.sample_size,
                              seed=config.seed, reference_size=config.reference_size)
    model, classes = load_model(client, settings.model_name, version)
    window_pred = predict_labels(model, classes, current)
    baseline = client.get_run(model_run).data.metrics.get("macro_f1")
    performance = None
    if baseline is not None and "label" in current.columns:
        performance = performance_drift(current["label"].to_numpy(dtype=object), window_pred,
                                        float(baseline), config.performance_drop)
    reference_pred = predict_labels(model, classes, reference)
    prepared.update(
        window=f"{_day(start)}", champion_version=version, config=config.as_dict(),
        prediction_drift=prediction_drift(reference_pred, window_pred, classes),
        # what `flowguard serve` answered for the window's flows (reported, not a voter)
        served_traffic=served_traffic_check(
            reference, reference_pred, served_window(settings.lake_dir, start, end), classes,
            version, config.p_value, config.top_features),
        performance_drift=performance,
        top_features=feature_shift(reference, current, top=config.top_features),
        # the block-calibrated null: computed once per champion and settings, then cached
        calibration=calibrate(reference, config, settings.work_dir / "calibration",
                              saved=saved_calibration(client, model_run)),
        novelty=novelty_check(reference, current, config),
        harm=harm_estimate(predict_proba(model, reference), predict_proba(model, current),
                           classes, config.harm_drop),
    )
    return prepared


CALIBRATION_ARTIFACT = "reference/calibration.json"


def saved_calibration(client: Any, run_id: str) -> dict[str, Any] | None:
    """The calibration :func:`calibrate_champion` stored with the model's run, if any."""
    import json
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, CALIBRATION_ARTIFACT, tmp)
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())


def calibrate_champion(decision: dict[str, Any]) -> dict[str, Any]:
    """After a promotion, compute the calibrated null of the daily check (issue 15) on the
    new champion's reference exactly as monitoring reads it (through its feature service,
    with the monitoring configuration's settings) and store it with the model's run
    (``reference/calibration.json``), so the first monitoring run does not pay for it. A
    version that was not promoted gets none; a reference too small for the configured
    sizes gets none either (reported, not raised: monitoring then says so itself)."""
    import json
    import tempfile

    from flowguard.features import FEATURE_SERVICE, get_store, reference_features
    from flowguard.monitoring import calibrate, load_monitoring_config
    from flowguard.registry import load_run_frame

    if not decision.get("promoted"):
        return {"calibrated": False, "why": "not promoted"}
    settings = get_settings()
    client = _mlflow(settings)
    version = str(decision["version"])
    run_id = client.get_model_version(settings.model_name, version).run_id
    service = client.get_run(run_id).data.tags.get("lineage.feature_service", FEATURE_SERVICE)
    reference = reference_features(get_store(settings.feature_repo, settings.home),
                                   load_run_frame(client, run_id, "reference/reference.parquet"),
                                   service)
    calibration = calibrate(reference, load_monitoring_config(settings.monitoring_config),
                            settings.work_dir / "calibration")
    if calibration is None:  # calibration_draws: 0, or the reference is too small for it
        log.warning("no calibration saved for version %s: disabled or too few reference "
                    "rows", version)
        return {"calibrated": False, "why": "calibration disabled or too few reference rows"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(CALIBRATION_ARTIFACT).name
        path.write_text(json.dumps({k: v for k, v in calibration.items() if k != "source"}))
        client.log_artifact(run_id, str(path), str(Path(CALIBRATION_ARTIFACT).parent))
    return {"calibrated": True, "version": version, "run_id": run_id,
            "key": calibration["key"], "draws": calibration["draws"],
            "seconds": calibration.get("seconds")}


def monitoring_day(day: str | None, event_days: list[str], start: str | None,
                   end: str | None) -> date:
    """The day a monitoring run checks, first of: the ``day`` Param; the newest day of the
    asset events that triggered the run (ingest's ``materialize`` puts its day in the event's
    extra); the run's data interval when it spans time (a REST trigger that names one); the
    newest validated day. Raises :class:`NoDataForDay` when there is none."""
    if day:
        return date.fromisoformat(str(day)[:10])
    if event_days:
        return max(date.fromisoformat(d) for d in event_days)
    if start and end and start not in ("None", end) and pd.Timestamp(start) < pd.Timestamp(end):
        return _day(start)
    flows = get_settings().flows_source
    days = sorted(p.name.split("=", 1)[1] for p in flows.glob("date=*") if p.is_dir())
    if not days:
        raise NoDataForDay(f"no data to monitor: no validated flows under {flows}")
    return date.fromisoformat(days[-1])


def drift_runtime_args(prepared: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`flowguard.drift.run_detectors` for this check."""
    config = prepared["config"]
    return {"ref_path": prepared["ref_path"], "cur_path": prepared["cur_path"],
            "p_val": config["p_value"], "n_permutations": config["n_permutations"],
            "seed": config["seed"], "mmd_backend": config["mmd_backend"],
            "classifier_estimators": config["classifier_estimators"],
            "detectors": [d for d in config["detectors"] if d in ("mmd", "classifier")]}


def report_and_decide(prepared: dict[str, Any], detectors: dict[str, Any], run_id: str,
                      ) -> dict[str, Any]:
    """Decide (policy, cooldown), write the HTML/JSON report, log it to MLflow, return the
    decision with the ``conf`` a retraining run gets."""
    import mlflow

    from flowguard.calibration import apply_calibration
    from flowguard.monitoring import (
        _calibration_summary,
        decide,
        record_history,
        retrain_decision,
        write_report,
    )
    from flowguard.training import ensure_experiment

    settings = get_settings()
    _mlflow(settings)
    config = prepared["config"]
    pred = prepared["prediction_drift"]
    detectors = apply_calibration(detectors, prepared.get("calibration"), config["p_value"])
    votes = {**{k: detectors[k] for k in ("mmd", "classifier") if k in detectors},
             "novelty": prepared.get("novelty"),
             "prediction": {**pred, "is_drift": pred["p_value"] < config["p_value"]},
             "performance": prepared.get("performance_drift"), "harm": prepared.get("harm")}
    drift, reason = decide(votes, config["policy"], config["detectors"], config["p_value"])
    drift_dir = settings.reports_dir / "drift"
    action = retrain_decision(drift_dir / "triggers.json", prepared["window"],
                              prepared["champion_version"], drift, config["cooldown_days"],
                              run_id)
    p_values = {f"{k}_p_value": (votes[k] or {}).get("p_value") for k in
                ("mmd", "classifier", "novelty", "prediction")}
    harm, perf = votes["harm"] or {}, votes["performance"] or {}
    history = record_history(drift_dir / "history.json", {
        "window": prepared["window"], "run_id": run_id, "drift": drift,
        "retrain": action["retrain"], "champion_version": prepared["champion_version"],
        **p_values, "n_novel": (votes["novelty"] or {}).get("n_novel"),
        "estimated_macro_f1": harm.get("estimated_macro_f1"),
        "measured_macro_f1": perf.get("window_macro_f1")})
    report = {**{k: v for k, v in prepared.items() if not k.endswith("_path")},
              "calibration": _calibration_summary(prepared.get("calibration")),
              "detectors": {**detectors, "novelty": votes["novelty"],
                            "prediction": votes["prediction"],
                            "performance": votes["performance"], "harm": votes["harm"]},
              "drift": drift, "decision": reason, "policy": config["policy"],
              "voters": list(config["detectors"]), "action": action, "airflow_run_id": run_id}
    paths = write_report(report, drift_dir / prepared["window"], history)
    experiment = ensure_experiment("flowguard-monitoring",
                                   settings.home / "mlflow" / "artifacts" / "flowguard-monitoring")
    with mlflow.start_run(experiment_id=experiment,
                          run_name=f"drift {prepared['window']}") as mlflow_run:
        mlflow.log_metrics({**{k: v for k, v in p_values.items() if v is not None},
                            "drift": float(drift), "retrain": float(action["retrain"]),
                            **({"estimated_macro_f1": harm["estimated_macro_f1"]}
                               if harm.get("estimated_macro_f1") is not None else {})})
        mlflow.log_params({k: str(v) for k, v in config.items()})
        mlflow.set_tags({"window": prepared["window"], "airflow_run_id": run_id,
                         "champion_version": prepared["champion_version"]})
        mlflow.log_artifact(paths["json"])
        mlflow.log_artifact(paths["html"])
    top = [f["feature"] for f in prepared["top_features"]]
    novel = (votes["novelty"] or {}).get("novel", [])[:10]
    return {"drift": drift, "retrain": action["retrain"], "why": action["why"],
            "novel_flows": novel, "estimated_macro_f1": harm.get("estimated_macro_f1"),
            "reason": reason, "report_html": paths["html"], "report_json": paths["json"],
            "window": prepared["window"], "top_features": top, **p_values,
            "airflow_run_id": run_id, "mlflow_run_id": mlflow_run.info.run_id,
            "mlflow_experiment_id": experiment,
            "conf": {"as_of": str(_day(prepared["window"]) + timedelta(days=1)),
                     "reason": f"drift on {prepared['window']}: {reason}; top features "
                               f"{', '.join(top[:3])}",
                     "drift_window": prepared["window"], "p_values": p_values,
                     "report": paths["html"], "dataset": settings.dataset}}


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
