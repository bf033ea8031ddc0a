"""A locked MLflow SQLite store is waited for, with a bound and a clear message (issue 19)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from flowguard.mlflow_store import install


def _locked(path: Path, seconds: float) -> threading.Thread:
    """Hold an exclusive write lock on the SQLite file for ``seconds`` in another thread."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(60)
    return thread


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mlflow.tracking import MlflowClient

    install()
    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    client.create_experiment("first", artifact_location=str(tmp_path / "artifacts"))
    return client, db


def test_a_short_lock_is_waited_for(client, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow_client, db = client
    monkeypatch.setenv("FLOWGUARD_MLFLOW_BUSY_TIMEOUT", "600")  # the bound, not a speed limit
    holder = _locked(db, 2)
    assert mlflow_client.create_experiment("while locked")  # waited, then written
    holder.join(60)


def test_a_lock_beyond_the_bound_fails_with_a_clear_message(client, monkeypatch) -> None:
    from mlflow.exceptions import MlflowException

    mlflow_client, db = client
    monkeypatch.setenv("FLOWGUARD_MLFLOW_BUSY_TIMEOUT", "0.5")
    holder = _locked(db, 8)
    with pytest.raises(MlflowException) as caught:
        mlflow_client.create_experiment("never")
    text = str(caught.value)
    assert "stayed locked for more than 0.5 s" in text and "FLOWGUARD_MLFLOW_BUSY_TIMEOUT" in text
    assert str(db) in text
    holder.join(60)
