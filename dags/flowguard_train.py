"""
### Train, register and gate the flow classifier

Builds a point-in-time training set through the dataset profile's feature service
(`flow_classifier_v1` for CICIDS2017, `unsw_nb15_classifier_v1` for UNSW-NB15; the `dataset`
Param, empty = `FLOWGUARD_DATASET`), tunes
XGBoost with Optuna within a time budget (each trial a nested MLflow run), logs the run with
its lineage (datasets and digests, feature service, the Great Expectations results of its
days, code version, this run's id and trigger), a confusion matrix and a model card,
registers a new model version and moves the `champion` alias only if the new version passes
the gate on the frozen holdout and on the newest labelled flows (macro-F1 within tolerance,
no class's recall down by more than the margin). `previous` keeps the replaced champion
(`flowguard rollback`); a failed gate alerts and leaves the champion untouched. A promoted
champion then gets the daily drift check's calibrated null (`calibrate`, stored with the
model's run as `reference/calibration.json`), so the first monitoring run need not compute it.

Runs on demand: by hand from the UI, or from `flowguard_monitor` when drift is detected
(the reason and p-values arrive in `conf`).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from flowguard.dag_common import dataset_param, default_args


@dag(
    dag_id="flowguard_train",
    schedule=None,
    # before every profile's capture (UNSW-NB15 2015, CICIDS2017 2017): Airflow runs no task
    # of a run dated before it
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "training", "mlflow", "xgboost"],
    default_args=default_args(retries=1),
    params={
        "dataset": dataset_param(),
        # null admitted: the UI marks a typed field without "null" required, so an empty
        # default would keep the Trigger button disabled.
        "as_of": Param(None, type=["null", "string"], format="date", title="Train on data before",
                       description="ISO date (exclusive); empty = after the newest partition."),
        "window_days": Param(7, type="integer", minimum=1, maximum=90, title="Window (days)",
                             description="How many days of validated flows to train on."),
        "reason": Param("manual", type="string", title="Trigger reason",
                        description="Why this run started (manual, schedule, drift...)."),
        "tuning_budget_seconds": Param(45, type="integer", minimum=0, maximum=7200,
                                       title="Tuning budget (s)",
                                       description="Wall-clock budget of the Optuna search, "
                                       "at most (small windows get less: 45 s per 100 k "
                                       "rows, 10 s minimum); 0 trains the default "
                                       "parameters only."),
        "max_trials": Param(15, type="integer", minimum=0, maximum=500, title="Max trials",
                            description="Cap on Optuna trials (pins the search for "
                            "reproducibility when the budget is not reached)."),
    },
)
def flowguard_train() -> None:
    @task
    def training_set(params=None, run_id=None) -> dict:
        from flowguard.pipeline import build_training_set
        from flowguard.profiles import selected

        with selected(params.get("dataset")):
            return build_training_set(params["as_of"] or None, int(params["window_days"]),
                                      run_id)

    @task
    def train(built: dict, params=None, run_id=None, dag_run=None) -> dict:
        from flowguard.lineage import trigger_info
        from flowguard.pipeline import train_model
        from flowguard.profiles import selected

        run_type = getattr(dag_run, "run_type", None)
        trigger = trigger_info(params["reason"], str(getattr(run_type, "value", run_type) or ""),
                               dict(getattr(dag_run, "conf", None) or {}))
        lineage = {"run_name": f"train {built['days'][-1]} ({trigger['kind']})",
                   "dag_run_id": run_id, "trigger_reason": params["reason"],
                   "trigger_kind": trigger["kind"], "trigger": trigger,
                   "feature_service": built["feature_service"],
                   "feature_service_version": built["feature_service_version"],
                   "feature_service_features": built["feature_service_features"],
                   "training_days": ",".join(built["days"]), "training_set_digest": built["digest"],
                   "validation_result_ids": [v["id"] for v in built["validation_results"]],
                   "validation_results": built["validation_results"],
                   "data_version": built.get("data_version"), "dataset": built.get("dataset")}
        tuning = {"budget_seconds": float(params["tuning_budget_seconds"]),
                  "max_trials": int(params["max_trials"]),
                  "budget_per_100k_rows": 45.0}  # small windows: a smaller budget
        with selected(params.get("dataset")):
            return train_model(built["path"], lineage, tuning)

    @task
    def gate(trained: dict, params=None, run_id=None) -> dict:
        from flowguard.pipeline import promote_if_better
        from flowguard.profiles import selected

        with selected(params.get("dataset")):
            return promote_if_better(trained["version"], run_id)

    @task
    def calibrate(decision: dict) -> dict:
        from flowguard.pipeline import calibrate_champion

        return calibrate_champion(decision)

    calibrate(gate(train(training_set())))


flowguard_train()
