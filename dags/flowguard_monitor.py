"""
### Monitor drift (daily)

Compares the window's flows (read through the same feature service as training) with the
champion's reference sample: alibi-detect `MMDDrift` and `ClassifierDrift` run in the drift
runtime (`@task.external_python`), prediction drift and per-feature shifts in the platform.
Writes an HTML + JSON report (also logged to MLflow). On drift it alerts and triggers
`flowguard_train` with the reason and p-values in `conf`; otherwise it does nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from flowguard.config import PROJECT_ROOT, get_settings
from flowguard.dag_common import FEATURES, default_args

DRIFT_PYTHON = str(get_settings().drift_python)  # env reads only: cheap at parse time

@dag(
    dag_id="flowguard_monitor",
    # Same daily interval as ingest: the run for [day, day+1) checks that day's flows. It
    # starts when ingest does; `prepare` retries until the day's partition is materialized.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2017, 7, 3),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "monitoring", "drift", "alibi-detect"],
    default_args=default_args(retries=2),
    params={
        "sample_size": Param(1000, type="integer", minimum=100, maximum=20000,
                             title="Sample size", description="Flows per side of each test."),
        "p_value": Param(0.05, type="number", minimum=0.0001, maximum=0.5, title="p-value",
                         description="Significance level of each detector."),
        "n_permutations": Param(100, type="integer", minimum=20, maximum=1000,
                                title="MMD permutations", description="Permutation test size."),
        "policy": Param("all", enum=["all", "any"], title="Decision policy",
                        description="all: every detector must flag drift; any: one suffices."),
    },
)
def flowguard_monitor() -> None:
    @task(inlets=[FEATURES], retries=6, retry_delay=timedelta(minutes=10))
    def prepare(params=None, data_interval_start=None, data_interval_end=None,
                run_id=None) -> dict:
        from flowguard.pipeline import prepare_monitoring

        prepared = prepare_monitoring(str(data_interval_start), str(data_interval_end), run_id,
                                      n=int(params["sample_size"]))
        return {**prepared, "p_val": float(params["p_value"]),
                "n_permutations": int(params["n_permutations"])}

    @task.external_python(
        python=DRIFT_PYTHON,
        expect_airflow=False,
        env_vars={"PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"},
    )
    def detect(ref_path: str, cur_path: str, p_val: float, n_permutations: int) -> dict:
        from flowguard.drift import run_detectors

        return run_detectors(ref_path, cur_path, p_val=p_val, n_permutations=n_permutations)

    @task
    def report(prepared: dict, detectors: dict, params=None, run_id=None) -> dict:
        from flowguard.pipeline import report_and_decide

        return report_and_decide(prepared, detectors, run_id, policy=params["policy"])

    @task.branch
    def decide(decision: dict) -> str:
        return "alert_and_retrain" if decision["drift"] else "no_drift"

    @task
    def alert_and_retrain(decision: dict) -> dict:
        from flowguard.alerts import send_alert

        send_alert(f"flowguard drift on {decision['window']}",
                   f"{decision['reason']}\nreport: {decision['report_html']}")
        return decision

    retrain = TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id="flowguard_train",
        trigger_run_id="drift__{{ run_id }}",
        skip_when_already_exists=True,
        conf={
            "as_of": "{{ data_interval_end | ds }}",
            "reason": "drift: {{ ti.xcom_pull(task_ids='report')['reason'] }}",
        },
    )
    no_drift = EmptyOperator(task_id="no_drift")

    prepared = prepare()
    detectors = detect(prepared["ref_path"], prepared["cur_path"], prepared["p_val"],
                       prepared["n_permutations"])
    decision = report(prepared, detectors)
    alerted = alert_and_retrain(decision)
    decide(decision) >> [alerted, no_drift]
    alerted >> retrain


flowguard_monitor()
