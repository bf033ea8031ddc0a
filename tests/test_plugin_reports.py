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
    # the routes' login check is Airflow's own (tested for real in test_health_page.py);
    # here it is lifted to test what each route serves
    module.reports_app.dependency_overrides[module.LOGIN] = lambda: None
    return module


def test_airflow_registers_the_plugin() -> None:
    from airflow import plugins_manager

    assert not {k: v for k, v in plugins_manager.get_import_errors().items()
                if "flowguard" in k}
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert any(a["url_prefix"] == "/flowguard" for a in apps)
    links = {link.name for link in plugins_manager.get_global_operator_extra_links()}
    assert {"Drift report", "MLflow run", "Data docs"} <= links


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


def test_app_serves_the_data_docs_site_only(plugin, home: Path) -> None:
    from fastapi.testclient import TestClient

    site = home / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site"
    (site / "validations").mkdir(parents=True)
    (site / "index.html").write_text("<h1>Data docs</h1>")
    (site / "validations" / "run.html").write_text("<p>one run</p>")
    (site.parent / "secret.html").write_text("no")
    client = TestClient(plugin.reports_app)
    assert "Data docs" in client.get("/docs/index.html").text
    assert client.get("/docs/validations/run.html").status_code == 200
    for bad in ("/docs/../secret.html", "/docs/..%2Fsecret.html", "/docs/missing.html",
                "/docs/%2E%2E/%2E%2E/%2E%2E/secret.txt"):
        assert client.get(bad).status_code == 404, bad


def _key(dag_id: str, task_id: str) -> SimpleNamespace:
    return SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id="asset_triggered__x")


def test_links_on_their_tasks_only(plugin, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which task shows which link; the XCom lookup itself runs for real in test_dag_runs."""
    results = {"report": {"window": "2017-07-07"},
               "train": {"run_id": "r1", "experiment_id": "3"}}
    monkeypatch.setattr(plugin, "task_result", lambda ti_key, task_id: results.get(task_id))
    monkeypatch.setenv("FLOWGUARD_MLFLOW_URL", "http://mlflow.example:5000")
    drift, mlflow, docs = plugin.DriftReportLink(), plugin.MlflowRunLink(), plugin.DataDocsLink()
    assert drift.get_link(None, ti_key=_key("flowguard_monitor", "report")) == (
        "/flowguard/reports/drift/2017-07-07/drift_report.html")
    for task in ("prepare", "decide", "alert_only", "trigger_retrain"):
        assert drift.get_link(None, ti_key=_key("flowguard_monitor", task)) == "", task
    assert drift.get_link(None, ti_key=_key("flowguard_train", "report")) == ""
    url = "http://mlflow.example:5000/#/experiments/3/runs/r1"
    assert mlflow.get_link(None, ti_key=_key("flowguard_train", "train")) == url
    assert mlflow.get_link(None, ti_key=_key("flowguard_train", "gate")) == url
    assert mlflow.get_link(None, ti_key=_key("flowguard_train", "training_set")) == ""
    assert docs.get_link(None, ti_key=_key("flowguard_ingest", "validate")) == ""  # none yet
    site = home / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<h1>Data docs</h1>")
    assert docs.get_link(None, ti_key=_key("flowguard_ingest", "validate")) == (
        "/flowguard/docs/index.html")
    assert docs.get_link(None, ti_key=_key("flowguard_ingest", "materialize")) == ""
    results["report"] = {"window": "2017-07-09"}
    assert drift.get_link(None, ti_key=_key("flowguard_monitor", "report")) == ""  # no report


def test_every_route_requires_the_login(plugin) -> None:
    """Each route of the app carries Airflow's login dependency, and FastAPI's own docs and
    schema routes (served outside an app's dependencies) are off; the 401 itself is tested
    against Airflow's real app in test_health_page.py."""
    from fastapi.routing import APIRoute

    app = plugin.reports_app
    assert app.docs_url is None and app.redoc_url is None and app.openapi_url is None
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert routes and len(routes) == len(app.routes)
    for route in routes:
        assert any(d.call is plugin.LOGIN for d in route.dependant.dependencies), route.path


def test_report_route_does_not_follow_symlinks_out(plugin, home: Path) -> None:
    from fastapi.testclient import TestClient

    outside = home / "secret.txt"
    day = home / "reports" / "drift" / "2017-07-06"
    day.mkdir(parents=True)
    (day / "drift_report.html").symlink_to(outside)
    (home / "reports" / "drift" / "2017-07-05").symlink_to(home)
    client = TestClient(plugin.reports_app)
    assert client.get("/reports/drift/2017-07-06/drift_report.html").status_code == 404
    (home / "drift_report.html").write_text("outside")
    assert client.get("/reports/drift/2017-07-05/drift_report.html").status_code == 404
    assert client.get("/reports/drift/2017-07-07/drift_report.html").status_code == 200
