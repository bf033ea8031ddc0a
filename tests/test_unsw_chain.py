"""UNSW-NB15 through the same stages as CICIDS2017: a small synthetic week (raw parts built
from the committed real rows) ingested, applied and materialized in Feast, a model trained
through its own feature service and registered under its own name, and a day monitored."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from flowguard.synth_unsw import WEEK_START, generate_week, week_sources

MON, TUE, WED, THU = (WEEK_START + timedelta(days=i) for i in range(4))


def _interval(day: object) -> tuple[str, str]:
    start = pd.Timestamp(str(day), tz="UTC")
    return start.isoformat(), (start + pd.Timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def unsw_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unsw-landing")
    generate_week(out, scale=0.004, min_per_class=30, days=[0, 1, 2, 3], quirk_rate=0.002)
    return out


def test_week_is_raw_parts_from_real_rows_and_reproducible(unsw_week: Path, tmp_path: Path
                                                           ) -> None:
    from flowguard.ingest import read_landing_file, sniff

    monday = unsw_week / "Monday-UNSW-NB15.csv"
    assert sniff(monday)[0].name == "unsw_nb15_raw"
    again = generate_week(tmp_path, scale=0.004, min_per_class=30, days=[0], quirk_rate=0.002)
    assert again[0].read_bytes() == monday.read_bytes()
    frame = read_landing_file(monday, day=MON)
    assert frame["event_timestamp"].dt.date.eq(MON).all()
    assert frame["src_ip"].notna().all()
    meta = json.loads((unsw_week / "synthetic-week.json").read_text())
    assert meta["classes"] == week_sources()
    assert meta["classes"]["Generic"].startswith("left out")  # no real Generic row committed
    thursday = read_landing_file(unsw_week / "Thursday-UNSW-NB15.csv", day=THU)
    assert {"Analysis", "Shellcode"} <= set(thursday["label"].dropna())
    assert not {"Analysis", "Shellcode"} & set(frame["label"].dropna())


@pytest.mark.slow
def test_unsw_ingest_feast_train_and_monitor(home: Path, unsw_week: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.batch import BatchRejected
    from flowguard.config import get_settings
    from flowguard.pipeline import (
        _mlflow,
        apply_feature_repo,
        build_training_set,
        materialize_interval,
        prepare_monitoring,
        promote_if_better,
        train_model,
        validate_interval,
    )
    from flowguard.profiles import load
    from flowguard.registry import champion_version

    monkeypatch.setenv("FLOWGUARD_LANDING_DIR", str(unsw_week))
    # under the default (CICIDS2017) profile the files are refused with the setting to use
    with pytest.raises(BatchRejected, match="FLOWGUARD_DATASET=unsw_nb15"):
        validate_interval(*_interval(MON), "refused")
    assert not (home / "lake").exists()

    monkeypatch.setenv("FLOWGUARD_DATASET", "unsw_nb15")
    profile = load("unsw_nb15")
    valid_rows = 0
    for day in (MON, TUE, WED, THU):
        result = validate_interval(*_interval(day), f"ingest-{day}")
        assert result["rows_in"] == result["rows_valid"] + result["rows_quarantined"]
        assert result["rows_quarantined"] > 0  # the injected defects
        assert Path(result["valid_path"]).is_relative_to(home / "lake" / "unsw_nb15" / "flows")
        if day != THU:
            valid_rows += result["rows_valid"]
    quarantine = pd.read_parquet(home / "quarantine" / "unsw_nb15" / "flows")
    reasons = " ".join(quarantine["quarantine_reasons"].astype(str))
    assert "unparseable dur" in reasons and "exact duplicate" in reasons

    assert sorted(apply_feature_repo()) == sorted([profile.feast.flow_view,
                                                   profile.feast.host_view])
    materialize_interval(f"{MON}T00:00:00+00:00", f"{THU}T00:00:00+00:00")
    built = build_training_set(str(THU), 3, "train-unsw")
    assert built["rows"] == valid_rows
    assert built["feature_service"] == "unsw_nb15_classifier_v1"
    assert len(built["feature_service_features"]) == len(profile.model_features)
    frame = pd.read_parquet(built["path"])
    assert frame["proto_code"].notna().all() and frame["state_code"].notna().all()
    attacks = frame[frame["label"] != "Normal"]
    # source-host activity from the raw parts' addresses and times: the attackers' windows
    assert attacks["host_flows_1h"].notna().mean() > 0.5
    assert set(frame["label"]) == {"Normal", "Exploits", "DoS", "Reconnaissance", "Fuzzers"}

    lineage = {k: v for k, v in built.items() if k != "path"}
    trained = train_model(built["path"], {**lineage, "dag_run_id": "train-unsw",
                                          "trigger_reason": "test"},
                          tuning={"max_trials": 0, "n_estimators": 60})
    assert trained["macro_f1"] > 0.5  # synthetic data: a sanity floor, not a figure
    assert promote_if_better(trained["version"])["promoted"]
    client = _mlflow(get_settings())
    assert champion_version(client, "unsw-nb15-classifier") == trained["version"]
    assert champion_version(client, "flow-classifier") is None
    run = client.get_run(trained["run_id"])
    assert run.data.tags["lineage.dataset"] == "unsw_nb15"
    schema = json.loads(Path(client.download_artifacts(trained["run_id"],
                                                       "model_schema.json")).read_text())
    assert schema["features"] == profile.model_features

    prepared = prepare_monitoring(*_interval(THU), "monitor-unsw")
    # Thursday brings two attacks the champion never saw: the class mix moves, and the
    # labelled window's macro-F1 falls
    assert prepared["prediction_drift"]["p_value"] < 0.05
    assert prepared["performance_drift"]["is_drift"]
    assert {f["feature"] for f in prepared["top_features"]} <= set(profile.block_features)
    assert Path(prepared["ref_path"]).is_file() and Path(prepared["cur_path"]).is_file()


def test_the_demo_wipes_the_profiles_landing_folder_and_its_dvc_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.config import get_settings
    from flowguard.demo import state_paths
    from flowguard.profiles import active

    monkeypatch.setenv("FLOWGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("FLOWGUARD_DATASET", "unsw_nb15")
    settings = get_settings()
    dirs, files = state_paths(settings.home, settings.landing_dir)
    assert tmp_path / "landing-unsw_nb15" in dirs and tmp_path / "lake" in dirs
    assert tmp_path / "landing-unsw_nb15.dvc" in files
    assert active().synthetic_week().WEEK_START == WEEK_START


def test_set_files_land_too_with_times_spread_over_the_day(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The training/testing set files carry no addresses or times: landed under a weekday
    name they are ingested with their rows spread over 08:00-17:00 of the day, and no host
    windows (no address to aggregate by)."""
    import shutil

    from flowguard.config import PROJECT_ROOT
    from flowguard.features import entity_rows, service_for
    from flowguard.pipeline import validate_interval

    sample = PROJECT_ROOT / "data" / "real" / "unsw_nb15" / "jasonwvh__bao" / (
        "UNSW_NB15_testing-set.csv")
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(sample, landing / "Monday-UNSW_NB15_testing-set.csv")
    monkeypatch.setenv("FLOWGUARD_LANDING_DIR", str(landing))
    monkeypatch.setenv("FLOWGUARD_DATASET", "unsw_nb15")
    result = validate_interval(*_interval(MON), "set-file")
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (222, 222, 0)
    flows = pd.read_parquet(result["valid_path"])
    hours = flows["event_timestamp"].dt.hour
    assert hours.min() == 8 and hours.max() < 17
    assert flows["event_timestamp"].is_monotonic_increasing
    assert pd.read_parquet(result["hosts_path"]).empty
    assert service_for(entity_rows(home / "lake" / "unsw_nb15" / "flows", [MON])) == (
        "unsw_nb15_classifier_flows_only_v1")
