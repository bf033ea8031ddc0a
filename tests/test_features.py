from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from flowguard.config import PROJECT_ROOT
from flowguard.features import (
    TrainingSetIncomplete,
    apply_definitions,
    entity_rows,
    get_store,
    historical_features,
    host_activity,
    materialize,
    write_host_activity,
    write_valid_flows,
)
from flowguard.ingest import read_day

pytestmark = pytest.mark.slow
REPO = PROJECT_ROOT / "feature_repo"


def test_apply_materialize_and_point_in_time_retrieval(home: Path, synthetic_week: Path) -> None:
    lake = home / "lake" / "flows"
    days = [date(2017, 7, 3), date(2017, 7, 4)]
    for day in days:
        frame = read_day(synthetic_week, day)
        frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                      & frame["flow_byts_s"].notna()]
        write_valid_flows(frame, lake, day, datetime(2017, 7, 8, tzinfo=UTC))
        write_host_activity(frame, home / "lake" / "hosts", day, datetime(2017, 7, 8, tzinfo=UTC))
    views = ["flow_stats", "src_host_activity_1h"]
    assert sorted(apply_definitions(REPO, home)) == views
    assert sorted(apply_definitions(REPO, home)) == views  # idempotent
    store = get_store(REPO, home)
    materialize(store, datetime(2017, 7, 3, tzinfo=UTC),
                datetime(2017, 7, 5, tzinfo=UTC))

    entities = entity_rows(lake, days)
    training = historical_features(store, entities)
    assert len(training) == len(entities)  # no row lost
    assert training["flow_uid"].tolist() == entities["flow_uid"].tolist()  # input order kept
    source = pd.read_parquet(lake / "date=2017-07-03" / "part-0.parquet").set_index("flow_uid")
    joined = training.set_index("flow_uid").loc[source.index]
    pd.testing.assert_series_equal(joined["flow_duration"], source["flow_duration"],
                                   check_names=False)

    # point in time: asking for a flow *before* its event time finds nothing -> loud failure
    early = entities.head(3).assign(
        event_timestamp=entities.head(3)["event_timestamp"] - pd.Timedelta(hours=1))
    with pytest.raises(TrainingSetIncomplete, match="3 of 3"):
        historical_features(store, early)

    # host features: the completed hour before the flow, never the flow's own hour
    hosts = pd.read_parquet(home / "lake" / "hosts" / "date=2017-07-03" / "part-0.parquet")
    row = training[training["src_ip"] != "unknown"].iloc[0]
    own_hour_end = row["event_timestamp"].floor("1h") + pd.Timedelta(hours=1)
    previous = hosts[(hosts["src_ip"] == row["src_ip"])
                     & (hosts["event_timestamp"] == own_hour_end - pd.Timedelta(hours=1))]
    if len(previous):
        assert row["host_flows_1h"] == previous["host_flows_1h"].iloc[0]
    else:  # idle in the previous hour: older windows are past the 1 h ttl
        assert pd.isna(row["host_flows_1h"])

    # online: host activity is served; per-flow statistics are offline only
    all_hosts = pd.concat(pd.read_parquet(p) for p in (home / "lake" / "hosts").rglob("*.parquet"))
    latest = all_hosts.sort_values("event_timestamp").groupby("src_ip").tail(1).iloc[0]
    online = store.get_online_features(
        features=["src_host_activity_1h:host_flows_1h"],
        entity_rows=[{"src_ip": latest["src_ip"]}]).to_dict()
    assert online["host_flows_1h"][0] == pytest.approx(latest["host_flows_1h"])


def test_host_activity_is_stamped_at_the_end_of_its_hour() -> None:
    stamps = pd.to_datetime(["2017-07-03 10:05", "2017-07-03 10:55", "2017-07-03 11:10"], utc=True)
    flows = pd.DataFrame({
        "src_ip": ["a", "a", "a"], "event_timestamp": stamps, "dst_port": [22, 80, 80],
        "syn_flag_cnt": [1, 0, 0], "ack_flag_cnt": [0, 1, 1], "rst_flag_cnt": [0, 0, 1],
        "totlen_fwd_pkts": [10.0, 20.0, 30.0], "totlen_bwd_pkts": [0.0, 5.0, 5.0],
        "flow_duration": [100.0, 300.0, 50.0]})
    hosts = host_activity(flows)
    first = hosts.iloc[0]
    assert first["event_timestamp"] == pd.Timestamp("2017-07-03 11:00", tz="UTC")
    assert first["host_flows_1h"] == 2 and first["host_distinct_dst_ports_1h"] == 2
    assert first["host_syn_only_share_1h"] == 0.5 and first["host_bytes_1h"] == 35
    assert hosts.iloc[1]["event_timestamp"] == pd.Timestamp("2017-07-03 12:00", tz="UTC")
