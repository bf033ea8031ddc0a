"""Alerts through Airflow connections: a Slack incoming webhook and SMTP email.

Channels are optional and configured only by connections (``flowguard_slack`` of type
``slackwebhook``; ``flowguard_smtp`` of type ``smtp`` with ``extra.to``). A channel that is
not configured is skipped with a log line; a channel that fails is logged with its error and
never fails the task that raised the alert.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SLACK_CONN_ID = "flowguard_slack"
SMTP_CONN_ID = "flowguard_smtp"


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - "not configured" surfaces as several types
        log.info("alert channel %s not configured (%s)", conn_id, type(exc).__name__)
        return None


def send_alert(subject: str, body: str) -> dict[str, str]:
    """Send to every configured channel; return each channel's outcome."""
    outcome: dict[str, str] = {}
    if _connection(SLACK_CONN_ID) is not None:
        try:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send(text=f"*{subject}*\n{body}")
            outcome["slack"] = "sent"
        except Exception as exc:  # noqa: BLE001 - an alert channel must not fail the pipeline
            log.error("Slack alert failed: %s", exc)
            outcome["slack"] = f"failed: {exc}"
    smtp = _connection(SMTP_CONN_ID)
    if smtp is not None:
        try:
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            to = smtp.extra_dejson.get("to") or smtp.login
            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
                hook.send_email_smtp(to=to, subject=subject, html_content=f"<pre>{body}</pre>")
            outcome["email"] = "sent"
        except Exception as exc:  # noqa: BLE001
            log.error("email alert failed: %s", exc)
            outcome["email"] = f"failed: {exc}"
    log.warning("ALERT %s: %s (%s)", subject, body, outcome or "no channel configured")
    return outcome


def task_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback``: name the DAG, task, run and error."""
    ti = context.get("task_instance") or context.get("ti")
    subject = f"flowguard task failed: {getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
    send_alert(subject, f"run {context.get('run_id')}: {context.get('exception')}")
