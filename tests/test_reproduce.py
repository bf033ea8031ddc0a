"""Data versions (DVC) and `flowguard reproduce`: a registered model retrained on the exact
data it was trained on, after the lake has moved on, gives the same training set (digest)
and the same macro-F1 (within 0.005). Real DVC, real Feast, real MLflow, real GX ingest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flowguard.config import PROJECT_ROOT

TUE, WED, THU = date(2017, 7, 4), date(2017, 7, 5), date(2017, 7, 6)


def _interval(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def test_snapshot_and_checkout_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    from flowguard.dataversion import checkout, snapshot

    home = tmp_path / "home"
    part = home / "lake" / "flows" / "date=2017-07-04" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(part)
    (home / "landing").mkdir()
    (home / "landing" / "Tuesday.csv").write_text("x\n1\n")
    first = snapshot(home)
    assert set(first["outs"]) == {"lake", "landing"}
    assert first["remote"] == str(home.resolve() / "dvc-remote")
    pd.DataFrame({"a": [3]}).to_parquet(part)  # the lake moves on
    second = snapshot(home)
    assert second["outs"]["lake"] != first["outs"]["lake"]
    assert second["outs"]["landing"] == first["outs"]["landing"]
    restored = checkout(first, tmp_path / "scratch")
    back = restored["lake"] / "flows" / "date=2017-07-04" / "part-0.parquet"
    assert pd.read_parquet(back)["a"].tolist() == [1, 2]
    assert (restored["landing"] / "Tuesday.csv").read_text() == "x\n1\n"
    from flowguard.dataversion import DataVersionError

    with pytest.raises(DataVersionError, match="exists: check out into an empty folder"):
        checkout(first, tmp_path / "scratch")


def test_record_follows_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.dataversion import DataVersionError, record

    monkeypatch.setenv("FLOWGUARD_DVC", "off")
    assert record(tmp_path) == {"skipped": "FLOWGUARD_DVC=off"}
    monkeypatch.setenv("FLOWGUARD_DVC", "auto")  # nothing to version: said, not raised
    assert "nothing to version" in record(tmp_path / "empty")["skipped"]
    monkeypatch.setenv("FLOWGUARD_DVC", "on")
    with pytest.raises(DataVersionError, match="nothing to version"):
        record(tmp_path / "empty")
    monkeypatch.setenv("FLOWGUARD_DVC", "sometimes")
    with pytest.raises(DataVersionError, match="use auto, on or off"):
        record(tmp_path)


@pytest.mark.slow
def test_a_registered_model_is_reproduced_from_its_data_version(
        home: Path, synthetic_week: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.pipeline import (
        apply_feature_repo,
        build_training_set,
        promote_if_better,
        train_model,
        validate_interval,
    )
    from flowguard.reproduce import reproduce

    monkeypatch.setenv("FLOWGUARD_DVC", "on")
    shutil.copytree(synthetic_week, home / "landing")  # landing inside the home: versioned too
    ingested = [validate_interval(*_interval(day), f"run-{day}") for day in (TUE, WED)]
    assert all(set(r["data_version"]["outs"]) == {"lake", "quarantine", "landing"}
               for r in ingested)
    assert ingested[0]["data_version"]["outs"]["lake"] != ingested[1]["data_version"]["outs"]["lake"]
    apply_feature_repo()
    built = build_training_set("2017-07-06", 2, "repro")
    lineage = {"dag_run_id": "repro", "trigger_reason": "test",
               "training_days": ",".join(built["days"]), "training_set_digest": built["digest"],
               "data_version": built["data_version"]}
    trained = train_model(built["path"], lineage, {"budget_seconds": 20, "max_trials": 3})
    assert promote_if_better(trained["version"])["promoted"]
    # The lake moves on after training: Thursday arrives, Wednesday is re-ingested.
    validate_interval(*_interval(THU), f"run-{THU}")
    validate_interval(*_interval(WED), "run-rerun")
    result = reproduce("flow-classifier", trained["version"])
    assert result["training_set"]["identical"], result["training_set"]
    assert result["training_set"]["rows"] == built["rows"]
    assert result["data_version"] == built["data_version"]["outs"]
    assert abs(result["metrics"]["macro_f1"]["reproduced"] - trained["macro_f1"]) <= 0.005
    assert result["reproduced"] and result["home"] is None

    # the command, as a user runs it: the comparison printed, exit 0
    done = subprocess.run([sys.executable, "-m", "flowguard.cli", "reproduce", "flow-classifier",
                           str(trained["version"]), "--json"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.lstrip().startswith("{"), done.stdout[:2000]
    printed = json.loads(done.stdout)
    assert printed["reproduced"] and printed["training_set"]["identical"]

    # a version trained without a data version: exit 2 with the reason, no traceback
    monkeypatch.setenv("FLOWGUARD_DVC", "off")
    unversioned = build_training_set("2017-07-06", 2, "repro-off")
    assert unversioned["data_version"] == {"skipped": "FLOWGUARD_DVC=off"}
    second = train_model(unversioned["path"], {"dag_run_id": "repro-off",
                                               "training_days": ",".join(unversioned["days"]),
                                               "data_version": unversioned["data_version"]},
                         {"budget_seconds": 0, "max_trials": 0})
    done = subprocess.run([sys.executable, "-m", "flowguard.cli", "reproduce", "flow-classifier",
                           str(second["version"])], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 2
    assert "no recorded data version (FLOWGUARD_DVC=off)" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "flowguard.cli", "reproduce", "flow-classifier",
                           "99"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 2 and "no registered version flow-classifier v99" in done.stderr
