"""Environment of the Airflow processes of the embedded profile (demo, tests, `make airflow`).

The committed ``airflow.cfg`` is used through ``AIRFLOW_CONFIG``; everything that depends on
where the project lives is passed as ``AIRFLOW__*`` variables, which override that file.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from flowguard.config import PROJECT_ROOT


def airflow_environment(home: Path, port: int = 8080) -> dict[str, str]:
    """Variables for Airflow on SQLite under ``home/airflow`` with this project's DAGs."""
    airflow_home = home / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(airflow_home / "bundles"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(airflow_home),
        "FLOWGUARD_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FEAST_USAGE": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def airflow_process_env(home: Path, port: int = 8080, **extra: str) -> dict[str, str]:
    """The whole environment of an Airflow process: this one's, the profile's variables, and
    the runtime's bin folder first on PATH (standalone starts its components as `airflow`)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **airflow_environment(home, port), **extra,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def jwt_secret(airflow_home: Path) -> str:
    """A per-home random JWT secret, kept in a 0600 file (created on first use)."""
    path = airflow_home / "jwt_secret"
    if not path.exists():
        airflow_home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
