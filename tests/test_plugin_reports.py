"""The reports plugin: Airflow loads it, its app serves only drift reports, and the extra
link points at the run's report on the monitoring DAG's decision tasks only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import PROJECT


@pytest.fixture
def plugin(home: Path):
    spec = importlib.util.spec_from_file_location("flowguard_reports",
                                                  PROJECT / "plugins" / "flowguard_reports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = home / "reports" / "drift" / "2017-07-07"
    report.mkdir(parents=True)
    (report / "drift_report.html").write_text("<h1>Drift report: window 2017-07-07</h1>")
    (report / "drift_report.json").write_text('{"window": "2017-07-07"}')
    (home / "secret.txt").write_text("no")
    return module


def test_airflow_registers_the_plugin() -> None:
    from airflow import plugins_manager

    assert not {k: v for k, v in plugins_manager.get_import_errors().items()
                if "flowguard" in k}
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert any(a["url_prefix"] == "/flowguard" for a in apps)
    links = [link.name for link in plugins_manager.get_global_operator_extra_links()]
    assert "Drift report" in links


def test_app_serves_reports_and_nothing_else(plugin) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(plugin.reports_app)
    page = client.get("/reports/drift/2017-07-07/drift_report.html")
    assert page.status_code == 200 and "window 2017-07-07" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert client.get("/reports/drift/2017-07-07/drift_report.json").json() == {
        "window": "2017-07-07"}
    for bad in ("/reports/drift/2017-07-08/drift_report.html",  # no report that day
                "/reports/drift/..%2F..%2F/secret.txt", "/reports/drift/2017-07-07/other.txt",
                "/reports/drift/not-a-date/drift_report.html"):
        assert client.get(bad).status_code == 404, bad


def test_link_on_monitor_decision_tasks_only(plugin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "run_window", lambda dag_id, run_id: "2017-07-07")
    link = plugin.DriftReportLink()

    def key(dag_id: str, task_id: str) -> SimpleNamespace:
        return SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id="scheduled__x")

    assert link.get_link(None, ti_key=key("flowguard_monitor", "report")) == (
        "/flowguard/reports/drift/2017-07-07/drift_report.html")
    assert link.get_link(None, ti_key=key("flowguard_monitor", "prepare")) == ""
    assert link.get_link(None, ti_key=key("flowguard_train", "report")) == ""
    monkeypatch.setattr(plugin, "run_window", lambda dag_id, run_id: "2017-07-09")
    assert link.get_link(None, ti_key=key("flowguard_monitor", "report")) == ""  # no report yet
