"""Alerts through Airflow connections: a Slack incoming webhook and SMTP email.

Channels are optional and configured only by connections (``flowguard_slack`` of type
``slackwebhook``; ``flowguard_smtp`` of type ``smtp`` with ``extra.to``). A channel that is
not configured is skipped with a log line.

Delivery is at least once, bounded in time, safe with concurrent tasks, and never raises
into the pipeline:

* the alert is written to the spool (``$FLOWGUARD_HOME/alerts/spool``, one JSON file per
  channel and alert, written under a temporary name and renamed) *before* the first attempt,
  so a process that ends mid-send leaves it for the next one; it is removed only once sent;
* each alert carries an id (``alert id: ...`` in the text), so a receiver can drop the
  duplicate that a crash between sending and removing can cause;
* every call to a channel is bounded (:data:`CALL_TIMEOUT_SECONDS`, also when the library
  waits longer: the call runs in a daemon thread), a channel that fails is not tried again
  in the same round, and one round stops after :data:`ROUND_BUDGET_SECONDS`;
* one process at a time sends from a spool (an ``flock`` on ``spool/.lock``, bounded wait;
  the kernel releases it when a process dies); the others leave their alert spooled for it;
* a spool entry that cannot be read (corrupt JSON, an unknown channel) is moved to
  ``spool/bad/`` with an ERROR log line; an unwritable spool is logged and the alert is sent
  directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

SLACK_CONN_ID = "flowguard_slack"
SMTP_CONN_ID = "flowguard_smtp"
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
CALL_TIMEOUT_SECONDS = 10.0  # one call to a receiver (a hanging one never blocks longer)
ROUND_BUDGET_SECONDS = 60.0  # one send_alert/flush_spool round, all channels and entries
LOCK_WAIT_SECONDS = 5.0  # waiting for another process that is sending from the spool


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

    SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID, timeout=int(CALL_TIMEOUT_SECONDS)
                     ).send(text=f"*{subject}*\n{body}")


def _send_email(subject: str, body: str) -> None:
    import html

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    smtp = _connection(SMTP_CONN_ID)
    to = smtp.extra_dejson.get("to") or smtp.login
    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=f"<pre>{html.escape(body)}</pre>")


_SENDERS = {"slack": (SLACK_CONN_ID, _send_slack), "email": (SMTP_CONN_ID, _send_email)}


def _bounded(call: Callable[[], None], seconds: float) -> None:
    """Run ``call``; raise ``TimeoutError`` if it has not returned within ``seconds`` (it is
    left running in a daemon thread: a hanging receiver cannot hold the task)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True, name="flowguard-alert")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if failure:
        raise failure[0]


def _deliver(channel: str, subject: str, body: str, attempts: int = ATTEMPTS,
             deadline: float | None = None) -> str | None:
    """Send with retries, each call bounded; ``None`` on success, else the last error."""
    error = None
    for attempt in range(1, attempts + 1):
        left = CALL_TIMEOUT_SECONDS if deadline is None else min(
            CALL_TIMEOUT_SECONDS, deadline - time.monotonic())
        if left <= 0:
            return error or f"not tried: the round's {ROUND_BUDGET_SECONDS:g} s were used up"
        try:
            _bounded(lambda: _SENDERS[channel][1](subject, body), left)
            return None
        except Exception as exc:  # noqa: BLE001 - an alert channel must not fail the pipeline
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("%s alert attempt %d/%d failed: %s", channel, attempt, attempts, error)
            if attempt < attempts:
                time.sleep(BACKOFF_SECONDS * attempt)
    return error


def _write_atomic(path: Path, item: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(item))
    tmp.replace(path)


def _spool(channel: str, subject: str, body: str, folder: Path) -> Path:
    """Write the alert to the spool (atomically) before any attempt to send it."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    alert_id = hashlib.sha256(f"{channel}{subject}{body}{now.isoformat()}{os.getpid()}"
                              f"{time.perf_counter_ns()}".encode()).hexdigest()[:16]
    path = folder / f"{now:%Y%m%dT%H%M%S%f}-{channel}-{alert_id}.json"
    _write_atomic(path, {"channel": channel, "subject": subject, "body": body,
                         "alert_id": alert_id, "spooled_at": now.isoformat()})
    return path


class _SpoolBusy(Exception):
    """The spool's lock was not acquired in time (never leaves :func:`_spool_lock`)."""


@contextlib.contextmanager
def _spool_lock(folder: Path, wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
    """Whether this process holds the spool's lock (waited for at most ``wait`` seconds)."""
    from flowguard.locks import file_lock

    try:
        with file_lock(folder / ".lock", wait, _SpoolBusy):
            yield True
    except _SpoolBusy:
        yield False


def _set_aside(path: Path, why: str) -> None:
    bad = path.parent / "bad"
    bad.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        path.replace(bad / path.name)
    log.error("alert spool entry %s set aside in %s: %s", path.name, bad, why)


def _read_entry(path: Path) -> dict[str, Any] | None:
    try:
        item = json.loads(path.read_text())
    except FileNotFoundError:
        return None  # sent by another process meanwhile
    except (OSError, ValueError) as exc:
        _set_aside(path, f"unreadable ({type(exc).__name__}: {exc})")
        return None
    if not isinstance(item, dict) or item.get("channel") not in _SENDERS or not all(
            isinstance(item.get(k), str) for k in ("subject", "body")):
        _set_aside(path, f"not an alert of a known channel ({list(_SENDERS)})")
        return None
    return item


def _text(item: dict[str, Any]) -> str:
    return f"{item['body']}\nalert id: {item['alert_id']}" if item.get("alert_id") else item["body"]


def _flush(folder: Path, fresh: set[Path], deadline: float) -> dict[str, Any]:
    """One round over the spool, oldest first (the caller holds the lock)."""
    sent = pending = 0
    outcome: dict[Path, str] = {}
    down: dict[str, str] = {}
    configured: dict[str, bool] = {}
    seen: set[Path] = set()
    while True:  # entries spooled by other processes during the round are picked up too
        paths = [p for p in sorted(folder.glob("*.json")) if p not in seen]
        if not paths:
            break
        for path in paths:
            seen.add(path)
            item = _read_entry(path)
            if item is None:
                continue
            channel = item["channel"]
            if channel not in configured:
                configured[channel] = _connection(_SENDERS[channel][0]) is not None
            if not configured[channel] or channel in down or time.monotonic() >= deadline:
                pending += 1
                outcome[path] = down.get(channel) or ("channel not configured" if not
                                                      configured[channel] else "round budget used up")
                continue
            error = _deliver(channel, item["subject"], _text(item),
                             attempts=ATTEMPTS if path in fresh else 1, deadline=deadline)
            if error is None:
                path.unlink(missing_ok=True)
                sent += 1
                outcome[path] = "sent"
                if path not in fresh:
                    log.info("delivered spooled %s alert %r", channel, item["subject"])
                continue
            down[channel] = error
            pending += 1
            outcome[path] = error
            item["retries"] = item.get("retries", 0) + 1
            item["last_error"] = error
            with contextlib.suppress(OSError):
                _write_atomic(path, item)
    if sent or pending:
        log.info("alert spool %s: %d delivered, %d still pending", folder, sent, pending)
    return {"delivered": sent, "pending": pending, "outcome": outcome}


def flush_spool(folder: Path | None = None) -> dict[str, int]:
    """Re-send spooled alerts (oldest first) to channels that are configured; a delivered
    alert's file is removed, a failed one stays with its error count updated. Never raises."""
    folder = folder or spool_dir()
    if not folder.exists():
        return {"delivered": 0, "pending": 0}
    try:
        with _spool_lock(folder) as held:
            if not held:
                log.info("alert spool %s: another process is sending from it", folder)
                return {"delivered": 0, "pending": len(list(folder.glob("*.json")))}
            result = _flush(folder, set(), time.monotonic() + ROUND_BUDGET_SECONDS)
    except Exception:  # noqa: BLE001 - alerting must never fail the pipeline
        log.exception("alert spool %s could not be flushed", folder)
        return {"delivered": 0, "pending": -1}
    return {"delivered": result["delivered"], "pending": result["pending"]}


def send_alert(subject: str, body: str) -> dict[str, str]:
    """Send to every configured channel; return each channel's outcome (``sent`` or
    ``spooled: <error>``). The alert is spooled first; spooled alerts of earlier runs are
    re-sent in the same round, oldest first. Never raises."""
    outcome: dict[str, str] = {}
    try:
        outcome = _send_alert(subject, body)
    except Exception as exc:  # noqa: BLE001 - alerting must never fail the pipeline
        log.exception("alert %r could not be handled", subject)
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    log.warning("ALERT %s: %s (%s)", subject, body, outcome or "no channel configured")
    with contextlib.suppress(Exception):
        _record(subject, outcome, spool_dir().parent)
    return outcome


def _send_alert(subject: str, body: str) -> dict[str, str]:
    folder = spool_dir()
    channels = [c for c, (conn_id, _) in _SENDERS.items() if _connection(conn_id) is not None]
    if not channels:
        flush_spool(folder)
        return {}
    mine: dict[str, Path] = {}
    outcome: dict[str, str] = {}
    for channel in channels:
        try:
            mine[channel] = _spool(channel, subject, body, folder)
        except OSError as exc:  # unwritable spool: send directly, say so
            log.error("alert spool %s is not writable (%s): sending %s without a spool "
                      "(not retried later if it fails)", folder, exc, channel)
            error = _deliver(channel, subject, body,
                             deadline=time.monotonic() + ROUND_BUDGET_SECONDS)
            outcome[channel] = "sent" if error is None else f"lost: {error}"
    if not mine:
        return outcome
    with _spool_lock(folder) as held:
        if not held:
            log.warning("another process is sending from %s: %s left spooled for it",
                        folder, sorted(mine))
            return {**outcome, **{c: "spooled: another process is sending" for c in mine}}
        result = _flush(folder, set(mine.values()), time.monotonic() + ROUND_BUDGET_SECONDS)
    for channel, path in mine.items():
        state = result["outcome"].get(path, "sent")
        if state == "sent":
            outcome[channel] = "sent"
        else:
            log.error("%s alert failed after %d attempts (%s); spooled to %s for the next "
                      "alert or `flush_spool`", channel, ATTEMPTS, state, path)
            outcome[channel] = f"spooled: {state}"
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
