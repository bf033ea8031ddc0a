"""
### Ingest and validate flow records (daily)

Reads the landing CSVs of the run's data interval (CICIDS2017 layouts, real or synthetic),
normalises them to the canonical schema, validates them with the Great Expectations suite
(failing rows go to quarantine with their reasons, data docs are rebuilt), writes the valid
rows to the feature store's offline source, runs `feast apply` and materializes the interval
into the online store. Updates the `flowguard_features` asset (its event names the day), on
which `flowguard_monitor` is scheduled.

A day with no landing data (no file for its weekday, or files that hold another day's flows,
as after unpausing over the demo's 2017 week) is not a failure: `validate` is **skipped**
with "no data for <day>", so is `materialize`, and no asset event is sent.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from flowguard.alerts import validation_failure_alert
from flowguard.dag_common import FEATURES, default_args


@dag(
    dag_id="flowguard_ingest",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # before every profile's capture (UNSW-NB15 2015, CICIDS2017 2017): Airflow runs no task
    # of a run dated before it
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "ingest", "great-expectations", "feast"],
    default_args=default_args(retries=2),
)
def flowguard_ingest() -> None:
    @task(on_failure_callback=validation_failure_alert)
    def validate(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from flowguard.pipeline import NothingToDo, validate_interval

        try:
            return validate_interval(str(data_interval_start), str(data_interval_end), run_id)
        except NothingToDo as exc:
            raise AirflowSkipException(str(exc)) from exc

    @task
    def feast_apply() -> list[str]:
        from flowguard.pipeline import apply_feature_repo

        return apply_feature_repo()

    @task(outlets=[FEATURES])
    def materialize(validated: dict, data_interval_start=None, data_interval_end=None,
                    outlet_events=None) -> dict:
        from flowguard.pipeline import materialize_interval

        # the monitor's run reads the day from the event (asset-triggered runs carry no
        # data interval)
        outlet_events[FEATURES].extra = {"day": validated["day"],
                                         "rows_valid": validated["rows_valid"]}
        return {**validated, **materialize_interval(str(data_interval_start),
                                                    str(data_interval_end))}

    validated = validate()
    applied = feast_apply()
    applied >> materialize(validated)


flowguard_ingest()
