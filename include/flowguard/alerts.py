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
    _record(subject, outcome, folder.parent)
    return outcome


def _record(subject: str, outcome: dict[str, str], folder: Path) -> None:
    """Append the alert to ``alerts/sent.jsonl`` (the health page's "alerts sent")."""
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"),
                       "subject": subject, "outcome": outcome or {"none": "no channel"}})
    with open(folder / "sent.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def sent_alerts(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every alert recorded by :func:`send_alert`, oldest first."""
    path = (folder or spool_dir().parent) / "sent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------- links
# Alerts are read away from the workers: every place they point to is a URL under the
# configured base URLs (FLOWGUARD_AIRFLOW_URL, else Airflow's [api] base_url;
# FLOWGUARD_MLFLOW_URL), never a worker's file path.


def airflow_run_url(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    from flowguard.config import get_settings

    return f"{get_settings().airflow_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def task_log_url(dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
    """The task instance's page in the Airflow UI, which opens on its log (of that try)."""
    url = f"{airflow_run_url(dag_id, run_id)}/tasks/{task_id}"
    return f"{url}?try_number={try_number}" if try_number else url


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    from flowguard.config import get_settings

    return f"{get_settings().mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}"


def report_url(window: str) -> str:
    """The drift report as the Airflow plugin serves it (``/flowguard/reports/...``)."""
    from flowguard.config import get_settings

    return f"{get_settings().airflow_url}/flowguard/reports/drift/{window}/drift_report.html"


def data_docs_url() -> str:
    """The Great Expectations data docs as the Airflow plugin serves them."""
    from flowguard.config import get_settings

    return f"{get_settings().airflow_url}/flowguard/docs/index.html"


def drift_alert(decision: dict[str, Any]) -> dict[str, str]:
    """The monitoring DAG's alert: decision, action, p-values, top features and links to the
    report, the Airflow run and the MLflow run."""
    action = ("retraining triggered" if decision["retrain"]
              else f"retraining not triggered: {decision['why']}")
    p_values = ", ".join(f"{k.removesuffix('_p_value')} p={v:.3g}" for k, v in decision.items()
                         if k.endswith("_p_value") and v is not None)
    lines = [decision["reason"], action, f"p-values: {p_values}",
             f"top drifted features: {', '.join(decision.get('top_features', [])) or '-'}",
             f"report: {report_url(decision['window'])}"]
    novel = decision.get("novel_flows") or []
    if novel:
        lines.insert(3, "novel flows (most novel first): " + "; ".join(
            f"{r.get('flow_uid', r['row'])} from {r.get('src_ip') or '?'} at "
            f"{r.get('event_timestamp') or '?'} (nearest known class {r.get('nearest_class')})"
            for r in novel[:5]))
    if decision.get("estimated_macro_f1") is not None:
        lines.insert(3, f"estimated macro-F1 (no labels): {decision['estimated_macro_f1']:.3f}")
    if decision.get("airflow_run_id"):
        lines.append(f"airflow run: {airflow_run_url('flowguard_monitor', decision['airflow_run_id'])}")
    if decision.get("mlflow_run_id"):
        lines.append(f"mlflow run: {mlflow_run_url(decision['mlflow_experiment_id'], decision['mlflow_run_id'])}")
    return send_alert(f"flowguard drift on {decision['window']}", "\n".join(lines))


def _ti_facts(context: dict[str, Any]) -> dict[str, Any]:
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or "?"
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or "?"
    task_id = getattr(ti, "task_id", None) or "?"
    try_number = getattr(ti, "try_number", None)
    max_tries = getattr(ti, "max_tries", None)
    tries = (f"try {try_number} of {max_tries + 1}" if try_number and max_tries is not None
             else f"try {try_number or '?'}")
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "tries": tries,
            "log": task_log_url(dag_id, run_id, task_id, try_number),
            "run": airflow_run_url(dag_id, run_id), "error": context.get("exception")}


def task_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback``: which DAG, task, run and try failed, the error, and links to
    the task's log and the run."""
    f = _ti_facts(context)
    send_alert(f"flowguard task failed: {f['dag_id']}.{f['task_id']} ({f['tries']})",
               f"dag: {f['dag_id']}\ntask: {f['task_id']}\nrun: {f['run_id']}\n{f['tries']}\n"
               f"error: {f['error']}\nlog: {f['log']}\nairflow run: {f['run']}")


def validation_failure_alert(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of the ingest DAG's validation: the batch was unusable (no
    rows, missing columns, too many rejected); names the run and the error and links the
    task's log, the data docs and the run."""
    f = _ti_facts(context)
    send_alert(f"flowguard validation failed: {f['dag_id']} {f['run_id']} ({f['tries']})",
               f"error: {f['error']}\nlog: {f['log']}\ndata docs: {data_docs_url()}\n"
               f"airflow run: {f['run']}")
