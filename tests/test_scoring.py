"""Online scoring on the embedded profile: host features from the SQLite online store (and
from Redis where one answers on 127.0.0.1:6379), the champion from a real MLflow registry,
and the CLI's JSON in and out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from flowguard.config import PROJECT_ROOT
from flowguard.schema import FEATURE_COLUMNS, TRAFFIC_LABELLING_HEADERS
from flowguard.scoring import InvalidFlow, canonical_flow, flow_time
from tests.chain import flow_record, last_scan_time

DAY = date(2017, 7, 7)
NOW = datetime(2017, 7, 8, tzinfo=UTC)
REPO = PROJECT_ROOT / "feature_repo"


def test_canonical_flow_accepts_published_headers_and_names_bad_fields() -> None:
    record = {f" {h}": 1 for h in TRAFFIC_LABELLING_HEADERS}
    assert set(FEATURE_COLUMNS) <= set(canonical_flow(record))
    with pytest.raises(InvalidFlow, match="lacks fields.*flow_duration"):
        canonical_flow({k: v for k, v in record.items() if k != " Flow Duration"})
    with pytest.raises(InvalidFlow, match="'flow_byts_s' is not finite"):
        canonical_flow({**record, " Flow Bytes/s": "Infinity"})


def test_flow_time_is_the_requests_or_now() -> None:
    assert flow_time({"event_timestamp": "2017-07-07T15:02:00"}) == pd.Timestamp(
        "2017-07-07 15:02", tz="UTC")
    assert flow_time({"event_timestamp": "2017-07-07T17:02:00+02:00"}).hour == 15
    assert flow_time({}, NOW) == pd.Timestamp(NOW)
    with pytest.raises(InvalidFlow, match="'event_timestamp' is not an ISO 8601"):
        flow_time({"event_timestamp": "yesterday-ish"})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, synthetic_week: Path
           ) -> Iterator[tuple[Path, pd.DataFrame, str]]:
    """One day ingested, applied, materialized (SQLite) up to the moment of the day's last
    PortScan flow (the online store then holds what serving would have had at that time), a
    champion trained and promoted."""
    from tests.chain import champion_from_one_day

    home = tmp_path_factory.mktemp("scoring") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        frame, version = champion_from_one_day(home, synthetic_week, DAY, NOW, "score-test")
        yield home, frame, version


def _score(home: Path, payload: object, repo: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWGUARD_HOME": str(home), "FLOWGUARD_FEATURE_REPO": str(repo)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "flowguard.cli", "score", "-"], env=env,
                          input=json.dumps(payload), capture_output=True, text=True, check=False)


def _expected_window(home: Path, flow: pd.Series) -> pd.Series:
    hosts = pd.concat(pd.read_parquet(p) for p in (home / "lake" / "hosts").rglob("*.parquet"))
    at = flow["event_timestamp"].floor("5min")
    return hosts[(hosts["src_ip"] == flow["src_ip"]) & (hosts["event_timestamp"] == at)].iloc[0]


@pytest.mark.slow
def test_score_cli_with_online_host_features_on_sqlite(served) -> None:
    home, frame, version = served
    record, flow = flow_record(frame, "PortScan")
    out = _score(home, record)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["model_version"] == version
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["label"] == "PortScan"
    # the host window of the flow's past, exactly as the training join would pick it
    window = _expected_window(home, flow)
    assert result["host_features_fresh"] is True
    assert result["host_window_end"] == window["event_timestamp"].isoformat()
    assert result["host_features"]["host_flows_1h"] == window["host_flows_1h"] > 0

    # the same flow scored a day later: the window is past its ttl, so it is not used
    later = {**record, "event_timestamp": (flow["event_timestamp"]
                                           + pd.Timedelta(days=1)).isoformat()}
    many = _score(home, [record, later, {**record, "src_ip": "10.9.9.9"}])
    assert many.returncode == 0, many.stderr[-2000:]
    now, stale, unknown = json.loads(many.stdout)
    assert now["probabilities"] == result["probabilities"]
    assert stale["host_features_fresh"] is False and stale["host_window_end"]
    assert set(stale["host_features"].values()) == {None}
    assert unknown["host_window_end"] is None and unknown["host_features_fresh"] is False

    bad = _score(home, {"src_ip": "x"})
    assert bad.returncode == 2 and "lacks fields" in bad.stderr


def _redis_or_skip() -> str:
    import redis

    url = "127.0.0.1:6379"
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"CI is set but Redis at {url} is unreachable: {exc}") from exc
        pytest.skip(f"Redis at {url} is unreachable ({exc}); set CI to make this a failure")
    return url


@pytest.mark.slow
def test_score_cli_with_online_host_features_on_redis(served, tmp_path: Path) -> None:
    """The same repo definitions with a Redis online store under a project of its own (the
    project name is part of every Redis key); the test removes its keys afterwards."""
    import redis

    from flowguard.features import apply_definitions, get_store, materialize

    url = _redis_or_skip()
    home, frame, version = served
    project = f"flowguard_test_{uuid.uuid4().hex[:10]}"
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\n"
        "registry:\n  registry_type: sql\n"
        f"  path: sqlite:///{tmp_path}/registry.db\n"
        f"online_store:\n  type: redis\n  connection_string: \"{url}\"\n"
        "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n")
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FLOWGUARD_HOME", str(home))
            apply_definitions(repo, home)
            store = get_store(repo, home)
            materialize(store, datetime(2017, 7, 7, tzinfo=UTC), last_scan_time(frame))
        assert any(True for _ in client.scan_iter(match=f"*{project}*", count=1000))
        record, flow = flow_record(frame, "PortScan")
        out = _score(home, record, repo)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout)
        window = _expected_window(home, flow)
        assert result["model_version"] == version and result["label"] == "PortScan"
        assert result["host_features"]["host_flows_1h"] == window["host_flows_1h"]
        assert result["host_window_end"] == window["event_timestamp"].isoformat()
        # the SQLite path gives the same answer
        sqlite = json.loads(_score(home, record).stdout)
        assert sqlite["probabilities"] == result["probabilities"]
    finally:
        keys = list(client.scan_iter(match=f"*{project}*", count=1000))
        if keys:
            client.delete(*keys)
        assert not any(True for _ in client.scan_iter(match=f"*{project}*", count=1000))
