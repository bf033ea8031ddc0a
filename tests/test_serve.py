"""``flowguard serve`` as a real server on a free port: a real champion in a real MLflow
registry, host features from the SQLite online store, the alias moved under it, bad
requests, and the served flows in the lake afterwards. No timing asserts (the latency
figures live in benchmarks/bench_serve.py); waits are generous hang guards only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowguard.config import PROJECT_ROOT
from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES
from flowguard.serve import ServedLog, served_flows, served_rows
from tests.chain import flow_record

DAY = date(2017, 7, 7)
NOW = datetime(2017, 7, 8, tzinfo=UTC)
REPO = PROJECT_ROOT / "feature_repo"
HANG_GUARD = 600  # seconds: only against a hang, never a performance limit


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: Any) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HANG_GUARD) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
        return json.loads(response.read())


def _wait_for(predicate, what: str, process: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}) while waiting for {what}:"
                                 f" {process.stderr.read()[-3000:]}")
        try:
            value = predicate()
            if value:
                return value
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"hang guard: no {what} after {HANG_GUARD} s")


def test_served_log_appends_by_day_and_the_monitor_reads_a_range(tmp_path: Path) -> None:
    rows = [{c: float(i) for c in FEATURE_COLUMNS + HOST_FEATURES} for i in range(3)]
    results = [{"event_timestamp": "2017-07-07T10:00:00+00:00", "flow_id": f"f{i}",
                "src_ip": "10.0.0.1", "model_version": "3", "label": "BENIGN",
                "probabilities": {"BENIGN": 0.9, "PortScan": 0.1},
                "host_features_fresh": i == 0} for i in range(3)]
    log = ServedLog(tmp_path / "served", max_rows=4)
    before, after = datetime(2026, 12, 1, 23, 59, tzinfo=UTC), datetime(2026, 12, 2, 0, 1,
                                                                         tzinfo=UTC)
    log.add(served_rows(results[:2], rows[:2], before))
    assert log.written == 0  # below max_rows: buffered
    log.add(served_rows(results[2:], rows[2:], after))
    log.add(served_rows(results[:1], rows[:1], after))  # the fourth row: flushed
    assert log.written == 4
    assert sorted(p.parent.name for p in (tmp_path / "served").rglob("*.parquet")) == [
        "date=2026-12-01", "date=2026-12-02"]
    everything = served_flows(tmp_path, "2026-12-01", "2026-12-03")
    assert len(everything) == 4 and everything["served_at"].is_monotonic_increasing
    assert everything["predicted_label"].tolist() == ["BENIGN"] * 4
    assert everything["confidence"].tolist() == [0.9] * 4
    second_day = served_flows(tmp_path, "2026-12-02", "2026-12-03")
    assert second_day["flow_id"].tolist() == ["f2", "f0"]
    assert served_flows(tmp_path, "2026-11-01", "2026-11-02").empty
    log.close()  # nothing buffered: writes nothing more
    assert len(list((tmp_path / "served").rglob("*.parquet"))) == 2


def test_a_full_buffer_is_written_by_the_writer_thread_not_inside_the_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once started, the log hands a full buffer to its own thread: ``add`` (called inside a
    request) never writes parquet itself."""
    import threading

    rows = [{c: float(i) for c in FEATURE_COLUMNS + HOST_FEATURES} for i in range(2)]
    results = [{"event_timestamp": "2017-07-07T10:00:00+00:00", "flow_id": f"f{i}",
                "src_ip": "10.0.0.1", "model_version": "3", "label": "BENIGN",
                "probabilities": {"BENIGN": 0.9, "PortScan": 0.1},
                "host_features_fresh": True} for i in range(2)]
    log = ServedLog(tmp_path / "served", max_rows=2, max_seconds=HANG_GUARD)
    writers: list[str] = []
    flush = log.flush
    monkeypatch.setattr(log, "flush", lambda: (writers.append(threading.current_thread().name),
                                               flush())[1])
    log.start()
    log.add(served_rows(results, rows, datetime(2026, 12, 1, 12, tzinfo=UTC)))
    # the tick is the hang guard: only the wake-up of a full buffer can write this soon
    _wait_for(lambda: log.written == 2, "flush by the writer thread")
    assert writers and set(writers) == {"served-log"}
    log.close()
    assert log.written == 2 and len(list((tmp_path / "served").rglob("*.parquet"))) == 1


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory, synthetic_week: Path
                  ) -> Iterator[tuple[Path, pd.DataFrame, str]]:
    """One day ingested, materialized (SQLite) up to the day's last PortScan flow, a champion
    trained (no search: the server, not the model, is under test) and promoted."""
    from tests.chain import champion_from_one_day

    home = tmp_path_factory.mktemp("serve") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        frame, version = champion_from_one_day(home, synthetic_week, DAY, NOW, "serve-test", tuning={"max_trials": 0})
        yield home, frame, version


@pytest.fixture(scope="module")
def server(champion_home) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    home, _, _ = champion_home
    port = _free_port()
    env = {**os.environ, "FLOWGUARD_HOME": str(home), "FLOWGUARD_SERVE_POLL_SECONDS": "0.5"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([sys.executable, "-m", "flowguard.cli", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _get(f"{base}/health")["model_version"], "champion loaded", process)
        yield base, process, home
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=HANG_GUARD)


@pytest.mark.slow
def test_serve_scores_flows_with_online_host_features(champion_home, server) -> None:
    home, frame, version = champion_home
    base, _, _ = server
    record, flow = flow_record(frame, "PortScan")
    status, result = _post(f"{base}/score", record)
    assert status == 200, result
    assert result["model_version"] == version and result["label"] == "PortScan"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    hosts = pd.concat(pd.read_parquet(p) for p in (home / "lake" / "hosts").rglob("*.parquet"))
    window = hosts[(hosts["src_ip"] == flow["src_ip"])
                   & (hosts["event_timestamp"] == flow["event_timestamp"].floor("5min"))].iloc[0]
    assert result["host_features_fresh"] is True
    assert result["host_window_end"] == window["event_timestamp"].isoformat()
    assert result["host_features"]["host_flows_1h"] == window["host_flows_1h"] > 0
    assert result["host_features_age_seconds"] == (
        flow["event_timestamp"] - window["event_timestamp"]).total_seconds()

    # the same answers as the CLI's scoring path, for a batch with a stale and an unknown host
    later = {**record, "event_timestamp": (flow["event_timestamp"] + timedelta(days=1)).isoformat()}
    status, batch = _post(f"{base}/score/batch",
                          {"flows": [record, later, {**record, "src_ip": "10.9.9.9"}]})
    assert status == 200, batch
    now, stale, unknown = batch["results"]
    assert now["probabilities"] == result["probabilities"]
    assert stale["host_features_fresh"] is False and stale["host_window_end"]
    assert set(stale["host_features"].values()) == {None}
    assert unknown["host_window_end"] is None and unknown["host_features_age_seconds"] is None

    # published CICIDS2017 headers (with their leading spaces) are accepted too
    from flowguard.schema import PUBLISHED_TO_CANONICAL

    published = {f" {h}": record[c] for h, c in PUBLISHED_TO_CANONICAL.items() if c in record}
    status, same = _post(f"{base}/score", {**published, "src_ip": record["src_ip"],
                                           "event_timestamp": record["event_timestamp"]})
    assert status == 200 and same["probabilities"] == result["probabilities"]


@pytest.mark.slow
def test_booster_fast_path_gives_predict_probas_numbers(champion_home) -> None:
    """scoring.predict_rows (what a request goes through) against the sklearn wrapper's
    predict_proba on the same rows: host windows known, unknown (NaN) and mixed."""
    import numpy as np

    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow
    from flowguard.registry import load_model
    from flowguard.schema import MODEL_FEATURES
    from flowguard.scoring import predict_rows

    home, frame, version = champion_home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = get_settings()
        model, _ = load_model(_mlflow(settings), settings.model_name, version)
    sample = frame.sample(300, random_state=1)[FEATURE_COLUMNS].astype("float64")
    rng = np.random.default_rng(0)
    for name in HOST_FEATURES:  # half the rows with a window, half without
        sample[name] = np.where(rng.random(len(sample)) < 0.5, np.nan,
                                rng.random(len(sample)) * 50)
    rows = sample[MODEL_FEATURES].to_dict("records")
    expected = model.predict_proba(sample[MODEL_FEATURES])
    np.testing.assert_allclose(predict_rows(model, rows), expected, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("payload", "field", "message"), [
    ("missing", "flow_duration", "Field required"),
    ("infinite", "flow_byts_s", "finite"),
    ("text", "tot_fwd_pkts", "valid number"),
    ("time", "event_timestamp", "datetime"),
    ("empty batch", "flows", "at least 1"),
    ("not json", "", "JSON"),
])
def test_serve_rejects_bad_requests_naming_the_field(champion_home, server, payload: str,
                                                     field: str, message: str) -> None:
    _, frame, _ = champion_home
    base, _, _ = server
    record, _ = flow_record(frame, "BENIGN")
    url, body = f"{base}/score", None
    if payload == "missing":
        body = {k: v for k, v in record.items() if k != "flow_duration"}
    elif payload == "infinite":
        body = {**record, "flow_byts_s": "Infinity"}
    elif payload == "text":
        body = {**record, "tot_fwd_pkts": "many"}
    elif payload == "time":
        body = {**record, "event_timestamp": "yesterday-ish"}
    elif payload == "empty batch":
        url, body = f"{base}/score/batch", {"flows": []}
    else:
        body = b"{not json"
    status, answer = _post(url, body)
    assert status == 422, answer
    assert any(e["field"].endswith(field) and message in e["message"]
               for e in answer["errors"]), answer
    assert field in answer["error"] and message in answer["error"]


@pytest.mark.slow
def test_serve_follows_the_champion_alias_and_logs_what_it_served(champion_home,
                                                                   server) -> None:
    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow
    from flowguard.registry import CHAMPION, register

    home, frame, version = champion_home
    base, process, _ = server
    record, _ = flow_record(frame, "PortScan")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = get_settings()
        client = _mlflow(settings)
        current = client.get_model_version(settings.model_name, version)
        # the same model registered again: a new version the alias can move to
        moved = register(client, settings.model_name, current.source, current.run_id)
        client.set_registered_model_alias(settings.model_name, CHAMPION, moved)
        _wait_for(lambda: _get(f"{base}/health")["model_version"] == moved, "alias followed",
                  process)
        status, result = _post(f"{base}/score", record)
        assert status == 200 and result["model_version"] == moved
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)  # rollback
        _wait_for(lambda: _get(f"{base}/health")["model_version"] == version,
                  "rollback followed", process)
    scored_before = _get(f"{base}/health")
    assert scored_before["online_store"] == "sqlite"
    process.send_signal(signal.SIGTERM)  # shutdown flushes the buffered served flows
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.wait(timeout=HANG_GUARD) in (0, -signal.SIGTERM), process.stderr.read()[-3000:]
    served = served_flows(home / "lake", datetime.now(UTC) - timedelta(days=1),
                          datetime.now(UTC) + timedelta(days=1))
    # the earlier tests' flows and this one's: each with the version that scored it
    assert len(served) >= 2
    assert moved in set(served["model_version"]) and version in set(served["model_version"])
    assert set(served["predicted_label"]) <= set(frame["label"])
    last = served.iloc[-1]
    assert last["model_version"] == moved and last["predicted_label"] == "PortScan"
    assert last["flow_duration"] == record["flow_duration"]
    assert served["host_features_fresh"].any()


@pytest.mark.slow
def test_the_monitor_checks_what_was_served_for_its_day(champion_home) -> None:
    """Flows of the day scored through the app (in-process, ASGI), then the monitor's
    prepare step: the served class mix and features against the champion's reference."""
    from fastapi.testclient import TestClient

    from flowguard.pipeline import prepare_monitoring
    from flowguard.serve import app_from_env

    home, frame, version = champion_home
    # the day's flows whose hosts have a window before them: as serving would have seen them
    flows = frame.sort_values("event_timestamp").groupby("label").tail(20)
    batch = [{c: float(f[c]) for c in FEATURE_COLUMNS} | {
        "src_ip": f["src_ip"], "flow_id": f["flow_id"],
        "event_timestamp": f["event_timestamp"].isoformat()} for _, f in flows.iterrows()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        with TestClient(app_from_env(poll_seconds=3600)) as client:  # shutdown flushes the log
            answered = client.post("/score/batch", json={"flows": batch})
            assert answered.status_code == 200, answered.text
        prepared = prepare_monitoring(f"{DAY}T00:00:00+00:00",
                                      f"{DAY + timedelta(days=1)}T00:00:00+00:00", "served-check",
                                      {"reference_size": 500, "sample_size": 300,
                                       "calibration_draws": 12})
    served = prepared["served_traffic"]
    # this test's flows, and any an earlier test of this module served for the day
    assert served["n_served"] >= len(batch) and served["by_version"][version] >= len(batch)
    assert served["champion_version"] == version
    mix = served["prediction"]["window_mix"]
    assert sum(mix.values()) == served["n_compared"] and set(mix) <= set(frame["label"])
    mine = [r["label"] for r in answered.json()["results"]]
    assert all(mix.get(label, 0) >= mine.count(label) for label in set(mine))
    assert 0.0 <= served["prediction"]["p_value"] <= 1.0
    assert len(served["top_features"]) == prepared["config"]["top_features"]
    json.dumps(prepared)  # goes through XCom to the report task
