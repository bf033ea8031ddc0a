"""The gate promotes only a challenger that is better somewhere (never a tie), a retrain for
an early day (its window ends where the first champion's did) trains and is judged instead of
crashing on an empty holdout, and `rollback` takes a version and is idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flowguard.registry import CHAMPION, PREVIOUS, GatePolicy, compare, frozen_holdout, rollback_to
from tests.conftest import HANG_GUARD_S
from tests.test_training_registry import _alias, _frame, _gate, _train

pytestmark = pytest.mark.slow


def test_compare_marks_a_tie_as_not_improved() -> None:
    same = {"macro_f1": 0.9599, "recall.A": 1.0, "support.A": 50}
    check = compare(same, dict(same), 100, "newest window", GatePolicy())
    assert check["passed"] and not check["improved"]
    better = compare({**same, "macro_f1": 0.9612}, same, 100, "newest window", GatePolicy())
    assert better["improved"]


def test_retrain_on_the_champions_window_uses_the_frozen_holdout_and_a_tie_is_kept_out(
        home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _frame({"BENIGN": 400, "DoS Hulk": 150, "PortScan": 150})
    with caplog.at_level("INFO", logger="flowguard.training"):
        client, r1, v1 = _train(tmp_path, first, "t1")
    trials = [r.getMessage() for r in caplog.records if "tuning trial" in r.getMessage()]
    assert len(trials) == 2 and trials[0].startswith("tuning trial 0: valid macro-F1 "), trials
    assert _gate(client, v1, home, "").promoted
    frozen_run, frozen = frozen_holdout(client, "m")
    experiment = client.get_experiment(client.get_run(r1.run_id).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not GenAI

    # the monitor's retrain for Wednesday: as_of Thursday, the same Monday-Wednesday window,
    # so the frozen holdout already took every class's newest flows
    client, r2, v2 = _train(tmp_path, first, "t2", exclude=frozen["flow_uid"])
    params = client.get_run(r2.run_id).data.params
    assert params["holdout_source"].startswith("frozen holdout")
    assert int(params["rows_test"]) == len(frozen)
    assert r2.metrics["macro_f1"] > 0.9

    decision = _gate(client, v2, home, "")
    # same training rows and seed as v1: the same scores everywhere, a tie
    assert [c["improved"] for c in decision.checks] == [False, False], decision.reason
    assert not decision.promoted and "a tie does not replace it" in decision.reason
    assert _alias(client, CHAMPION) == v1


def test_rollback_to_a_version_and_again_changes_nothing(home: Path, tmp_path: Path) -> None:
    first = _frame({"BENIGN": 400, "DoS Hulk": 150, "PortScan": 150})
    client, _, v1 = _train(tmp_path, first, "t1")
    assert _gate(client, v1, home, "").promoted
    frozen = frozen_holdout(client, "m")[1]
    second = pd.concat([first, _frame({"Bot": 150}, seed=1, uid0=10_000)], ignore_index=True)
    client, _, v2 = _train(tmp_path, second, "t2", exclude=frozen["flow_uid"])
    assert _gate(client, v2, home, "").promoted
    locks = home / "locks"

    done = rollback_to(client, "m", lock_dir=locks)
    assert done["changed"] and done["champion"] == v1 and done["previous"] == v2
    again = rollback_to(client, "m", lock_dir=locks)  # used to swap v2 back in
    assert not again["changed"] and again["champion"] == v1
    assert f"flowguard rollback {v2}" in again["message"]
    assert _alias(client, CHAMPION) == v1 and _alias(client, PREVIOUS) == v2
    assert client.get_model_version("m", v2).tags["rolled_back"].startswith("demoted to v")

    undo = rollback_to(client, "m", v2, lock_dir=locks)
    assert undo["changed"] and _alias(client, CHAMPION) == v2 and _alias(client, PREVIOUS) == v1
    assert not rollback_to(client, "m", v2, lock_dir=locks)["changed"]
    with pytest.raises(LookupError, match="no version 99"):
        rollback_to(client, "m", "99", lock_dir=locks)


def test_cli_rollback_names_a_missing_version(home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "flowguard.cli", "rollback", "3"],
                         capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "no registered model 'flow-classifier'" in json.loads(out.stderr.splitlines()[-1])["error"]
