"""
### Train, register and gate the flow classifier

Builds a point-in-time training set through the `flow_classifier_v1` feature service, trains
XGBoost (macro-F1 first), logs the run to MLflow with its lineage, registers a new model
version and moves the `champion` alias only if the new version beats the champion on the
newest labelled flows (`previous` keeps the replaced champion for rollback).

Runs on demand: by hand from the UI, or from `flowguard_monitor` when drift is detected
(the reason and p-values arrive in `conf`).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from flowguard.dag_common import default_args


@dag(
    dag_id="flowguard_train",
    schedule=None,
    start_date=datetime(2017, 7, 3),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "training", "mlflow", "xgboost"],
    default_args=default_args(retries=1),
    params={
        "as_of": Param("", type="string", title="Train on data before",
                       description="ISO date (exclusive); empty = after the newest partition."),
        "window_days": Param(7, type="integer", minimum=1, maximum=90, title="Window (days)",
                             description="How many days of validated flows to train on."),
        "reason": Param("manual", type="string", title="Trigger reason",
                        description="Why this run started (manual, schedule, drift...)."),
    },
)
def flowguard_train() -> None:
    @task
    def training_set(params=None, run_id=None) -> dict:
        from flowguard.pipeline import build_training_set

        return build_training_set(params["as_of"] or None, int(params["window_days"]), run_id)

    @task
    def train(built: dict, params=None, run_id=None) -> dict:
        from flowguard.features import FEATURE_SERVICE
        from flowguard.pipeline import train_model

        lineage = {"dag_run_id": run_id, "trigger_reason": params["reason"],
                   "feature_service": FEATURE_SERVICE, "training_days": ",".join(built["days"])}
        return train_model(built["path"], lineage)

    @task
    def gate(trained: dict) -> dict:
        from flowguard.pipeline import promote_if_better

        return promote_if_better(trained["version"])

    gate(train(training_set()))


flowguard_train()
