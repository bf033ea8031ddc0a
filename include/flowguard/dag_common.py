"""What the DAG files share: default task arguments and the assets that link the DAGs.

Imported at DAG-parse time, so it imports nothing heavy (the alert callback imports its
hooks only when it fires).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Param

from flowguard.alerts import task_failure_alert

OWNER = "detection-ml"
# Validated flows in the feature store's offline source, updated by each ingest run.
FEATURES = Asset("flowguard_features", uri="file:///flowguard/lake/flows")


def default_args(retries: int = 2) -> dict[str, Any]:
    """Owner, retries with a short delay, and an alert on every task failure."""
    return {"owner": OWNER, "retries": retries, "retry_delay": timedelta(seconds=30),
            "on_failure_callback": task_failure_alert}


def dataset_param() -> Param:
    """The ``dataset`` Param of the train and monitor DAGs: a dataset profile's name
    (:mod:`flowguard.profiles`; listing them reads file names only)."""
    from flowguard.profiles import names

    return Param(None, type=["null", "string"], enum=[None, *names()], title="Dataset profile",
                 description="Which dataset's model and features (include/flowguard/profiles/"
                 "<name>.yaml); empty = FLOWGUARD_DATASET, default cicids2017.")
