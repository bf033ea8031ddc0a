"""Alerts reach a real local Slack-webhook receiver and a real local SMTP server; a channel
that is down is reported and logged, never raised into the pipeline."""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flowguard.alerts import send_alert

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: F401 - smtpd needs it; both ship with Python 3.11
    import smtpd


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, received
    server.shutdown()


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


def test_channel_down_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FLOWGUARD_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": f"http://127.0.0.1:{_free_port()}",
        "password": "/services/T000/B000/XXXX"}))
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SMTP", raising=False)
    outcome = send_alert("subject", "body")
    assert outcome["slack"].startswith("failed:")
    assert "email" not in outcome


def test_no_channel_configured_only_logs(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SLACK", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_FLOWGUARD_SMTP", raising=False)
    assert send_alert("subject", "body") == {}
