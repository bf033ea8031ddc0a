"""The feast CLI by hand next to the DAG's apply: one spelling of the store, so neither
destroys the other's online tables, and an apply with nothing changed changes nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from flowguard.features import HOST_VIEW, apply_definitions, get_store, materialize
from tests.conftest import HANG_GUARD_S
from tests.test_features import MON, REPO, TUE, _ingest, _online

pytestmark = pytest.mark.slow


@pytest.fixture
def materialized(home: Path, synthetic_week: Path) -> tuple[Path, list[str], pd.DataFrame]:
    """Monday and Tuesday ingested, applied and materialized the DAG's way."""
    _ingest(home, synthetic_week, [MON, TUE])
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    materialize(store, datetime(2017, 7, 3, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))
    hosts = sorted(pd.read_parquet(home / "lake" / "flows")["src_ip"].dropna().unique())[:20]
    return home, hosts, _online(store, hosts)


def _online_tables(home: Path) -> list[str]:
    with sqlite3.connect(home / "feast" / "online_store.db") as db:
        return sorted(r[0] for r in db.execute("select name from sqlite_master where type='table'"))


def _run(args: list[str], home_text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWGUARD_HOME": home_text, "FEAST_USAGE": "False"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S,
                          check=False)


def test_feast_apply_with_another_spelling_of_the_home_is_refused(materialized) -> None:
    """The README's old by-hand command (`FLOWGUARD_HOME=$PWD/../var feast apply`) dropped the
    online tables; now the CLI stops before planning, says why and how, and the store and its
    values are intact."""
    home, hosts, before = materialized
    tables = _online_tables(home)
    assert f"flowguard_{HOST_VIEW}" in tables
    feast = str(Path(sys.executable).parent / "feast")
    spelled = f"{REPO}/../{os.path.relpath(home, REPO.parent)}"  # the same folder, other text
    assert Path(spelled).resolve() == home.resolve() and spelled != str(home)
    out = _run([feast, "apply"], spelled, REPO)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "not a resolved path" in message and "realpath ../var" in message, message[-2000:]
    assert "Traceback" not in message, message[-2000:]
    assert _online_tables(home) == tables
    pd.testing.assert_frame_equal(_online(get_store(REPO, home), hosts), before)


def test_flowguard_feast_apply_resolves_the_home_and_keeps_the_store(materialized) -> None:
    """`make feast-apply` (`flowguard feast apply`) from anywhere, with the home spelled any
    way: no "No project found", no glob-path warnings, online values unchanged."""
    home, hosts, before = materialized
    spelled = f"{home}/../{home.name}"
    out = _run([sys.executable, "-m", "flowguard.cli", "feast", "apply"], spelled, home)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "No project found" not in text and "Could not validate" not in text, text[-3000:]
    assert "No changes to infrastructure" in text, text[-3000:]
    assert f"flowguard_{HOST_VIEW}" in _online_tables(home)
    pd.testing.assert_frame_equal(_online(get_store(REPO, home), hosts), before)


def test_dag_apply_with_nothing_changed_is_a_no_op(materialized, capfd) -> None:
    home, hosts, before = materialized
    store = get_store(REPO, home)
    stamp = store.get_feature_view(HOST_VIEW).last_updated_timestamp
    capfd.readouterr()
    apply_definitions(REPO, home)
    printed = capfd.readouterr().out
    assert "No changes to registry" in printed and "Updated" not in printed, printed
    store = get_store(REPO, home)
    view = store.get_feature_view(HOST_VIEW)
    assert view.last_updated_timestamp == stamp
    assert [(s.date(), e.date()) for s, e in view.materialization_intervals][-1][1] == (
        datetime(2017, 7, 5).date())
    pd.testing.assert_frame_equal(_online(store, hosts), before)
