"""The health page: the system day by day from the places that own each fact, drawn by
matplotlib with a link on every point, behind Airflow's login like every /flowguard route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S
from tests.test_features import MON, TUE, _ingest
from tests.test_training_registry import _frame, _gate, _train

pytestmark = pytest.mark.slow


@pytest.fixture
def state(home: Path, synthetic_week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two ingested days, two drift checks (one with p = 0), a promoted model, an alert."""
    from flowguard.alerts import send_alert
    from flowguard.monitoring import record_history

    monkeypatch.setenv("FLOWGUARD_MODEL_NAME", "m")
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SLACK", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SMTP", raising=False)
    _ingest(home, synthetic_week, [MON, TUE])
    history = home / "reports" / "drift" / "history.json"
    for window, mmd, drift in (("2017-07-03", 0.42, False), ("2017-07-04", 0.0, True)):
        record_history(history, {"window": window, "run_id": f"r-{window}", "drift": drift,
                                 "retrain": drift, "champion_version": "1",
                                 "mmd_p_value": mmd, "classifier_p_value": 0.3 if not drift
                                 else 0.001, "prediction_p_value": 0.5})
    frame = _frame({"BENIGN": 300, "DoS Hulk": 120})
    frame["event_timestamp"] = frame["event_timestamp"] + (
        __import__("pandas").Timestamp("2017-07-04", tz="UTC")
        - __import__("pandas").Timestamp("2017-07-03", tz="UTC"))
    client, result, version = _train(tmp_path, frame, "t1")
    client.set_tag(result.run_id, "lineage.training_days", "2017-07-03,2017-07-04")  # as the DAG
    assert _gate(client, version, home, "").promoted
    send_alert("flowguard drift on 2017-07-04", "drift (all of mmd p=0)")
    return home, result


def test_page_shows_days_drift_models_and_alerts_with_links(state) -> None:
    from flowguard.config import get_settings
    from flowguard.health import collect, page

    home, result = state
    data = collect(get_settings())
    assert [d["day"] for d in data["days"]] == ["2017-07-03", "2017-07-04"]
    assert all(d["rows_in"] == d["valid"] + d["quarantined"] > 0 for d in data["days"])
    assert [m["version"] for m in data["models"]] == ["1"]
    assert data["models"][0]["aliases"] == ["champion"]
    assert data["alerts"][0]["subject"] == "flowguard drift on 2017-07-04"
    text = page(get_settings())
    assert "<svg" in text and "matplotlib" in text  # drawn by the library, not by hand
    for link in ("/flowguard/docs/index.html",
                 "/flowguard/reports/drift/2017-07-04/drift_report.html",
                 f"/runs/{result.run_id}"):
        assert f'href="{link}' in text or link in text, link
        assert text.count(link) >= 2, link  # in the figure and in the tables
    assert "p &lt; 0.0001, often exactly 0" in text or "p < 0.0001" in text
    assert "max-width: 1200px" in text and "width: 100%" in text
    assert ">0<" in text or ">0</td>" in text  # the p = 0 row is printed, not dropped


def _airflow_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Airflow's own API app (its auth manager and plugins), on a migrated database."""
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "health-test-password"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=HANG_GUARD_S,
                   env=os.environ.copy())
    from airflow.api_fastapi.app import create_app

    return create_app()


def test_every_flowguard_route_is_behind_airflow_login(state, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    home, _ = state
    report = home / "reports" / "drift" / "2017-07-04"
    report.mkdir(parents=True)
    (report / "drift_report.html").write_text("<h1>report</h1>")
    client = TestClient(_airflow_app(tmp_path, monkeypatch))
    routes = ("/flowguard/health", "/flowguard/reports/drift/2017-07-04/drift_report.html",
              "/flowguard/docs/index.html", "/flowguard/docs", "/flowguard/docs/oauth2-redirect",
              "/flowguard/reports/drift/2017-07-04/drift_report.json")
    # FastAPI's own docs and schema routes answer without login: they are switched off
    for route in ("/flowguard/openapi.json", "/flowguard/redoc"):
        assert client.get(route).status_code == 404, route
    for route in routes:
        assert client.get(route).status_code == 401, route
        assert client.get(route, headers={"Authorization": "Bearer forged"}).status_code in (
            401, 403), route
    token = client.post("/auth/token", json={"username": "admin",
                                             "password": "health-test-password"})
    assert token.status_code in (200, 201), token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    health = client.get("/flowguard/health", headers=auth)
    assert health.status_code == 200 and "flowguard health" in health.text
    assert client.get(routes[1], headers=auth).text == "<h1>report</h1>"
    # the browser's way: the UI's session cookie
    client.cookies.set("_token", token.json()["access_token"])
    assert client.get("/flowguard/health").status_code == 200
