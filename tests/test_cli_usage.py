"""The command line a person meets first: complete help, --version, clear errors (no
traceback) for a missing file or bad JSON, and bad input refused before the heavy imports."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowguard.cli import build_parser, read_flow_records
from tests.conftest import HANG_GUARD_S, PROJECT

HEAVY = ("mlflow", "feast", "xgboost", "great_expectations", "sklearn")


def _cli(*args: str, stdin: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowguard.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=HANG_GUARD_S, check=False,
                          env={**os.environ, **(env or {})})


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_explains_every_command_and_option() -> None:
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"demo", "generate", "validate", "rollback", "score", "serve", "reproduce", "feast",
                             "airflow", "backtest", "drift"}
    text = _cli("--help").stdout
    assert all(f"    {name} " in text for name in commands), text
    assert "``" not in text and ":func:" not in text
    for name, sub in commands.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"flowguard {name} {action.dest}: no help text"
        assert "``" not in sub.format_help(), name


def test_version() -> None:
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == "flowguard 0.1.0"


def _score_without_heavy_imports(path: str) -> tuple[int, dict, list[str]]:
    code = ("import io, json, sys, contextlib; from flowguard.cli import main\n"
            "err = io.StringIO()\n"
            "with contextlib.redirect_stderr(err): rc = main(['score', sys.argv[1]])\n"
            f"print(json.dumps([rc, err.getvalue(), [m for m in {HEAVY!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         timeout=HANG_GUARD_S, check=True)
    rc, err, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, json.loads(err.strip().splitlines()[-1]), heavy


def test_score_refuses_bad_input_fast_and_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    rc, err, heavy = _score_without_heavy_imports(str(missing))
    assert rc == 2 and "no such file" in err["error"] and str(missing) in err["error"]
    assert heavy == []  # failed before MLflow, Feast and xgboost were imported

    bad = tmp_path / "bad.json"
    bad.write_text('{"src_ip": "10.0.0.1",\n "flow_duration": }')
    rc, err, heavy = _score_without_heavy_imports(str(bad))
    assert rc == 2 and "not JSON" in err["error"] and "line 2" in err["error"] and heavy == []

    record = json.loads((PROJECT / "examples" / "flow.json").read_text())
    record["flow_duration"] = "fast"
    bad.write_text(json.dumps([record]))
    rc, err, heavy = _score_without_heavy_imports(str(bad))
    assert rc == 2 and heavy == []
    assert err["error"] == f"{bad} (record 1): field 'flow_duration' is not a number: 'fast'"

    out = _cli("score", str(missing))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_online_scoring_is_refused_under_another_dataset_profile(tmp_path: Path) -> None:
    """score and serve read CICFlowMeter records: under the UNSW-NB15 profile they would load
    that profile's champion and feed it CICIDS2017 features, so both refuse, naming the
    setting, before any heavy import."""
    env = {"FLOWGUARD_DATASET": "unsw_nb15"}
    out = _cli("score", str(PROJECT / "examples" / "flow.json"), env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    error = json.loads(out.stderr.strip().splitlines()[-1])["error"]
    assert "cicids2017 profile only" in error and "FLOWGUARD_DATASET=unsw_nb15" in error
    out = _cli("serve", "--port", "0", env=env)
    assert out.returncode == 2 and "FLOWGUARD_DATASET=unsw_nb15" in out.stderr


def test_sample_flow_is_a_valid_record() -> None:
    records, many = read_flow_records(str(PROJECT / "examples" / "flow.json"))
    assert len(records) == 1 and not many and records[0]["src_ip"]


@pytest.mark.parametrize("args", [("validate", "no/such/folder"),
                                  ("backtest", "--landing", "no/such/folder"),
                                  ("drift", "no/a.parquet", "no/b.parquet")])
def test_missing_paths_are_named_without_a_traceback(args: tuple[str, ...]) -> None:
    out = _cli(*args)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "no/" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
