"""Task logs a person can read: library noise off, nothing on stderr that is not an error.

Airflow records a task's stderr at ERROR level, so a progress bar drawn there (MLflow's
artifact download bar) reads as a failure in every train and monitor log. Called at the start
of each task function (:mod:`flowguard.pipeline`), not on import.
"""

from __future__ import annotations

import logging
import os
import warnings

# (logger, level): loggers whose INFO lines carry no information for a pipeline's reader
QUIET_LOGGERS = (
    # ~210 "Skipping registering function ..." lines each time great_expectations is imported
    ("great_expectations._docs_decorators", logging.WARNING),
)
# Python warnings that hold for this project by construction
IGNORED_WARNINGS = (
    # integer columns (flow_uid, ports, counts) are never missing: the contract rejects nulls
    r"Hint: Inferred schema contains integer column",
)


def quiet_library_logs() -> None:
    """Silence the known noise: GX's import-time registry lines, MLflow's stderr progress
    bars, and the warnings in :data:`IGNORED_WARNINGS`. Idempotent."""
    for name, level in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow gives its logger a stderr handler ("INFO mlflow.store.db.utils: Creating initial
    # MLflow database tables" then reads as an ERROR line): leave logging to the host
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    mlflow_log = logging.getLogger("mlflow")
    if any(isinstance(h, logging.StreamHandler) for h in mlflow_log.handlers):  # imported
        mlflow_log.handlers = [h for h in mlflow_log.handlers
                               if not isinstance(h, logging.StreamHandler)]
        mlflow_log.propagate = True
    for message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
