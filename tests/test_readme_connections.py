"""The README's alert connections work as written: the AIRFLOW_CONN_* examples resolve to the
connection types the alert hooks read, and its `airflow connections add` commands store them
in a metadata database."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, PROJECT

README = (PROJECT / "README.md").read_text()
SECTION = README[README.index("## Alerts: Slack and email"):README.index("## Production profile")]


def test_env_examples_resolve_for_the_alert_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.sdk import BaseHook

    exports = dict(re.findall(r"^export (AIRFLOW_CONN_\w+)='(.+)'$", SECTION, re.M))
    assert set(exports) == {"AIRFLOW_CONN_FLOWGUARD_SLACK", "AIRFLOW_CONN_FLOWGUARD_SMTP"}
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    slack = BaseHook.get_connection("flowguard_slack")
    assert slack.conn_type == "slackwebhook"
    params = SlackWebhookHook(slack_webhook_conn_id="flowguard_slack")._get_conn_params()
    assert params["url"] == "https://hooks.slack.com/services/T000/B000/XXXX"
    smtp = BaseHook.get_connection("flowguard_smtp")
    assert smtp.conn_type == "smtp" and smtp.port == 587
    assert smtp.extra_dejson["to"] == "soc@example.org"


@pytest.mark.slow
def test_connections_add_commands_store_both(tmp_path: Path) -> None:
    block = SECTION[SECTION.index(".venv/bin/airflow connections add flowguard_slack"):]
    block = block[:block.index("```")].replace("\\\n", " ")
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    airflow = str(Path(sys.executable).parent / "airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg")}
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=HANG_GUARD_S)
    for command in commands:
        assert command[0] == ".venv/bin/airflow"
        subprocess.run([airflow, *command[1:]], env=env, check=True, capture_output=True,
                       timeout=HANG_GUARD_S)
    for conn_id, kind in (("flowguard_slack", "slackwebhook"), ("flowguard_smtp", "smtp")):
        out = subprocess.run([airflow, "connections", "get", conn_id, "-o", "json"], env=env,
                             check=True, capture_output=True, text=True, timeout=HANG_GUARD_S)
        stored = json.loads(out.stdout)
        stored = stored[0] if isinstance(stored, list) else stored
        assert stored["conn_type"] == kind, stored
