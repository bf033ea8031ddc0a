"""Airflow plugin: flowguard's reports in the Airflow UI.

- A FastAPI app mounted by the api-server at ``/flowguard``, behind Airflow's login (the
  UI's session cookie or an API token; read access to DAGs), serves the health page
  (``/flowguard/health``: :mod:`flowguard.health`), the drift reports
  (``/flowguard/reports/drift/<YYYY-MM-DD>/drift_report.html`` or ``.json``) and the Great
  Expectations data docs (``/flowguard/docs/<path>``, files of the data docs site only), and
  nothing else.
- Extra links where they belong (on every other task they are empty, which the UI leaves
  out): "MLflow run" on ``flowguard_train``'s ``train`` and ``gate`` (the run ``train``
  logged), "Data docs" on ``flowguard_ingest``'s ``validate``, "Drift report" on
  ``flowguard_monitor``'s ``report`` (the window the run checked, from its result: runs
  started by an asset event carry no data interval).

Imports stay light: the api-server and dag-processor load plugins at start.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

URL_PREFIX = "/flowguard"
MONITOR_DAG, TRAIN_DAG, INGEST_DAG = "flowguard_monitor", "flowguard_train", "flowguard_ingest"
REPORT_FILES = {"drift_report.html": "text/html", "drift_report.json": "application/json"}
DOCS_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
              ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml",
              ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2",
              ".ttf": "font/ttf", ".map": "application/json"}


def _settings() -> Any:
    from flowguard.config import get_settings

    return get_settings()


def _reports_dir() -> Path:
    return _settings().reports_dir / "drift"


def report_file(window: str, name: str = "drift_report.html") -> Path | None:
    """The report of a window if it exists; ``None`` for anything that is not one."""
    try:
        day = date.fromisoformat(window)
    except ValueError:
        return None
    if name not in REPORT_FILES:
        return None
    root = _reports_dir().resolve()
    path = (root / day.isoformat() / name).resolve()  # a symlink out of the folder: refused
    return path if path.is_relative_to(root) and path.is_file() else None


def report_url(window: str) -> str:
    """The UI-relative URL of a window's HTML report, or "" when there is none yet."""
    return f"{URL_PREFIX}/reports/drift/{window}/drift_report.html" if report_file(window) else ""


def docs_file(path: str) -> Path | None:
    """A file of the data docs site (resolved inside it, a known type), else ``None``."""
    root = _settings().data_docs_index.parent.resolve()
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or candidate.suffix not in DOCS_TYPES:
        return None
    return candidate if candidate.is_file() else None


def task_result(ti_key: TaskInstanceKey, task_id: str) -> Any:
    """The return value (XCom) of ``task_id`` in the run of ``ti_key``, or ``None``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(
            run_id=ti_key.run_id, key="return_value", dag_ids=ti_key.dag_id,
            task_ids=task_id, limit=1)).first()
        return XComModel.deserialize_value(row) if row is not None else None


class DriftReportLink(BaseOperatorLink):
    """"Drift report" on the monitoring DAG's ``report`` task."""

    name = "Drift report"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:  # noqa: ANN001
        if ti_key.dag_id != MONITOR_DAG or ti_key.task_id != "report":
            return ""
        result = task_result(ti_key, "report") or {}
        return report_url(result["window"]) if result.get("window") else ""


class MlflowRunLink(BaseOperatorLink):
    """"MLflow run" on the training DAG's ``train`` and ``gate`` tasks."""

    name = "MLflow run"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:  # noqa: ANN001
        if ti_key.dag_id != TRAIN_DAG or ti_key.task_id not in ("train", "gate"):
            return ""
        result = task_result(ti_key, "train") or {}
        if not result.get("run_id") or not result.get("experiment_id"):
            return ""
        from flowguard.alerts import mlflow_run_url

        return mlflow_run_url(result["experiment_id"], result["run_id"])


class DataDocsLink(BaseOperatorLink):
    """"Data docs" on the ingest DAG's ``validate`` task."""

    name = "Data docs"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:  # noqa: ANN001
        if ti_key.dag_id != INGEST_DAG or ti_key.task_id != "validate":
            return ""
        return f"{URL_PREFIX}/docs/index.html" if docs_file("index.html") else ""


# Airflow's own check: a logged-in user (cookie or bearer token) who may read DAGs; 401/403
# otherwise. Module-level so tests can name it.
LOGIN = requires_access_dag("GET")
# No interactive API docs or schema: FastAPI serves those outside the app's dependencies,
# that is without login (and its /docs would shadow the data docs' index).
reports_app = FastAPI(title="flowguard reports", dependencies=[Depends(LOGIN)],
                      docs_url=None, redoc_url=None, openapi_url=None)


@reports_app.get("/health", response_class=HTMLResponse)
def get_health() -> HTMLResponse:
    from flowguard.health import page

    return HTMLResponse(page(_settings(), URL_PREFIX))


@reports_app.get("/reports/drift/{window}/{name}")
def get_report(window: str, name: str) -> FileResponse:
    path = report_file(window, name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no drift report {name} for {window!r}")
    return FileResponse(path, media_type=REPORT_FILES[name])


@reports_app.get("/docs/{path:path}")
def get_docs(path: str) -> FileResponse:
    found = docs_file(path or "index.html")
    if found is None:
        raise HTTPException(status_code=404, detail=f"no data docs file {path!r}")
    return FileResponse(found, media_type=DOCS_TYPES[found.suffix])


class FlowguardReportsPlugin(AirflowPlugin):
    name = "flowguard_reports"
    global_operator_extra_links = [DriftReportLink(), MlflowRunLink(), DataDocsLink()]
    fastapi_apps = [{"app": reports_app, "url_prefix": URL_PREFIX,
                     "name": "flowguard reports"}]
    # in the UI's navigation ("Browse"), shown inside the Airflow UI at /plugin/flowguard-health
    external_views = [{"name": "flowguard health", "href": f"{URL_PREFIX}/health",
                       "destination": "nav", "category": "browse",
                       "url_route": "flowguard-health"}]
