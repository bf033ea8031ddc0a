"""The feature store: host windows, point-in-time truth, apply/materialize from the DAG and by
hand, reruns and backfills, the monitoring read path. Real Feast on throwaway SQLite/DuckDB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.config import PROJECT_ROOT
from flowguard.features import (
    FEATURE_SERVICE,
    FLOWS_ONLY_SERVICE,
    HOST_TTL,
    HOST_VIEW,
    TrainingSetIncomplete,
    apply_definitions,
    entity_rows,
    get_store,
    historical_features,
    host_activity,
    materialize,
    materialized_until,
    monitoring_frames,
    service_for,
    write_host_activity,
    write_partition,
    write_valid_flows,
)
from flowguard.ingest import read_day
from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES
from tests.conftest import HANG_GUARD_S

REPO = PROJECT_ROOT / "feature_repo"
MON, TUE = date(2017, 7, 3), date(2017, 7, 4)
INGESTED = datetime(2017, 7, 8, tzinfo=UTC)


def _flows(stamps: list[str], hosts: list[str], ports: list[int] | None = None) -> pd.DataFrame:
    """Tiny valid flows: every statistic 1.0 except the ones the host windows read."""
    n = len(stamps)
    frame = pd.DataFrame({c: np.ones(n) for c in FEATURE_COLUMNS})
    frame["flow_uid"] = np.arange(n, dtype="int64") + 1
    frame["event_timestamp"] = pd.to_datetime(stamps, utc=True, format="ISO8601")
    frame["src_ip"] = hosts
    frame["label"] = "BENIGN"
    frame["dst_port"] = ports or [80] * n
    frame["syn_flag_cnt"], frame["ack_flag_cnt"], frame["rst_flag_cnt"] = 1.0, 0.0, 0.0
    return frame


def _ingest(home: Path, week: Path, days: list[date]) -> None:
    for day in days:
        frame = read_day(week, day)
        frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                      & frame["flow_byts_s"].notna()]
        write_valid_flows(frame, home / "lake" / "flows", day, INGESTED)
        write_host_activity(frame, home / "lake" / "hosts", day, INGESTED,
                            flows_root=home / "lake" / "flows")


def _online(store, hosts: list[str]) -> pd.DataFrame:
    out = store.get_online_features(features=[f"{HOST_VIEW}:{n}" for n in HOST_FEATURES],
                                    entity_rows=[{"src_ip": h} for h in hosts]).to_dict()
    return pd.DataFrame(out).set_index("src_ip").sort_index()


# ---------------------------------------------------------------- host windows (no Feast)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_host_windows_equal_a_brute_force_trailing_hour(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    start = pd.Timestamp("2017-07-03 10:00", tz="UTC")
    flows = _flows([str(start + pd.Timedelta(seconds=int(s))) for s in rng.integers(0, 10800, n)],
                   list(rng.choice(["a", "b", "c"], n)), list(rng.integers(1, 40, n)))
    flows["ack_flag_cnt"] = rng.integers(0, 2, n).astype(float)
    flows["rst_flag_cnt"] = rng.integers(0, 2, n).astype(float)
    flows["flow_duration"] = rng.random(n) * 1e6
    flows["tot_bwd_pkts"] = rng.integers(0, 9, n).astype(float)
    hosts = host_activity(flows)
    assert (hosts["event_timestamp"].dt.minute % 5 == 0).all()
    for _, row in hosts.iterrows():
        end = row["event_timestamp"]
        window = flows[(flows["src_ip"] == row["src_ip"]) & (flows["event_timestamp"] < end)
                       & (flows["event_timestamp"] >= end - pd.Timedelta(hours=1))]
        assert len(window) == row["host_flows_1h"] > 0
        assert window["dst_port"].nunique() == row["host_distinct_dst_ports_1h"]
        assert window["ack_flag_cnt"].eq(0).mean() == pytest.approx(row["host_syn_only_share_1h"])
        assert window["rst_flag_cnt"].gt(0).mean() == pytest.approx(row["host_rst_share_1h"])
        assert (window["tot_fwd_pkts"] + window["tot_bwd_pkts"]).sum() == row["host_packets_1h"]
        assert window["flow_duration"].mean() == pytest.approx(row["host_mean_duration_1h"])
    # every (host, 5-minute stamp) with a flow in the trailing hour has its row
    expected = sum(len({(t.floor("5min") + pd.Timedelta(minutes=5 * k))
                        for t in flows.loc[flows["src_ip"] == h, "event_timestamp"]
                        for k in range(1, 13)}) for h in flows["src_ip"].unique())
    assert len(hosts) == expected


def test_a_window_across_midnight_is_complete_whichever_day_writes_it(tmp_path: Path) -> None:
    monday = _flows(["2017-07-03 23:30", "2017-07-03 23:58"], ["a", "a"], [22, 23])
    tuesday = _flows(["2017-07-04 00:02"], ["a"], [24])
    write_valid_flows(monday, tmp_path / "flows", MON, INGESTED)
    write_host_activity(monday, tmp_path / "hosts", MON, INGESTED, flows_root=tmp_path / "flows")
    path = write_host_activity(tuesday, tmp_path / "hosts", TUE, INGESTED,
                               flows_root=tmp_path / "flows")
    windows = pd.read_parquet(path).set_index("event_timestamp")
    assert windows.index.min() > pd.Timestamp("2017-07-04", tz="UTC")  # only Tuesday's stamps
    at_0005 = windows.loc[pd.Timestamp("2017-07-04 00:05", tz="UTC")]
    assert at_0005["host_flows_1h"] == 3 and at_0005["host_distinct_dst_ports_1h"] == 3
    monday_rows = pd.read_parquet(tmp_path / "hosts" / "date=2017-07-03" / "part-0.parquet")
    assert monday_rows["event_timestamp"].max() == pd.Timestamp("2017-07-04 00:00", tz="UTC")


# ---------------------------------------------------------------- point in time (real Feast)


@pytest.mark.slow
def test_point_in_time_never_joins_a_future_window_nor_one_past_its_ttl(home: Path) -> None:
    """Windows stamped 10:00, 10:05, 10:10 carry 1, 2, 3 flows (values written directly,
    so the join alone decides what each flow sees)."""
    windows = pd.DataFrame({
        "src_ip": pd.array(["a", "a", "a"], dtype="string"),
        "event_timestamp": pd.to_datetime(["2017-07-03 10:00", "2017-07-03 10:05",
                                           "2017-07-03 10:10"], utc=True),
    })
    for name in [*HOST_FEATURES, "host_packets_1h"]:
        windows[name] = [1.0, 2.0, 3.0]
    windows["ingested_at"] = pd.Timestamp(INGESTED)
    write_partition(windows, home / "lake" / "hosts", MON)
    # flow time -> the window it must see (None: nothing, the latest is past the ttl)
    cases = {"2017-07-03 09:59:59": None, "2017-07-03 10:04:59": 1.0,
             "2017-07-03 10:07:00": 2.0, "2017-07-03 10:09:59.999": 2.0,
             "2017-07-03 10:10:00": 3.0, "2017-07-03 10:14:59": 3.0,
             "2017-07-03 10:15:00": None, "2017-07-03 11:00:00": None}
    flows = _flows(list(cases), ["a"] * len(cases))
    write_valid_flows(flows, home / "lake" / "flows", MON, INGESTED)
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    got = historical_features(store, entity_rows(home / "lake" / "flows", [MON]))
    seen = dict(zip(got["event_timestamp"], got["host_flows_1h"], strict=True))
    for stamp, expected in cases.items():
        value = seen[pd.Timestamp(stamp, tz="UTC")]
        assert (pd.isna(value) if expected is None else value == expected), (stamp, value)
    assert HOST_TTL < timedelta(minutes=5)

    # the flow's own statistics are point in time too: asking before its event time finds
    # nothing, and the training set refuses to lose those rows silently
    early = got.head(3)[["flow_uid", "event_timestamp", "src_ip"]].assign(
        event_timestamp=lambda f: f["event_timestamp"] - pd.Timedelta(seconds=1))
    with pytest.raises(TrainingSetIncomplete, match="3 of 3"):
        historical_features(store, early)


@pytest.mark.slow
def test_training_set_keeps_every_row_in_order_and_serves_hosts_online(
        home: Path, synthetic_week: Path) -> None:
    _ingest(home, synthetic_week, [MON, TUE])
    views = ["flow_stats", HOST_VIEW]
    assert sorted(apply_definitions(REPO, home)) == views
    store = get_store(REPO, home)
    materialize(store, datetime(2017, 7, 3, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))

    entities = entity_rows(home / "lake" / "flows", [MON, TUE])
    assert service_for(entities) == FEATURE_SERVICE
    training = historical_features(store, entities)
    assert len(training) == len(entities)
    assert training["flow_uid"].tolist() == entities["flow_uid"].tolist()
    source = pd.read_parquet(home / "lake" / "flows" / "date=2017-07-03" / "part-0.parquet")
    joined = training.set_index("flow_uid").loc[source["flow_uid"]]
    np.testing.assert_array_equal(joined["flow_duration"], source["flow_duration"])
    assert list(training.columns[-len(HOST_FEATURES):]) == HOST_FEATURES  # v1: model's inputs
    assert "host_packets_1h" not in training  # served by the view, not part of v1

    # each flow saw the window stamped at the last 5-minute mark at or before it, or nothing
    hosts = pd.concat(pd.read_parquet(p) for p in (home / "lake" / "hosts").rglob("*.parquet"))
    hosts = hosts.set_index(["src_ip", "event_timestamp"])["host_flows_1h"]
    sample = training[training["src_ip"] != "unknown"].sample(200, random_state=0)
    keys = list(zip(sample["src_ip"], sample["event_timestamp"].dt.floor("5min"), strict=True))
    expected = hosts.reindex(keys).to_numpy()
    np.testing.assert_array_equal(sample["host_flows_1h"].to_numpy(), expected)
    assert np.isfinite(expected).mean() > 0.5

    # online: each host's latest window up to the interval's end
    latest = hosts.reset_index()
    latest = latest[latest["event_timestamp"] <= pd.Timestamp("2017-07-05", tz="UTC")]
    latest = latest.sort_values("event_timestamp").groupby("src_ip").tail(1).set_index("src_ip")
    online = _online(store, sorted(latest.index))
    np.testing.assert_array_equal(online["host_flows_1h"], latest.sort_index()["host_flows_1h"])


@pytest.mark.slow
def test_training_set_built_in_chunks_is_the_one_query_frame_and_digest(
        home: Path, synthetic_week: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: the training-set task retrieves and writes bounded chunks of entity rows.
    Forced to a tiny chunk, it writes the frame one point-in-time query returns (rows,
    values, dtypes, order), with its digest and class counts; a window below the chunk size
    is still one query; a chunk that loses rows fails the build and leaves no file."""
    import flowguard.features as features
    from flowguard.features import write_training_set
    from flowguard.lineage import frame_digest
    from flowguard.pipeline import build_training_set

    _ingest(home, synthetic_week, [MON, TUE])
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    entities = entity_rows(home / "lake" / "flows", [MON, TUE])
    whole = historical_features(store, entities)
    queries: list[int] = []

    def counted(store, rows: pd.DataFrame, service: str | None = None) -> pd.DataFrame:
        queries.append(len(rows))
        return historical_features(store, rows, service)

    monkeypatch.setattr(features, "historical_features", counted)
    one = build_training_set("2017-07-05", 2, "one-query")
    assert queries == [len(entities)]  # below the default chunk size: one query, as before
    chunk = len(entities) // 4 + 1  # four queries, the last one shorter
    monkeypatch.setenv("FLOWGUARD_TRAINING_CHUNK_ROWS", str(chunk))
    queries.clear()
    chunked = build_training_set("2017-07-05", 2, "chunked")
    assert queries == [chunk] * 3 + [len(entities) - 3 * chunk]
    days = entities["event_timestamp"].dt.date.to_numpy()
    assert any(len(set(days[i:i + chunk])) == 2 for i in range(0, len(days), chunk)), \
        "no chunk straddles midnight"

    for built in (one, chunked):
        frame = pd.read_parquet(built["path"])
        pd.testing.assert_frame_equal(frame, whole, check_exact=True)
        assert built["rows"] == len(whole)
        assert built["digest"] == frame_digest(whole) == frame_digest(frame)
        assert built["classes"] == whole["label"].value_counts().to_dict()
    assert chunked["days"] == one["days"] == [MON.isoformat(), TUE.isoformat()]

    # rows of the second chunk asked for before their own flow's statistics existed
    early = entities.copy()
    early.loc[chunk:chunk + 2, "event_timestamp"] -= pd.Timedelta(seconds=1)
    path = home / "lost.parquet"
    with pytest.raises(TrainingSetIncomplete, match=rf"3 of {chunk} .*entity rows {chunk}-"):
        write_training_set(store, early, None, path, chunk)
    assert not path.exists() and not list(home.glob(".lost.parquet*"))


@pytest.mark.slow
def test_flows_only_service_for_data_without_addresses(home: Path) -> None:
    flows = _flows(["2017-07-03 10:00", "2017-07-03 10:01"], [None, None])
    write_valid_flows(flows, home / "lake" / "flows", MON, INGESTED)
    assert host_activity(flows.drop(columns="src_ip")).empty  # layout without the column
    write_host_activity(flows, home / "lake" / "hosts", MON, INGESTED)  # no addresses: empty
    apply_definitions(REPO, home)
    entities = entity_rows(home / "lake" / "flows", [MON])
    assert service_for(entities) == FLOWS_ONLY_SERVICE
    frame = historical_features(get_store(REPO, home), entities, FLOWS_ONLY_SERVICE)
    assert len(frame) == 2 and not set(HOST_FEATURES) & set(frame.columns)
    assert frame[FEATURE_COLUMNS].notna().all().all()


# ---------------------------------------------------------------- apply, materialize, reruns


@pytest.mark.slow
def test_apply_keeps_materialization_state_and_reruns_give_the_same_online_values(
        home: Path, synthetic_week: Path) -> None:
    _ingest(home, synthetic_week, [MON, TUE])
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    day = timedelta(days=1)
    mon, tue = (datetime.combine(d, datetime.min.time(), UTC) for d in (MON, TUE))
    overlap = timedelta(minutes=15)
    assert materialize(store, mon, tue, overlap) == (mon - overlap, tue)
    materialize(store, tue, tue + day, overlap)
    hosts = sorted(pd.read_parquet(home / "lake" / "flows")["src_ip"].dropna().unique())
    after_tuesday = _online(store, hosts)
    assert after_tuesday["host_flows_1h"].notna().all()

    # the DAG's feast apply, again: same objects, materialization state and values kept
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    assert materialized_until(store) == tue + day
    pd.testing.assert_frame_equal(_online(store, hosts), after_tuesday)

    # rerun (backfill) of Monday: the online store ends up exactly as before
    assert materialize(store, mon, tue, overlap) == (mon - overlap, tue + day)
    pd.testing.assert_frame_equal(_online(store, hosts), after_tuesday)
    # ...which is not a given: a plain materialize of Monday puts older values back
    store.materialize(start_date=mon, end_date=tue, feature_views=[HOST_VIEW])
    assert not _online(store, hosts).equals(after_tuesday)


@pytest.mark.slow
def test_feast_cli_apply_materialize_and_incremental_by_hand(home: Path,
                                                             synthetic_week: Path) -> None:
    """What the README tells a person to do, from feature_repo/, with the real CLI."""
    _ingest(home, synthetic_week, [MON, TUE])
    feast = str(Path(sys.executable).parent / "feast")
    env = {**os.environ, "FLOWGUARD_HOME": str(home), "FEAST_USAGE": "False"}
    (home / "feast").mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> str:
        out = subprocess.run([feast, *args], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=HANG_GUARD_S, check=False)
        assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-3000:]
        return out.stdout

    run("apply")
    run("materialize", "2017-07-03T00:00:00", "2017-07-04T00:00:00")
    store = get_store(REPO, home)
    assert materialized_until(store) == datetime(2017, 7, 4, tzinfo=UTC)
    apply_definitions(REPO, home)  # the DAG's apply after a hand-run one: state kept
    run("apply")  # and the CLI's after the DAG's
    run("materialize-incremental", "2017-07-05T00:00:00")
    store = get_store(REPO, home)
    intervals = store.get_feature_view(HOST_VIEW).materialization_intervals
    assert [(s.date(), e.date()) for s, e in intervals][-1] == (TUE, date(2017, 7, 5))
    hosts = sorted(pd.read_parquet(home / "lake" / "flows")["src_ip"].dropna().unique())
    incremental = _online(store, hosts)
    # same values as the DAG's path (materialize per interval) gives in a fresh home
    fresh = home.parent / "fresh"
    shutil.copytree(home / "lake", fresh / "lake")
    apply_definitions(REPO, fresh)
    dag_store = get_store(REPO, fresh)
    materialize(dag_store, datetime(2017, 7, 3, tzinfo=UTC), datetime(2017, 7, 4, tzinfo=UTC))
    materialize(dag_store, datetime(2017, 7, 4, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))
    pd.testing.assert_frame_equal(_online(dag_store, hosts), incremental)


# ---------------------------------------------------------------- monitoring read path


@pytest.mark.slow
def test_monitoring_reads_reference_and_window_through_the_training_service(
        home: Path, synthetic_week: Path) -> None:
    _ingest(home, synthetic_week, [MON, TUE])
    apply_definitions(REPO, home)
    store = get_store(REPO, home)
    training = historical_features(store, entity_rows(home / "lake" / "flows", [MON]))
    reference_artifact = training.sample(300, random_state=0)
    current_rows = entity_rows(home / "lake" / "flows", [TUE])
    reference, current = monitoring_frames(store, reference_artifact, current_rows)
    cols = ["flow_uid", *FEATURE_COLUMNS, *HOST_FEATURES]
    pd.testing.assert_frame_equal(reference[cols].reset_index(drop=True),
                                  reference_artifact[cols].reset_index(drop=True))
    assert list(current.columns) == list(reference.columns)
    assert current["flow_uid"].tolist() == current_rows["flow_uid"].tolist()
