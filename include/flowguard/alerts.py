"""Alerts through Airflow connections: a Slack incoming webhook and SMTP email.

Channels are optional and configured only by connections (``flowguard_slack`` of type
``slackwebhook``; ``flowguard_smtp`` of type ``smtp`` with ``extra.to``). A channel that is
not configured is skipped with a log line. A channel that fails is retried (``ATTEMPTS``
times with a short backoff); if it still fails, the alert is written to a spool folder
(``$FLOWGUARD_HOME/alerts/spool``, one JSON file per channel and alert) and logged at ERROR,
and the task that raised it goes on. Every later alert first re-sends the spool, oldest
first, so an alert is delivered once the channel is back, never lost silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SLACK_CONN_ID = "flowguard_slack"
SMTP_CONN_ID = "flowguard_smtp"
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - "not configured" surfaces as several types
        log.info("alert channel %s not configured (%s)", conn_id, type(exc).__name__)
        return None


def spool_dir() -> Path:
    from flowguard.config import get_settings

    return get_settings().home / "alerts" / "spool"


def _send_slack(subject: str, body: str) -> None:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send(text=f"*{subject}*\n{body}")


def _send_email(subject: str, body: str) -> None:
    import html

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    smtp = _connection(SMTP_CONN_ID)
    to = smtp.extra_dejson.get("to") or smtp.login
    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=f"<pre>{html.escape(body)}</pre>")


_SENDERS = {"slack": (SLACK_CONN_ID, _send_slack), "email": (SMTP_CONN_ID, _send_email)}


def _deliver(channel: str, subject: str, body: str, attempts: int = ATTEMPTS) -> str | None:
    """Send with retries; ``None`` on success, else the last error."""
    error = None
    for attempt in range(1, attempts + 1):
        try:
            _SENDERS[channel][1](subject, body)
            return None
        except Exception as exc:  # noqa: BLE001 - an alert channel must not fail the pipeline
            error = f"{type(exc).__name__}: {exc}"
            log.warning("%s alert attempt %d/%d failed: %s", channel, attempt, attempts, error)
            if attempt < attempts:
                time.sleep(BACKOFF_SECONDS * attempt)
    return error


def _spool(channel: str, subject: str, body: str, error: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    digest = hashlib.sha256(f"{channel}{subject}{body}".encode()).hexdigest()[:12]
    path = folder / f"{now:%Y%m%dT%H%M%S%f}-{channel}-{digest}.json"
    path.write_text(json.dumps({"channel": channel, "subject": subject, "body": body,
                                "first_error": error, "spooled_at": now.isoformat()}))
    return path


def flush_spool(folder: Path | None = None) -> dict[str, int]:
    """Re-send spooled alerts (oldest first) to channels that are configured; a delivered
    alert's file is removed, a failed one stays with its error count updated."""
    folder = folder or spool_dir()
    sent = failed = 0
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        item = json.loads(path.read_text())
        channel = item["channel"]
        if _connection(_SENDERS[channel][0]) is None:
            failed += 1
            continue
        error = _deliver(channel, item["subject"], item["body"], attempts=1)
        if error is None:
            path.unlink()
            sent += 1
            log.info("delivered spooled %s alert %r", channel, item["subject"])
        else:
            item["retries"] = item.get("retries", 0) + 1
            item["last_error"] = error
            path.write_text(json.dumps(item))
            failed += 1
    if sent or failed:
        log.info("alert spool %s: %d delivered, %d still pending", folder, sent, failed)
    return {"delivered": sent, "pending": failed}


def send_alert(subject: str, body: str) -> dict[str, str]:
    """Send to every configured channel; return each channel's outcome (``sent`` or
    ``spooled: <error>``). Spooled alerts of earlier runs are re-sent first."""
    folder = spool_dir()
    flush_spool(folder)
    outcome: dict[str, str] = {}
    for channel, (conn_id, _) in _SENDERS.items():
        if _connection(conn_id) is None:
            continue
        error = _deliver(channel, subject, body)
        if error is None:
            outcome[channel] = "sent"
        else:
            path = _spool(channel, subject, body, error, folder)
            log.error("%s alert failed after %d attempts (%s); spooled to %s for the next "
                      "alert or `flush_spool`", channel, ATTEMPTS, error, path)
            outcome[channel] = f"spooled: {error}"
    log.warning("ALERT %s: %s (%s)", subject, body, outcome or "no channel configured")
    return outcome


def drift_alert(decision: dict[str, Any]) -> dict[str, str]:
    """The monitoring DAG's alert: decision, action, p-values, top features, report."""
    action = ("retraining triggered" if decision["retrain"]
              else f"retraining not triggered: {decision['why']}")
    p_values = ", ".join(f"{k.removesuffix('_p_value')} p={v:.3g}" for k, v in decision.items()
                         if k.endswith("_p_value") and v is not None)
    body = (f"{decision['reason']}\n{action}\np-values: {p_values}\n"
            f"top drifted features: {', '.join(decision.get('top_features', [])) or '-'}\n"
            f"report: {decision['report_html']}")
    return send_alert(f"flowguard drift on {decision['window']}", body)


def task_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback``: name the DAG, task, run and error."""
    ti = context.get("task_instance") or context.get("ti")
    subject = f"flowguard task failed: {getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
    send_alert(subject, f"run {context.get('run_id')}: {context.get('exception')}")


def validation_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of the ingest DAG's validation: the batch was unusable (no
    rows, missing columns, too many rejected); names the run, the error and the data docs."""
    from flowguard.config import get_settings

    settings = get_settings()
    ti = context.get("task_instance") or context.get("ti")
    send_alert(f"flowguard validation failed: {getattr(ti, 'dag_id', '?')} "
               f"{context.get('run_id')}",
               f"error: {context.get('exception')}\n"
               f"data docs: {settings.data_docs_index}\n"
               f"quarantine: {settings.quarantine_dir / 'flows'}")
