"""Airflow's LocalExecutor, with the task libraries imported once before its workers fork.

On Linux the LocalExecutor forks its worker processes from the scheduler when it starts,
and each worker forks every task process from itself (``airflow.sdk`` supervisor,
``os.fork``). A task process therefore starts with the modules its worker had, and imports
the rest itself: pandas, pyarrow, MLflow, Great Expectations, Feast, XGBoost, scikit-learn,
Optuna, DuckDB, DVC. That is 9-13 s of imports for all of them on the 2-core machine (GX
6.2 s, Feast 5.2 s, MLflow 3.0 s, XGBoost 2.7 s, scikit-learn 2.7 s, each alone), and each of
the demo's 45 tasks paid its share of it (2026-12-02).

:class:`PreloadingLocalExecutor` imports those libraries in the scheduler just before the
workers fork, so every task process inherits them, copy-on-write. Only third-party
libraries: the flowguard modules the preload itself imports (0.04 s of the whole) are
dropped again, so each task imports flowguard's code afresh and an edit under
``include/flowguard/`` reaches the next task without a restart, as with the plain
LocalExecutor. What the libraries start at import is fork-safe: OpenBLAS's and jemalloc's
threads are re-created in a forked child by their own fork handlers, and no OpenMP parallel
region runs in the scheduler (the libraries start their OpenMP threads at the first one).

``airflow.cfg`` selects it (``executor = flowguard.airflow_executor.PreloadingLocalExecutor``);
``FLOWGUARD_PRELOAD=off`` makes it the plain LocalExecutor, and so it is wherever the workers
are not forked (multiprocessing's spawn or forkserver start method, macOS). A library that
fails to import is logged and skipped: the task that needs it then imports it, and fails,
itself.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What the DAGs' tasks import (ingest: GX, Feast, DVC; train: Feast, MLflow, XGBoost, Optuna;
# monitor: Feast, MLflow, scikit-learn, SciPy), including the submodules they load lazily.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "scipy.stats",
    "sklearn.ensemble",
    "xgboost",
    "optuna",
    "duckdb",
    "mlflow",
    "mlflow.xgboost",
    "great_expectations",
    "dvc.repo",
)


def preload_enabled() -> bool:
    value = os.environ.get("FLOWGUARD_PRELOAD", "on").strip().lower()
    return value not in ("off", "0", "false", "no")


def preload(modules: tuple[str, ...] = PRELOAD) -> dict[str, float]:
    """Import ``modules`` and Feast (uninstrumented, :mod:`flowguard.feastload`) in this
    process; the seconds each took (a failed import is logged, not raised)."""
    loaded = set(sys.modules)
    from flowguard.logs import quiet_library_logs

    quiet_library_logs()  # GX's import-time lines, MLflow's stderr handler: as in a task
    seconds: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a preload must never stop the scheduler
            log.warning("preload: %s not imported (%s); tasks import it themselves", name, exc)
            continue
        seconds[name] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    try:
        from flowguard.feastload import load_feast

        load_feast()
        seconds["feast"] = round(time.perf_counter() - started, 2)
    except Exception as exc:  # noqa: BLE001
        log.warning("preload: feast not imported (%s); tasks import it themselves", exc)
    # the flowguard modules the preload imported (config, logs, feastload) are forgotten: each
    # task imports them afresh, so an edit reaches the next task (the caller's own module,
    # this one or flowguard.celery_config, stays: the executor's class is not re-created)
    for name in [m for m in sys.modules if m.startswith("flowguard.") and m not in loaded]:
        del sys.modules[name]
    return seconds


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose worker processes fork with the task libraries already imported."""

    def start(self) -> None:
        # only where the workers are forked from this process and fork their tasks: a
        # spawned worker (multiprocessing's spawn or forkserver) or a task exec'd afresh
        # (Airflow does so on macOS) would inherit nothing, and the preload would only cost
        if preload_enabled() and self.is_mp_using_fork and sys.platform != "darwin":
            started = time.perf_counter()
            seconds = preload()
            log.info("preloaded the task libraries in %.1f s before forking workers: %s",
                     time.perf_counter() - started, seconds)
        super().start()
