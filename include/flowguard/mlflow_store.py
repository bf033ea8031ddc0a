"""A busy MLflow SQLite store is waited for, with a bound and a clear message.

SQLite lets one writer at a time; MLflow's store waits its hard-coded 20 s per statement,
then fails with a raw ``sqlite3.OperationalError: database is locked`` (no retry of its own).
Every SQLite connection SQLAlchemy opens in this process waits for the lock up to
:func:`busy_timeout_seconds` instead (``PRAGMA busy_timeout``, MLflow's own per-session
pragma rewritten to it), and a lock that outlasts it is raised as
:class:`StoreBusy`, naming the database, the wait and what to do. Installed once per process
by :func:`install` (the pipeline's MLflow set-up calls it).
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_BUSY_TIMEOUT_S = 120.0
_INSTALLED: list[bool] = []


class StoreBusy(RuntimeError):
    """The MLflow store stayed locked by another process for longer than the bound."""


def busy_timeout_seconds() -> float:
    """``FLOWGUARD_MLFLOW_BUSY_TIMEOUT`` (seconds, default 120)."""
    value = os.environ.get("FLOWGUARD_MLFLOW_BUSY_TIMEOUT") or str(DEFAULT_BUSY_TIMEOUT_S)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"FLOWGUARD_MLFLOW_BUSY_TIMEOUT={value!r} is not a number of "
                         "seconds") from None
    return max(seconds, 0.0)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        milliseconds = int(busy_timeout_seconds() * 1000)
        dbapi_connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


def _on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
    """MLflow sets ``PRAGMA busy_timeout = 20000`` on each session (mlflow.store.db.utils):
    that statement gets this process's bound instead."""
    if statement.lstrip().upper().startswith("PRAGMA BUSY_TIMEOUT"):
        statement = f"PRAGMA busy_timeout = {int(busy_timeout_seconds() * 1000)};"
    return statement, parameters


def _on_error(context: Any) -> None:
    import sqlite3

    original = context.original_exception
    if isinstance(original, sqlite3.OperationalError) and "locked" in str(original):
        url = getattr(getattr(context, "engine", None), "url", None)
        where = getattr(url, "database", None) or "the MLflow SQLite store"
        raise StoreBusy(
            f"{where} stayed locked for more than {busy_timeout_seconds():g} s (another "
            "process holds a write lock: a long `mlflow ui` request, another training run or "
            "a stuck process). Retry when it is free (the Airflow task's retries do), raise "
            "FLOWGUARD_MLFLOW_BUSY_TIMEOUT, or use the PostgreSQL store of the production "
            "profile for concurrent writers") from original


def install() -> None:
    """Register the busy timeout and the clear error on every SQLAlchemy engine (once)."""
    if _INSTALLED:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _on_connect)
    event.listen(Engine, "before_cursor_execute", _on_execute, retval=True)
    event.listen(Engine, "handle_error", _on_error)
    _INSTALLED.append(True)
