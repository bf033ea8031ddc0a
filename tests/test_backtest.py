"""The backtest replays days through the real pipeline (Feast, MLflow, GX, drift runtime)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory, drift_python: Path) -> dict:
    from flowguard.backtest import run_backtest
    from flowguard.synth import generate_week

    root = tmp_path_factory.mktemp("backtest")
    # 39 calibration draws instead of 99 (the daily check's null is computed once per
    # champion, one classifier fit a draw: minutes per champion on a loaded machine)
    config = root / "monitoring.yaml"
    config.write_text((Path(__file__).resolve().parents[1] / "config" / "monitoring.yaml")
                      .read_text().replace("calibration_draws: 99", "calibration_draws: 39"))
    previous = os.environ.get("FLOWGUARD_MONITORING_CONFIG")
    os.environ["FLOWGUARD_MONITORING_CONFIG"] = str(config)
    landing = root / "landing"
    # Monday and Tuesday warm up; Wednesday (DoS family, Heartbleed: unseen) is replayed.
    generate_week(landing, scale=0.002, min_per_class=30, days=[0, 1, 2])
    try:
        return run_backtest(landing, root / "out", sample_size=300, n_permutations=50)
    finally:
        if previous is None:
            os.environ.pop("FLOWGUARD_MONITORING_CONFIG", None)
        else:
            os.environ["FLOWGUARD_MONITORING_CONFIG"] = previous


def test_every_policy_replays_the_day_and_acts_by_its_rule(backtest: dict) -> None:
    days = json.loads(Path(backtest["paths"]["json"]).read_text())["days"]
    by_policy = {d["policy"]: d for d in days}
    assert sorted(by_policy) == ["always", "drift", "static"]
    for record in days:
        assert record["day"] == "2017-07-05"
        assert 0.0 <= record["macro_f1"] <= 1.0
        assert record["serving_version"] == "1"  # the warm-up champion serves Wednesday
        # Wednesday's DoS flows belong to classes the Monday+Tuesday model never saw.
        assert record["unseen_share"] > 0.3
        assert record["macro_f1"] < record["macro_f1_known"]
        assert 0.0 <= record["mmd_p_value"] <= 1.0 and 0.0 <= record["classifier_p_value"] <= 1.0
    assert not by_policy["static"]["retrained"]
    assert by_policy["always"]["retrained"] and by_policy["always"]["new_version"] == "2"
    assert by_policy["drift"]["retrained"] == by_policy["drift"]["drift"]  # no cooldown yet
    # New attack families are real drift: the detectors must see them.
    assert by_policy["static"]["drift"] is True
    summary = backtest["summary"]
    assert summary["static"]["compute_seconds"] == 0.0
    assert summary["always"]["train_seconds"] > 0.0


def test_the_warm_up_model_never_saw_the_replayed_day(backtest: dict) -> None:
    import mlflow

    out = Path(backtest["paths"]["json"]).parent
    uri = f"sqlite:///{out / 'homes' / 'static' / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("backtest-static", "1")
    tags = client.get_run(version.run_id).data.tags
    assert tags["lineage.training_days"] == "2017-07-03,2017-07-04"


def test_outputs_are_written_and_logged(backtest: dict) -> None:
    import mlflow

    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow

    paths = backtest["paths"]
    table = pd.read_csv(paths["csv"])
    assert len(table) == 3 and {"policy", "macro_f1", "mmd_p_value", "retrained"} <= set(table)
    assert Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = Path(paths["html"]).read_text()
    assert "data:image/png;base64," in html and "always" in html
    _mlflow(get_settings())
    run = mlflow.get_run(paths["mlflow_run_id"])
    assert "drift.retrains" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"backtest.json", "backtest.csv", "backtest.png", "backtest.html"} <= artifacts


def test_shift_specs_are_parsed_or_rejected_with_the_spec_named() -> None:
    from datetime import date

    from flowguard.backtest import ShiftSpec
    from flowguard.shifts import ShiftError

    spec = ShiftSpec.parse("new_class:label=PortScan,share=0.05@2017-07-05")
    assert (spec.kind, spec.params, spec.start) == (
        "new_class", {"label": "PortScan", "share": 0.05}, date(2017, 7, 5))
    assert ShiftSpec.parse("class_mix:BENIGN=0.5@2017-07-05").params == {
        "weights": {"BENIGN": 0.5}}
    for bad in ("byte_scale:factor=2", "warp:factor=2@2017-07-05", "byte_scale:2@2017-07-05",
                "byte_scale@2017-13-01"):
        with pytest.raises(ShiftError, match="shift"):
            ShiftSpec.parse(bad)


def test_injected_shifts_change_the_day_and_later_days_and_their_host_windows(
        backtest: dict, tmp_path: Path) -> None:
    import shutil
    from datetime import date

    from flowguard.backtest import ShiftSpec, inject_shifts
    from flowguard.features import partition_path
    from flowguard.shifts import ShiftError

    source = Path(backtest["paths"]["json"]).parent / "homes" / "data"
    home = tmp_path / "data"
    shutil.copytree(source / "lake", home / "lake")
    days = [date(2017, 7, 3), date(2017, 7, 4), date(2017, 7, 5)]
    lake = home / "lake"

    def read(table: str, day: date) -> pd.DataFrame:
        return pd.read_parquet(partition_path(lake / table, day))

    before = {d: read("flows", d) for d in days}
    hosts_before = read("hosts", days[2])
    changes = inject_shifts(home, days, [
        ShiftSpec.parse("new_class:label=PortScan,share=0.1@2017-07-04"),
        ShiftSpec.parse("byte_scale:factor=3@2017-07-05")])
    assert [c["day"] for c in changes] == ["2017-07-04", "2017-07-05"]
    pd.testing.assert_frame_equal(read("flows", days[0]), before[days[0]])  # before the shift
    tuesday, wednesday = read("flows", days[1]), read("flows", days[2])
    for day, shifted in ((days[1], tuesday), (days[2], wednesday)):
        # PortScan (a Friday class, never in these days) is 10 % of each shifted day, borrowed
        # rows get identities of their own, every original row is still there.
        assert shifted["label"].eq("PortScan").mean() == pytest.approx(0.1, abs=0.01)
        assert shifted["flow_uid"].is_unique and (shifted["flow_uid"] < 0).sum() == (
            shifted["label"] == "PortScan").sum()
        assert set(before[day]["flow_uid"]) <= set(shifted["flow_uid"])
        assert shifted.dtypes.equals(before[day].dtypes)
        new = shifted[shifted["flow_uid"] < 0]
        assert new["event_timestamp"].dt.date.eq(day).all()
        assert new["source_file"].str.startswith("shift:new_class").all()
    assert not tuesday["flow_uid"].isin(wednesday["flow_uid"]).any()
    # Byte counters tripled on Wednesday only, and the host windows were rebuilt from them.
    kept = wednesday.set_index("flow_uid").loc[before[days[2]]["flow_uid"]]
    assert (kept["totlen_fwd_pkts"].to_numpy()
            == pytest.approx(3 * before[days[2]]["totlen_fwd_pkts"].to_numpy()))
    hosts_after = read("hosts", days[2])
    noon = pd.Timestamp("2017-07-05 12:00", tz="UTC")
    pair = (hosts_before[hosts_before["event_timestamp"] == noon]
            .merge(hosts_after, on=["src_ip", "event_timestamp"], suffixes=("_0", "_1")))
    only_old = pair[pair["host_flows_1h_0"] == pair["host_flows_1h_1"]]  # no PortScan added
    assert len(only_old) > 0
    assert only_old["host_bytes_1h_1"].to_numpy() == pytest.approx(
        3 * only_old["host_bytes_1h_0"].to_numpy())
    with pytest.raises(ShiftError, match="not replayed"):
        inject_shifts(home, days, [ShiftSpec.parse("byte_scale:factor=2@2017-07-09")])
