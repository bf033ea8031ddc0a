"""Test session set-up: every test runs against throwaway homes, never the project's var/.

Airflow reads its configuration when first imported, so the temporary AIRFLOW_HOME and the
committed airflow.cfg are put in the environment here, before any test module imports it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
# Subprocess time limits are hang guards only, never a speed test: a machine at load 10 runs
# a 60 s command for many minutes. Below pytest's per-test timeout (pyproject.toml, 3600 s).
HANG_GUARD_S = 3000
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="flowguard-tests-"))

os.environ.update({
    "FLOWGUARD_HOME": str(_SESSION_HOME / "home"),
    "AIRFLOW_HOME": str(_SESSION_HOME / "home" / "airflow"),
    "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(_SESSION_HOME / "bundles"),
    "AIRFLOW__API_AUTH__JWT_SECRET": "flowguard-tests-" + "x" * 48,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "FEAST_USAGE": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "OMP_NUM_THREADS": "2",
    # DVC data versions cost a few seconds per ingest day and training run; the tests that
    # are about them (tests/test_reproduce.py) turn them on
    "FLOWGUARD_DVC": "off",
})
os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh FLOWGUARD_HOME (lake, gx, feast, mlflow...) for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("FLOWGUARD_HOME", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return path


@pytest.fixture(scope="session")
def synthetic_week() -> Path:
    """A small synthetic week (published layout) shared by the tests that only read it."""
    from flowguard.synth import generate_week

    out = _SESSION_HOME / "landing"
    generate_week(out, scale=0.003, min_per_class=30, quirk_rate=0.002)
    return out


@pytest.fixture(scope="session")
def drift_python() -> Path:
    from flowguard.config import get_settings

    python = get_settings().drift_python
    if not python.exists():
        pytest.skip(f"drift runtime missing at {python}: run scripts/bootstrap.sh")
    return python
