"""Task logs without the known noise: GX's import-time registry lines and MLflow's stderr
progress bar (which Airflow records as ERROR). Each case runs in a fresh interpreter, with
and without :func:`flowguard.logs.quiet_library_logs`, so the test can tell the difference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S

pytestmark = pytest.mark.slow

GX = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
if QUIET:
    from flowguard.logs import quiet_library_logs
    quiet_library_logs()
import great_expectations
"""

MLFLOW = """
import logging, os, sys, tempfile
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
if QUIET:
    from flowguard.logs import quiet_library_logs
    quiet_library_logs()
import mlflow
home = sys.argv[1]
mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
experiment = mlflow.create_experiment("x", artifact_location=f"file://{home}/artifacts")
with mlflow.start_run(experiment_id=experiment) as run:
    mlflow.log_text("hello", "a/b.txt")
with tempfile.TemporaryDirectory() as tmp:
    mlflow.MlflowClient().download_artifacts(run.info.run_id, "a/b.txt", tmp)
"""


def _stderr(code: str, quiet: bool, *args: str) -> str:
    # a fresh interpreter without what quiet_library_logs() may have set in this process
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_CONFIGURE_LOGGING")}
    out = subprocess.run([sys.executable, "-c", code.replace("QUIET", str(quiet)), *args],
                         capture_output=True, text=True, timeout=HANG_GUARD_S, check=True,
                         env={**env, "MLFLOW_DISABLE_TELEMETRY": "true"})
    return out.stderr


def test_great_expectations_import_logs_no_registry_noise() -> None:
    assert _stderr(GX, quiet=False).count("Skipping registering function") > 50
    assert "Skipping registering function" not in _stderr(GX, quiet=True)


def test_mlflow_writes_no_progress_bar_nor_its_own_log_lines_to_stderr(tmp_path: Path) -> None:
    """Airflow records stderr as ERROR: MLflow's download bar and its stderr log handler
    ("INFO mlflow.store.db.utils: Creating initial MLflow database tables") both went there."""
    (tmp_path / "loud").mkdir()
    (tmp_path / "quiet").mkdir()
    loud = _stderr(MLFLOW, False, str(tmp_path / "loud"))
    assert "Downloading artifacts" in loud and "mlflow.store.db.utils" in loud
    quiet = _stderr(MLFLOW.replace("import mlflow\n", "import mlflow\nlogging.getLogger()"
                                   ".handlers.clear()\n"), True, str(tmp_path / "quiet"))
    assert "Downloading artifacts" not in quiet and "mlflow.store.db.utils" not in quiet
