"""
### Monitor drift (daily)

Compares the window's flows (read through the same feature service as training) with the
champion's reference sample, each detector's p-value calibrated on the reference period's own
blocks (docs/monitoring.md): MMD (a fast permutation test equal to alibi-detect's `MMDDrift`,
or `MMDDrift` itself) and a classifier two-sample test (gradient boosting on one split,
Mann-Whitney on the held-out rows; alibi-detect's k-fold `ClassifierDrift` is not a valid
test, see docs/monitoring.md) run in the drift runtime (`@task.external_python`); prediction drift, performance drift (macro-F1 where the window has
labels), a per-flow novelty test on the whole day (novel flows listed), a label-free
estimate of the champion's macro-F1, and per-feature KS tests in the platform; the decision
is Holm over the voters (one false-alarm budget). Settings come from `config/monitoring.yaml`;
each Param below overrides one key for this run (empty = the file's value).

Scheduled on the `flowguard_features` asset: each ingest run that materializes a day starts
a run that checks that day (the day is in the asset event). Triggered by hand, the `day`
Param picks the day (empty: the newest validated day). A day without validated flows, or no
champion yet, **skips** the run with the reason instead of failing.

The `dataset` Param (empty = `FLOWGUARD_DATASET`) picks the dataset profile: its champion,
feature service and lake; a retraining run it triggers trains the same dataset.

Writes an HTML + JSON report (also logged to MLflow; linked from the `report` task). On drift
it alerts; it triggers `flowguard_train` (reason, p-values and report in `conf`) only once per
window and not again within the cooldown against the same champion.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from flowguard.config import PROJECT_ROOT, get_settings
from flowguard.dag_common import FEATURES, dataset_param, default_args

DRIFT_PYTHON = str(get_settings().drift_python)  # env reads only: cheap at parse time
_FILE = "empty = config/monitoring.yaml"


def _int(title: str, description: str, low: int, high: int) -> Param:
    return Param(None, type=["null", "integer"], minimum=low, maximum=high, title=title,
                 description=f"{description} ({_FILE})")


@dag(
    dag_id="flowguard_monitor",
    # Data-aware: a run per ingest run that materialized a day (the asset event names it),
    # so nothing waits or retries for a partition that is not there yet.
    schedule=[FEATURES],
    # before every profile's capture (UNSW-NB15 2015, CICIDS2017 2017): Airflow runs no task
    # of a run dated before it
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "monitoring", "drift", "alibi-detect"],
    default_args=default_args(retries=2),
    params={
        "dataset": dataset_param(),
        "day": Param(None, type=["null", "string"], format="date", title="Day to check",
                     description="YYYY-MM-DD; empty = the day the triggering ingest run "
                                 "materialized, else the newest validated day."),
        "sample_size": _int("Sample size", "Window flows per test", 10, 100000),
        "reference_size": _int("Reference size", "Reference rows (x_ref) per test", 10, 100000),
        "p_value": Param(None, type=["null", "number"], minimum=1e-6, maximum=0.5,
                         title="p-value", description=f"Significance of each detector ({_FILE})"),
        "n_permutations": _int("MMD permutations", "Permutation test size", 10, 100000),
        "mmd_backend": Param(None, type=["null", "string"], enum=[None, "auto", "fast", "rff", "alibi"],
                             title="MMD implementation",
                             description="auto (fast up to 5000 rows per side, rff beyond), "
                             "fast (quadratic, matrix form), rff (random Fourier features, "
                             f"linear time) or alibi ({_FILE})"),
        "detectors": Param(None, type=["null", "array"], title="Voting detectors",
                           items={"type": "string",
                                  "enum": ["mmd", "classifier", "novelty", "prediction",
                                           "performance", "harm"]},
                           description=f"Detectors that vote on drift ({_FILE})"),
        "policy": Param(None, type=["null", "string"], enum=[None, "holm", "all", "any"],
                        title="Decision policy",
                        description="holm: one false-alarm budget over the voters; all: "
                                    f"every voter must flag; any: one suffices ({_FILE})"),
        "cooldown_days": _int("Cooldown (days)", "No new trigger against the same champion "
                              "within this many windows of the last", 0, 3650),
    },
)
def flowguard_monitor() -> None:
    @task(inlets=[FEATURES])
    def prepare(params=None, data_interval_start=None, data_interval_end=None, run_id=None,
                triggering_asset_events=None) -> dict:
        from datetime import timedelta

        from flowguard.pipeline import (
            NothingToDo,
            drift_runtime_args,
            monitoring_day,
            prepare_monitoring,
        )
        from flowguard.profiles import selected

        events = [e.extra["day"] for evs in (triggering_asset_events or {}).values()
                  for e in evs if (e.extra or {}).get("day")]
        overrides = {k: v for k, v in params.items() if k not in ("day", "dataset")}
        try:
            with selected(params.get("dataset")):
                day = monitoring_day(params.get("day"), events, str(data_interval_start),
                                     str(data_interval_end))
                prepared = prepare_monitoring(f"{day}T00:00:00+00:00",
                                              f"{day + timedelta(days=1)}T00:00:00+00:00",
                                              run_id, overrides=overrides)
        except NothingToDo as exc:
            raise AirflowSkipException(str(exc)) from exc
        return {**prepared, "drift_args": drift_runtime_args(prepared)}

    @task.external_python(
        python=DRIFT_PYTHON,
        expect_airflow=False,
        env_vars={"PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"},
    )
    def detect(drift_args: dict) -> dict:
        from flowguard.drift import run_detectors

        return run_detectors(**drift_args)

    @task
    def report(prepared: dict, detectors: dict, params=None, run_id=None) -> dict:
        from flowguard.pipeline import report_and_decide
        from flowguard.profiles import selected

        with selected(params.get("dataset")):
            return report_and_decide(prepared, detectors, run_id)

    @task.branch
    def decide(decision: dict) -> str:
        if decision["retrain"]:
            return "alert_and_retrain"
        return "alert_only" if decision["drift"] else "no_drift"

    @task(multiple_outputs=False)
    def alert_and_retrain(decision: dict) -> dict:
        from flowguard.alerts import drift_alert

        drift_alert(decision)
        return decision["conf"]

    @task
    def alert_only(decision: dict) -> None:
        from flowguard.alerts import drift_alert

        drift_alert(decision)

    retrain = TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id="flowguard_train",
        trigger_run_id="drift__{{ run_id }}",
        skip_when_already_exists=True,
        # as_of, reason, drift_window, p_values, report (a JSON string; the operator parses it)
        conf="{{ ti.xcom_pull(task_ids='alert_and_retrain') | tojson }}",
    )
    no_drift = EmptyOperator(task_id="no_drift")

    prepared = prepare()
    detectors = detect(prepared["drift_args"])
    decision = report(prepared, detectors)
    alerted = alert_and_retrain(decision)
    decide(decision) >> [alerted, alert_only(decision), no_drift]
    alerted >> retrain


flowguard_monitor()
