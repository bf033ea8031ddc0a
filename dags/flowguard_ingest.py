"""
### Ingest and validate flow records (daily)

Reads the landing CSVs of the run's data interval (CICIDS2017 layouts, real or synthetic),
normalises them to the canonical schema, validates them with the Great Expectations suite
(failing rows go to quarantine with their reasons, data docs are rebuilt), writes the valid
rows to the feature store's offline source, runs `feast apply` and materializes the interval
into the online store. Updates the `flowguard_features` asset.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, dag, task

from flowguard.alerts import validation_failure_alert
from flowguard.dag_common import FEATURES, default_args


@dag(
    dag_id="flowguard_ingest",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2017, 7, 3),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "ingest", "great-expectations", "feast"],
    default_args=default_args(retries=2),
)
def flowguard_ingest() -> None:
    @task(on_failure_callback=validation_failure_alert)
    def validate(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from flowguard.pipeline import validate_interval

        return validate_interval(str(data_interval_start), str(data_interval_end), run_id)

    @task
    def feast_apply() -> list[str]:
        from flowguard.pipeline import apply_feature_repo

        return apply_feature_repo()

    @task(outlets=[FEATURES])
    def materialize(validated: dict, data_interval_start=None, data_interval_end=None) -> dict:
        from flowguard.pipeline import materialize_interval

        return {**validated, **materialize_interval(str(data_interval_start),
                                                    str(data_interval_end))}

    validated = validate()
    applied = feast_apply()
    applied >> materialize(validated)


flowguard_ingest()
