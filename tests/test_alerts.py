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


# ---------------------------------------------------------------- faults (issue 19)


def _hanging_receiver() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()[1]


def test_hanging_receiver_is_bounded_and_the_alert_stays_spooled(
        monkeypatch: pytest.MonkeyPatch, home) -> None:
    import time

    monkeypatch.setattr(alerts, "CALL_TIMEOUT_SECONDS", 1.0)
    sock, port = _hanging_receiver()
    try:
        _slack_on(monkeypatch, port)
        spool = home / "alerts" / "spool"
        for n in range(3):
            alerts._spool("slack", f"old {n}", "spooled earlier", spool)
        started = time.monotonic()
        outcome = send_alert("new", "while the receiver hangs")
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert outcome["slack"].startswith("spooled: TimeoutError"), outcome
    # the old code waited 30 s per spooled alert plus 3 x 30 s; here one failed call per
    # round for the spooled ones (the channel is then known down) and 3 bounded attempts
    assert elapsed < 60, elapsed
    assert len(list(spool.glob("*.json"))) == 4


def test_alert_is_spooled_before_the_first_attempt(monkeypatch: pytest.MonkeyPatch,
                                                   home) -> None:
    seen: list[list[str]] = []

    def sender(subject: str, body: str) -> None:
        seen.append([p.name for p in (home / "alerts" / "spool").glob("*.json")])

    monkeypatch.setitem(alerts._SENDERS, "slack", (alerts.SLACK_CONN_ID, sender))
    _slack_on(monkeypatch, _free_port())
    assert send_alert("subject", "body") == {"slack": "sent"}
    assert len(seen) == 1 and len(seen[0]) == 1  # on disk while being sent
    assert not list((home / "alerts" / "spool").glob("*.json"))  # removed once sent


def test_bad_spool_entries_are_set_aside_not_raised(monkeypatch: pytest.MonkeyPatch, caplog,
                                                    home, webhook) -> None:
    port, posts = webhook
    _slack_on(monkeypatch, port)
    spool = home / "alerts" / "spool"
    spool.mkdir(parents=True)
    (spool / "20170101T000000000000-slack-corrupt.json").write_text("{not json")
    (spool / "20170101T000000000001-pager-unknown.json").write_text(json.dumps(
        {"channel": "pager", "subject": "s", "body": "b"}))
    assert send_alert("after the bad ones", "body") == {"slack": "sent"}
    assert [p["text"].split("*")[1] for p in posts] == ["after the bad ones"]
    assert sorted(p.name for p in (spool / "bad").iterdir()) == [
        "20170101T000000000000-slack-corrupt.json", "20170101T000000000001-pager-unknown.json"]
    assert sum("set aside" in r.getMessage() for r in caplog.records) == 2


def test_unwritable_spool_sends_directly_and_never_raises(monkeypatch: pytest.MonkeyPatch,
                                                         caplog, home, webhook) -> None:
    port, posts = webhook
    _slack_on(monkeypatch, port)
    (home / "alerts").mkdir(parents=True)
    (home / "alerts" / "spool").write_text("a file where the spool folder should be")
    assert send_alert("no spool", "body") == {"slack": "sent"}
    assert posts and any("not writable" in r.getMessage() for r in caplog.records)


def test_concurrent_alerts_deliver_everything_once(monkeypatch: pytest.MonkeyPatch,
                                                   home, webhook) -> None:
    """Two tasks alerting at once with five alerts spooled: nothing raised, nothing lost,
    nothing delivered twice."""
    port, posts = webhook
    _slack_on(monkeypatch, port)
    spool = home / "alerts" / "spool"
    for n in range(5):
        alerts._spool("slack", f"spooled {n}", "b", spool)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda s=s: results.append(send_alert(s, "b")))
               for s in ("task one", "task two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    flush_spool()  # an alert left for the process that was sending is picked up here at last
    subjects = sorted(p["text"].split("*")[1] for p in posts)
    assert subjects == sorted([f"spooled {n}" for n in range(5)] + ["task one", "task two"])
    assert len(results) == 2 and not list(spool.glob("*.json"))
    ids = [p["text"].rsplit("alert id: ", 1)[1] for p in posts]
    assert len(set(ids)) == len(ids)  # each alert carries its dedupe key
