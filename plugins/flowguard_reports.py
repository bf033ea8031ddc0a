"""Airflow plugin: the drift reports in the Airflow UI.

- A FastAPI app mounted by the api-server at ``/flowguard`` serves the reports folder's drift
  reports (``/flowguard/reports/drift/<YYYY-MM-DD>/drift_report.html`` or ``.json``) and
  nothing else: the window must be a date and the file one of the two report names.
- A global extra link "Drift report" on the monitoring DAG's report and alert tasks points
  at that run's report (the run's data interval gives the window). On every other task the
  link is empty, which the UI shows as disabled.

Imports stay light: the api-server and dag-processor load plugins at start.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

URL_PREFIX = "/flowguard"
MONITOR_DAG = "flowguard_monitor"
REPORT_TASKS = {"report", "decide", "alert_and_retrain", "alert_only", "trigger_retrain",
                "no_drift"}
REPORT_FILES = {"drift_report.html": "text/html", "drift_report.json": "application/json"}


def _reports_dir() -> Path:
    from flowguard.config import get_settings

    return get_settings().reports_dir / "drift"


def report_file(window: str, name: str = "drift_report.html") -> Path | None:
    """The report of a window if it exists; ``None`` for anything that is not one."""
    try:
        day = date.fromisoformat(window)
    except ValueError:
        return None
    if name not in REPORT_FILES:
        return None
    path = _reports_dir() / day.isoformat() / name
    return path if path.is_file() else None


def report_url(window: str) -> str:
    """The UI-relative URL of a window's HTML report, or "" when there is none yet."""
    return f"{URL_PREFIX}/reports/drift/{window}/drift_report.html" if report_file(window) else ""


def run_window(dag_id: str, run_id: str) -> str | None:
    """The window (data interval start, a date) of a DAG run, from the metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id,
                                                  DagRun.run_id == run_id))
        start = run.data_interval_start if run is not None else None
    return start.date().isoformat() if start is not None else None


class DriftReportLink(BaseOperatorLink):
    """"Drift report" on the monitoring DAG's decision tasks."""

    name = "Drift report"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:  # noqa: ANN001
        if ti_key.dag_id != MONITOR_DAG or ti_key.task_id not in REPORT_TASKS:
            return ""
        window = run_window(ti_key.dag_id, ti_key.run_id)
        return report_url(window) if window else ""


reports_app = FastAPI(title="flowguard drift reports")


@reports_app.get("/reports/drift/{window}/{name}")
def get_report(window: str, name: str) -> FileResponse:
    path = report_file(window, name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no drift report {name} for {window!r}")
    return FileResponse(path, media_type=REPORT_FILES[name])


class FlowguardReportsPlugin(AirflowPlugin):
    name = "flowguard_reports"
    global_operator_extra_links = [DriftReportLink()]
    fastapi_apps = [{"app": reports_app, "url_prefix": URL_PREFIX,
                     "name": "flowguard drift reports"}]
