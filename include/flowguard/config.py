"""Environment settings, read in one place.

Every path and service address comes from an environment variable with an embedded-profile
default under the project's ``var/`` folder. Nothing here creates folders or touches services
on import: call :func:`get_settings` inside a task.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Entity rows per point-in-time query of a training set (FLOWGUARD_TRAINING_CHUNK_ROWS,
# flowguard.features.write_training_set). Measured on the synthetic full week (2.83 M rows,
# 87 columns), the task's peak RSS: 1.36 GB at 100 k, 1.79 GB at 250 k, 2.4-2.5 GB at 500 k,
# 3.76 GB at 1 M, 8.7 GB in one query; a window below it (the demo's, the tests') is one query.
TRAINING_CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process."""

    home: Path
    # the dataset profile (flowguard.profiles, FLOWGUARD_DATASET): folders, model, features
    dataset: str
    landing_dir: Path
    lake_dir: Path
    quarantine_dir: Path
    gx_dir: Path
    reports_dir: Path
    work_dir: Path
    feature_repo: Path
    mlflow_tracking_uri: str
    model_name: str
    drift_python: Path
    monitoring_config: Path
    # materialization re-reads this much before each run's interval, for late data
    materialize_overlap_minutes: int = 15
    # entity rows per point-in-time query of a training set (TRAINING_CHUNK_ROWS)
    training_chunk_rows: int = TRAINING_CHUNK_ROWS
    gate_tolerance: float = 0.005
    gate_recall_margin: float = 0.05
    gate_floor: float = 0.5
    registry_lock_uri: str = ""
    # Improved CICIDS2017 "X - Attempted" flows (attacks that carried no payload or hit an
    # unresponsive target) are kept and validated, but left out of training unless this is set:
    # they look like benign traffic, and the release's authors advise not to train on them as
    # attacks (docs/data.md, "Attempted attacks").
    train_on_attempted: bool = False
    # where people open the UIs: links in alerts (FLOWGUARD_AIRFLOW_URL, FLOWGUARD_MLFLOW_URL)
    airflow_url: str = "http://127.0.0.1:8080"
    mlflow_url: str = "http://127.0.0.1:5000"

    @property
    def flows_source(self) -> Path:
        """Folder of the Feast offline source: validated flows, one parquet per day."""
        return self.lake_dir / "flows"

    @property
    def data_docs_index(self) -> Path:
        return self.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def get_settings() -> Settings:
    """Read the settings from the environment (``FLOWGUARD_*``), falling back to ``var/``.

    The dataset profile (``FLOWGUARD_DATASET``, :mod:`flowguard.profiles`) places its landing
    folder, lake and quarantine under the home and names the registered model; CICIDS2017,
    the default, keeps ``landing/``, ``lake/``, ``quarantine/`` and ``flow-classifier``.
    """
    from flowguard.profiles import active

    profile = active()
    home = Path(os.environ.get("FLOWGUARD_HOME", PROJECT_ROOT / "var")).resolve()
    mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    return Settings(
        home=home,
        dataset=profile.name,
        landing_dir=Path(os.environ.get("FLOWGUARD_LANDING_DIR", home / profile.landing)),
        lake_dir=home / profile.lake,
        quarantine_dir=home / profile.quarantine,
        gx_dir=home / "gx",
        reports_dir=home / "reports",
        work_dir=home / "work",
        feature_repo=Path(os.environ.get("FLOWGUARD_FEATURE_REPO", PROJECT_ROOT / "feature_repo")),
        mlflow_tracking_uri=mlflow_uri,
        model_name=os.environ.get("FLOWGUARD_MODEL_NAME", profile.model_name),
        drift_python=Path(
            os.environ.get("FLOWGUARD_DRIFT_PYTHON", PROJECT_ROOT / ".venv-drift" / "bin" / "python")
        ),
        monitoring_config=Path(os.environ.get("FLOWGUARD_MONITORING_CONFIG",
                                              PROJECT_ROOT / "config" / "monitoring.yaml")),
        materialize_overlap_minutes=int(os.environ.get("FLOWGUARD_MATERIALIZE_OVERLAP_MINUTES", 15)),
        training_chunk_rows=int(os.environ.get("FLOWGUARD_TRAINING_CHUNK_ROWS",
                                               TRAINING_CHUNK_ROWS)),
        # promotion gate (docs/training.md) and the lock that serialises alias moves
        gate_tolerance=float(os.environ.get("FLOWGUARD_GATE_TOLERANCE", 0.005)),
        gate_recall_margin=float(os.environ.get("FLOWGUARD_GATE_RECALL_MARGIN", 0.05)),
        gate_floor=float(os.environ.get("FLOWGUARD_GATE_FLOOR", 0.5)),
        registry_lock_uri=os.environ.get("FLOWGUARD_REGISTRY_LOCK_URI") or mlflow_uri,
        train_on_attempted=os.environ.get("FLOWGUARD_TRAIN_ON_ATTEMPTED", "").strip().lower()
        in {"1", "true", "yes"},
        airflow_url=(os.environ.get("FLOWGUARD_AIRFLOW_URL") or os.environ.get(
            "AIRFLOW__API__BASE_URL") or "http://127.0.0.1:8080").rstrip("/"),
        mlflow_url=(os.environ.get("FLOWGUARD_MLFLOW_URL") or
                    f"http://127.0.0.1:{os.environ.get('FLOWGUARD_MLFLOW_PORT') or 5000}"
                    ).rstrip("/"),
    )


def feast_typechecks() -> bool:
    """``FLOWGUARD_FEAST_TYPECHECKS=on``: import Feast with typeguard's run-time checks of its
    constructors (off by default: they cost half of Feast's import, see flowguard.feastload)."""
    value = os.environ.get("FLOWGUARD_FEAST_TYPECHECKS", "").strip().lower()
    return value in {"1", "on", "true", "yes"}


def _put_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or unset, for None) environment variables for a block, restoring them after."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        _put_environment(values)
        yield
    finally:
        _put_environment(saved)


_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def feast_yaml(repo_path: Path) -> Path:
    """The Feast configuration of this profile.

    ``FLOWGUARD_FEAST_YAML`` selects it (a path, relative to the feature repo unless absolute;
    the production profile sets ``feature_store.production.yaml``); unset, the repo's own
    ``feature_store.yaml`` (embedded profile). Feast fills ``${VAR}`` placeholders from the
    environment and leaves a missing one in place as text, so a missing variable is reported
    here by name instead of surfacing later as an unreadable connection error.
    """
    chosen = os.environ.get("FLOWGUARD_FEAST_YAML") or "feature_store.yaml"
    path = Path(chosen) if Path(chosen).is_absolute() else Path(repo_path) / chosen
    if not path.is_file():
        raise FileNotFoundError(f"Feast configuration {path} does not exist (FLOWGUARD_FEAST_YAML={chosen!r})")
    missing = sorted({name for name in _PLACEHOLDER.findall(path.read_text())
                      if name not in os.environ})
    if missing:
        raise KeyError(f"{path} needs the environment variable(s) {', '.join(missing)}")
    return path
