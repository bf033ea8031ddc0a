"""Alerts reach a real local Slack-webhook receiver and a real local SMTP server; a channel
that is down is reported and logged, never raised into the pipeline."""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator

import pytest

from flowguard import alerts
from flowguard.alerts import drift_alert, flush_spool, send_alert
from tests.receivers import serve_webhook

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: F401 - smtpd needs it; both ship with Python 3.11
    import smtpd


@pytest.fixture(autouse=True)
def _own_spool(home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own FLOWGUARD_HOME (so its own spool) and no slow backoff."""
    monkeypatch.setattr(alerts, "BACKOFF_SECONDS", 0.01)


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict]]]:
    server, received = serve_webhook()
    yield server.server_port, received
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[tuple[str, list[str], str]]]]:
    import asyncore as loop

    received: list[tuple[str, list[str], str]] = []

    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):  # noqa: ANN001
            received.append((mailfrom, rcpttos, data.decode() if isinstance(data, bytes) else data))

    server = Server(("127.0.0.1", 0), None, decode_data=False)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            loop.loop(timeout=0.1, count=1)

    threading.Thread(target=serve, daemon=True).start()
    yield port, received
    stop.set()
    server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_alert_reaches_slack_and_email(monkeypatch: pytest.MonkeyPatch, webhook, smtp_server) -> None:
    hook_port, posts = webhook
    smtp_port, mails = smtp_server
    monkeypatch.setenv("AIRFLOW_CONN_FLOWGUARD_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": f"http://127.0.0.1:{hook_port}",
        "password": "/services/T000/B000/XXXX"}))
    monkeypatch.setenv("AIRFLOW_CONN_FLOWGUARD_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port, "extra": {
            "disable_ssl": True, "disable_tls": True, "to": "soc@example.org",
            "from_email": "flowguard@example.org", "timeout": 5, "retry_limit": 1}}))
    outcome = send_alert("flowguard drift on 2017-07-07", "drift (all of mmd p=0)\nreport: x.html")
    assert outcome == {"slack": "sent", "email": "sent"}
    assert "flowguard drift on 2017-07-07" in posts[0]["text"]
    assert "mmd p=0" in posts[0]["text"]
    mailfrom, rcpt, body = mails[0]
    assert rcpt == ["soc@example.org"]
    assert "flowguard drift on 2017-07-07" in body


def _slack_on(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FLOWGUARD_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": f"http://127.0.0.1:{port}",
        "password": "/services/T000/B000/XXXX"}))
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SMTP", raising=False)


def test_channel_down_is_retried_spooled_and_logged(monkeypatch: pytest.MonkeyPatch, caplog,
                                                    home) -> None:
    _slack_on(monkeypatch, _free_port())
    outcome = send_alert("subject", "body")
    assert outcome["slack"].startswith("spooled:")
    assert "email" not in outcome
    attempts = [r for r in caplog.records if "alert attempt" in r.getMessage()]
    assert len(attempts) == alerts.ATTEMPTS
    assert any(r.levelname == "ERROR" and "spooled to" in r.getMessage() for r in caplog.records)
    spooled = list((home / "alerts" / "spool").glob("*-slack-*.json"))
    assert len(spooled) == 1 and json.loads(spooled[0].read_text())["subject"] == "subject"


def test_receiver_down_then_up_delivers_everything_in_order(monkeypatch: pytest.MonkeyPatch,
                                                             home) -> None:
    port = _free_port()
    _slack_on(monkeypatch, port)
    assert send_alert("first", "while down")["slack"].startswith("spooled:")
    assert send_alert("second", "still down")["slack"].startswith("spooled:")
    assert flush_spool() == {"delivered": 0, "pending": 2}  # still down: kept, not dropped
    server, posts = serve_webhook(port)  # the receiver comes back
    try:
        assert send_alert("third", "after recovery") == {"slack": "sent"}
        texts = [p["text"] for p in posts]
        assert [t.split("*")[1] for t in texts] == ["first", "second", "third"]
        assert not list((home / "alerts" / "spool").glob("*.json"))
        assert flush_spool() == {"delivered": 0, "pending": 0}
    finally:
        server.shutdown()
        server.server_close()


def test_drift_alert_names_features_action_and_report(monkeypatch: pytest.MonkeyPatch,
                                                      webhook) -> None:
    port, posts = webhook
    _slack_on(monkeypatch, port)
    decision = {"window": "2017-07-07", "retrain": False, "drift": True,
                "why": "cooldown: retraining was triggered for window 2017-07-06",
                "reason": "drift (all of mmd p=0, classifier p=0.01)",
                "mmd_p_value": 0.0, "classifier_p_value": 0.01, "prediction_p_value": None,
                "top_features": ["dst_port", "flow_duration"],
                "report_html": "/var/reports/drift/2017-07-07/drift_report.html"}
    monkeypatch.setenv("FLOWGUARD_AIRFLOW_URL", "https://airflow.example.org/")
    monkeypatch.setenv("FLOWGUARD_MLFLOW_URL", "https://mlflow.example.org")
    decision.update(airflow_run_id="asset_triggered__2017-07-08T00:01:02+00:00",
                    mlflow_run_id="abc123", mlflow_experiment_id="4")
    assert drift_alert(decision) == {"slack": "sent"}
    text = posts[0]["text"]
    assert "flowguard drift on 2017-07-07" in text and "not triggered: cooldown" in text
    assert "top drifted features: dst_port, flow_duration" in text
    assert "mmd p=0, classifier p=0.01" in text
    # links through the configured base URLs, not the worker's file path
    assert ("report: https://airflow.example.org/flowguard/reports/drift/2017-07-07/"
            "drift_report.html") in text
    assert ("airflow run: https://airflow.example.org/dags/flowguard_monitor/runs/"
            "asset_triggered__2017-07-08T00%3A01%3A02%2B00%3A00") in text
    assert "mlflow run: https://mlflow.example.org/#/experiments/4/runs/abc123" in text
    assert "/var/reports" not in text


def test_no_channel_configured_only_logs(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SLACK", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SMTP", raising=False)
    assert send_alert("subject", "body") == {}


def test_task_failure_alert_names_dag_task_run_try_and_links_the_log(
        monkeypatch: pytest.MonkeyPatch, webhook) -> None:
    """The context Airflow hands an ``on_failure_callback``: its task instance and the error."""
    from types import SimpleNamespace

    from flowguard.alerts import task_failure_alert, validation_failure_alert

    port, posts = webhook
    _slack_on(monkeypatch, port)
    monkeypatch.setenv("FLOWGUARD_AIRFLOW_URL", "https://airflow.example.org")
    run_id = "scheduled__2017-07-04T00:00:00+00:00"
    ti = SimpleNamespace(dag_id="flowguard_train", task_id="train", run_id=run_id,
                         try_number=2, max_tries=1)
    task_failure_alert({"ti": ti, "run_id": run_id, "exception": ValueError("empty holdout")})
    subject, body = posts[0]["text"].split("\n", 1)
    assert subject == "*flowguard task failed: flowguard_train.train (try 2 of 2)*"
    assert f"dag: flowguard_train\ntask: train\nrun: {run_id}\ntry 2 of 2" in body
    assert "error: empty holdout" in body
    log = ("https://airflow.example.org/dags/flowguard_train/runs/"
           "scheduled__2017-07-04T00%3A00%3A00%2B00%3A00/tasks/train?try_number=2")
    assert f"log: {log}" in body

    ti = SimpleNamespace(dag_id="flowguard_ingest", task_id="validate", run_id=run_id,
                         try_number=1, max_tries=2)
    validation_failure_alert({"ti": ti, "exception": RuntimeError("too many rejected")})
    text = posts[1]["text"]
    assert "flowguard validation failed: flowguard_ingest" in text and "try 1 of 3" in text
    assert "data docs: https://airflow.example.org/flowguard/docs/index.html" in text
    assert "/tasks/validate?try_number=1" in text
