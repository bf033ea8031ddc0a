"""The production profile's Celery configuration: Airflow's, plus the task-library preload.

A Celery worker (``airflow celery worker``) forks its prefork pool from its main process,
and each pool process forks every Airflow task (``airflow.sdk`` supervisor), as the
LocalExecutor does (:mod:`flowguard.airflow_executor`). Connected to Celery's
``worker_init`` signal, sent in the worker's main process before the pool starts, the same
:func:`flowguard.airflow_executor.preload` imports pandas, Great Expectations, Feast, MLflow,
XGBoost, scikit-learn... once, so every task process on the worker starts with them instead
of importing them again (9-13 s on 2 cores). The scheduler imports this module too (it
sends tasks through the same app) but never receives ``worker_init``.

Selected by ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=flowguard.celery_config.CELERY_CONFIG``
(docker-compose's ``x-airflow-common``); ``FLOWGUARD_PRELOAD=off`` turns the preload off.
The configuration itself is Airflow's default, unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def _preload_task_libraries(**_: Any) -> None:
    from flowguard.airflow_executor import preload, preload_enabled

    if not preload_enabled():
        return
    started = time.perf_counter()
    seconds = preload()
    log.info("preloaded the task libraries in %.1f s before the pool forks: %s",
             time.perf_counter() - started, seconds)
