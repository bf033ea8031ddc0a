from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.monitoring import (
    ReferenceTooSmall,
    decide,
    feature_shift,
    fit_scaler,
    prediction_drift,
    prepare_inputs,
    reference_split,
    transform,
    write_report,
)
from flowguard.schema import FEATURE_COLUMNS


def _flows(n: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=3.0, sigma=2.0, size=(n, len(FEATURE_COLUMNS))) * scale
    return pd.DataFrame(x, columns=FEATURE_COLUMNS)


def test_scaler_is_fitted_on_a_separate_half(tmp_path: Path) -> None:
    ref, cur = _flows(400, 0), _flows(300, 1)
    out = prepare_inputs(ref, cur, tmp_path, n=150)
    x_ref, x_cur = np.load(out["ref_path"]), np.load(out["cur_path"])
    assert x_ref.shape == (150, 77) and x_cur.shape == (150, 77)
    assert x_ref.dtype == np.float32 and np.isfinite(x_ref).all()
    scaler = json.loads((tmp_path / "scaler.json").read_text())
    assert len(scaler["center"]) == 77
    # heavy tails are tamed: scaled values stay within a few units
    assert np.abs(x_cur).max() < 10


def test_reference_split_and_too_small_reference(tmp_path: Path) -> None:
    # the scaler gets min(5000, half); x_ref is drawn from the others, never resampled
    assert reference_split(2000) == (1000, 1000)
    assert reference_split(25_000) == (5000, 20_000)
    ref, cur = _flows(3000, 0), _flows(800, 1)
    out = prepare_inputs(ref, cur, tmp_path / "ok", n=600, reference_size=1500)
    assert (out["n_ref"], out["n_cur"], out["n_scaler_fit"]) == (1500, 600, 1500)
    with pytest.raises(ReferenceTooSmall, match=r"reference_size=1501 but the reference "
                       r"sample has 3000 rows: 1500 fit the preprocessing, so x_ref can have "
                       r"at most 1500\. Lower reference_size"):
        prepare_inputs(ref, cur, tmp_path / "small", n=600, reference_size=1501)
    assert not (tmp_path / "small").exists()  # fails before writing anything


def test_transform_handles_negative_values() -> None:
    frame = _flows(50, 2)
    frame.iloc[:5, 0] = -1.0  # CICFlowMeter writes -1 for unseen windows
    z = transform(frame, fit_scaler(frame))
    assert np.isfinite(z).all()


@pytest.mark.parametrize(("mmd", "clf", "policy", "expected"), [
    (True, True, "all", True), (True, False, "all", False), (True, False, "any", True),
    (False, False, "any", False),
])
def test_decision_policy(mmd: bool, clf: bool, policy: str, expected: bool) -> None:
    detectors = {"mmd": {"is_drift": mmd, "p_value": 0.01 if mmd else 0.5},
                 "classifier": {"is_drift": clf, "p_value": 0.01 if clf else 0.5}}
    drift, reason = decide(detectors, policy)
    assert drift is expected
    assert "mmd p=" in reason and policy in reason


def test_prediction_drift_and_feature_shift() -> None:
    same = prediction_drift(np.array(["BENIGN"] * 90 + ["Bot"] * 10),
                            np.array(["BENIGN"] * 88 + ["Bot"] * 12), ["BENIGN", "Bot"])
    moved = prediction_drift(np.array(["BENIGN"] * 90 + ["Bot"] * 10),
                             np.array(["BENIGN"] * 40 + ["Bot"] * 60), ["BENIGN", "Bot"])
    assert same["p_value"] > 0.05 > moved["p_value"]
    ref, cur = _flows(300, 0), _flows(300, 1)
    cur["flow_duration"] *= 50
    top = feature_shift(ref, cur, top=3)
    assert top[0]["feature"] == "flow_duration" and top[0]["p_adjusted"] < 0.01


def test_report_files(tmp_path: Path) -> None:
    det = {"n_ref": 10, "n_cur": 10, "p_val": 0.05,
           "mmd": {"is_drift": True, "p_value": 0.0, "seconds": 1.0},
           "classifier": {"is_drift": False, "p_value": 0.4, "seconds": 2.0}}
    report = {"window": "2017-07-07", "champion_version": "1", "n_window": 99, "detectors": det,
              "decision": "no drift", "top_features": [{"feature": "a<b", "ks": 0.5,
                                                        "p_adjusted": 0.01}],
              "prediction_drift": {"p_value": 0.5, "reference_mix": {}, "window_mix": {}}}
    paths = write_report(report, tmp_path)
    assert json.loads(Path(paths["json"]).read_text())["window"] == "2017-07-07"
    assert "a&lt;b" in Path(paths["html"]).read_text()


@pytest.mark.slow
def test_detectors_in_the_drift_runtime(tmp_path: Path, drift_python: Path) -> None:
    """Real alibi-detect in the separate runtime: no alarm on same-distribution data, an
    alarm on a shifted window, through the same module the DAG ships."""
    ref, same, shifted = _flows(1200, 0), _flows(600, 1), _flows(600, 2, scale=3.0)
    a = prepare_inputs(ref, same, tmp_path / "same", n=600)
    b = prepare_inputs(ref, shifted, tmp_path / "shifted", n=600)
    code = ("import json, sys; from flowguard.drift import run_detectors; "
            "print(json.dumps([run_detectors(r, c, n_permutations=50) for r, c in "
            "json.loads(sys.argv[1])]))")
    pairs = json.dumps([[a["ref_path"], a["cur_path"]], [b["ref_path"], b["cur_path"]]])
    out = subprocess.run([str(drift_python), "-c", code, pairs], capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr[-2000:]
    same_result, shifted_result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not same_result["mmd"]["is_drift"] and not same_result["classifier"]["is_drift"]
    assert shifted_result["mmd"]["is_drift"] and shifted_result["classifier"]["is_drift"]
    assert 0 <= same_result["mmd"]["p_value"] <= 1


# ---------------------------------------------------------------- configuration

from datetime import date  # noqa: E402

from flowguard.monitoring import (  # noqa: E402
    ConfigError,
    DriftInputError,
    MonitoringConfig,
    load_monitoring_config,
    performance_drift,
    read_flows,
    record_history,
    retrain_decision,
)
from tests.conftest import HANG_GUARD_S, PROJECT  # noqa: E402


def test_committed_config_is_the_documented_default() -> None:
    config = load_monitoring_config(PROJECT / "config" / "monitoring.yaml")
    assert config == MonitoringConfig()  # the file and the dataclass say the same
    assert config.detectors == ("mmd", "classifier", "novelty") and config.policy == "holm"


def test_overrides_win_and_none_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("sample_size: 500\np_value: 0.01\ndetectors: [mmd]\n")
    config = load_monitoring_config(path, {"sample_size": None, "policy": "any",
                                           "n_permutations": 200, "detectors": ""})
    assert (config.sample_size, config.p_value, config.policy) == (500, 0.01, "any")
    assert config.n_permutations == 200 and config.detectors == ("mmd",)
    assert config.drift_detectors == ["mmd"]


@pytest.mark.parametrize(("text", "message"), [
    ("sample_sise: 10\n", "unknown key 'sample_sise'"),
    ("p_value: 0.9\n", "p_value: 0.9 is outside"),
    ("sample_size: 12.5\n", "sample_size: 12.5 is not an integer"),
    ("detectors: [mmd, ks]\n", "detectors: ['mmd', 'ks'] must be"),
    ("policy: most\n", "policy: 'most' must be one of"),
    ("- a\n", "expected a mapping"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml") as err:
        load_monitoring_config(path)
    assert message in str(err.value)


def test_bad_override_is_named() -> None:
    with pytest.raises(ConfigError, match="override: cooldown_days: -1 is outside"):
        load_monitoring_config(PROJECT / "config" / "monitoring.yaml", {"cooldown_days": -1})


# ---------------------------------------------------------------- decision and cooldown


def test_voters_abstain_when_missing() -> None:
    det = {"mmd": {"is_drift": True, "p_value": 0.0}, "classifier": {"is_drift": True,
                                                                     "p_value": 0.01},
           "prediction": {"is_drift": False, "p_value": 0.3}, "performance": None}
    assert decide(det, "all", ["mmd", "classifier", "performance"])[0] is True
    assert decide(det, "all", ["mmd", "prediction"])[0] is False
    drift, reason = decide(det, "any", ["performance"])
    assert drift is False and "no voting detector" in reason


def test_cooldown_one_trigger_per_window_and_champion(tmp_path: Path) -> None:
    ledger = tmp_path / "drift" / "triggers.json"
    first = retrain_decision(ledger, "2017-07-06", "1", True, 2, "run-a")
    assert first["retrain"] is True
    # the same window from another run (a manual run): never a second trigger
    again = retrain_decision(ledger, "2017-07-06", "1", True, 2, "run-b")
    assert again["retrain"] is False and "already triggered" in again["why"]
    # a retry of the deciding run: the same answer (the trigger's run id is derived from it)
    assert retrain_decision(ledger, "2017-07-06", "1", True, 2, "run-a")["retrain"] is True
    # next day, same champion, within the cooldown: alert only
    held = retrain_decision(ledger, "2017-07-07", "1", True, 2, "run-c")
    assert held["retrain"] is False and "cooldown" in held["why"]
    # next day but a new champion (the retraining it started was promoted): allowed
    assert retrain_decision(ledger, "2017-07-07", "2", True, 2, "run-d")["retrain"] is True
    # same old champion after the cooldown has passed: allowed again
    assert retrain_decision(ledger, "2017-07-08", "1", True, 2, "run-e")["retrain"] is True
    assert retrain_decision(ledger, "2017-07-09", "1", False, 2)["why"] == "no drift"
    windows = [e["window"] for e in json.loads(ledger.read_text())]
    assert windows == ["2017-07-06", "2017-07-07", "2017-07-08"]  # durable, in order
    # cooldown 0 still allows at most one trigger per window
    other = tmp_path / "other.json"
    assert retrain_decision(other, "2017-07-06", "1", True, 0)["retrain"] is True
    assert retrain_decision(other, "2017-07-06", "1", True, 0)["retrain"] is False
    assert retrain_decision(other, "2017-07-07", "1", True, 0)["retrain"] is True


def test_cooldown_ledger_under_concurrent_runs(tmp_path: Path) -> None:
    """Two processes deciding the same window at once: exactly one trigger."""
    import multiprocessing

    ledger = tmp_path / "triggers.json"
    # spawn, not fork: forking this many-threaded test process (Airflow, MLflow, GX threads)
    # can copy a held lock into a worker, which then waits forever (seen once in CI).
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(retrain_decision,
                               [(ledger, "2017-07-07", "1", True, 2, f"r{i}") for i in range(8)])
    assert sum(r["retrain"] for r in results) == 1


def test_history_keeps_latest_run_per_window(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    record_history(path, {"window": "2017-07-07", "mmd_p_value": 0.5})
    record_history(path, {"window": "2017-07-06", "mmd_p_value": 0.2})
    entries = record_history(path, {"window": "2017-07-07", "mmd_p_value": 0.0})
    assert [(e["window"], e["mmd_p_value"]) for e in entries] == [
        ("2017-07-06", 0.2), ("2017-07-07", 0.0)]


def test_performance_drift_on_labelled_windows() -> None:
    truth = np.array(["BENIGN"] * 80 + ["Bot"] * 20, dtype=object)
    good = performance_drift(truth, truth.copy(), baseline_macro_f1=0.95)
    assert good["window_macro_f1"] == 1.0 and good["is_drift"] is False
    bad = performance_drift(truth, np.array(["BENIGN"] * 100, dtype=object), 0.95)
    assert bad["is_drift"] is True and bad["drop"] > 0.4
    assert performance_drift(np.array([None] * 5, dtype=object),
                             np.array(["BENIGN"] * 5, dtype=object), 0.9) is None


def test_report_shows_distributions_history_and_decision(tmp_path: Path) -> None:
    ref, cur = _flows(300, 0), _flows(300, 1)
    cur["flow_duration"] *= 50
    top = feature_shift(ref, cur, top=2)
    hist = top[0]["histogram"]
    assert len(hist["edges"]) == len(hist["reference"]) + 1
    assert abs(sum(hist["reference"]) - 1) < 1e-3 and abs(sum(hist["window"]) - 1) < 1e-3
    det = {"n_ref": 300, "n_cur": 300, "p_val": 0.05,
           "mmd": {"is_drift": True, "p_value": 0.0, "seconds": 0.1},
           "classifier": {"is_drift": True, "p_value": 0.01, "seconds": 2.0},
           "prediction": {"is_drift": False, "p_value": 0.4},
           "performance": {"window_macro_f1": 0.7, "baseline_macro_f1": 0.93, "is_drift": True,
                           "drop": 0.23}}
    history = [{"window": "2017-07-06", "mmd_p_value": 0.6, "classifier_p_value": 0.4},
               {"window": "2017-07-07", "mmd_p_value": 0.0, "classifier_p_value": 0.01}]
    report = {"window": "2017-07-07", "champion_version": "2", "n_window": 900,
              "detectors": det, "decision": "drift (all of mmd p=0, classifier p=0.01)",
              "top_features": top, "policy": "all", "voters": ["mmd", "classifier"],
              "action": {"retrain": False, "why": "cooldown: retraining was triggered"},
              "prediction_drift": {"p_value": 0.4, "reference_mix": {}, "window_mix": {}}}
    paths = write_report(report, tmp_path, history)
    page = Path(paths["html"]).read_text()
    assert "flow_duration" in page and page.count("<svg") == 3  # 2 features + history
    history_part = page[page.index("p-value history"):page.index("Top drifted")]
    assert "matplotlib" in history_part and "07-06" in history_part and "cooldown" in page
    assert "macro-F1 0.700 vs 0.930" in page
    saved = json.loads(Path(paths["json"]).read_text())
    assert saved["history"][1]["mmd_p_value"] == 0.0


# ---------------------------------------------------------------- files for `flowguard drift`


def test_read_flows_parquet_and_csv(tmp_path: Path, synthetic_week: Path) -> None:
    frame = _flows(50, 0)
    frame.loc[3, "flow_byts_s"] = np.inf
    frame.to_parquet(tmp_path / "a.parquet")
    rows, excluded = read_flows(tmp_path / "a.parquet")
    assert len(rows) == 49 and excluded["examples"][0] == {
        "row": 3, "reason": "non-finite flow_byts_s"}
    csv = sorted(synthetic_week.glob("Friday*.csv"))[0]
    rows, excluded = read_flows(csv, date(2017, 7, 7))
    assert len(rows) > 100 and set(FEATURE_COLUMNS) <= set(rows.columns)
    assert all(e["row"] >= 2 for e in excluded["examples"])  # file lines, after the header
    frame.drop(columns=["flow_duration"]).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DriftInputError, match="b.parquet: not canonical flows.*flow_duration"):
        read_flows(tmp_path / "b.parquet")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(DriftInputError, match="c.json: expected a .parquet"):
        read_flows(tmp_path / "c.json")


# ---------------------------------------------------------------- served traffic


def _serve_log(root: Path, flows: pd.DataFrame, labels: list[str], version: str,
               served_at: datetime, event_at: datetime) -> None:
    """Flows appended to the lake as `flowguard serve` writes them (ServedLog)."""
    from flowguard.schema import HOST_FEATURES
    from flowguard.serve import ServedLog, served_rows

    rows = [{**{c: float(r[c]) for c in FEATURE_COLUMNS}, **dict.fromkeys(HOST_FEATURES, 1.0)}
            for _, r in flows.iterrows()]
    results = [{"event_timestamp": (event_at + timedelta(seconds=i)).isoformat(),
                "flow_id": f"f{i}", "src_ip": "10.0.0.1", "model_version": version,
                "label": label, "probabilities": {"BENIGN": 0.8, "PortScan": 0.2},
                "host_features_fresh": i % 2 == 0} for i, label in enumerate(labels)]
    log = ServedLog(root / "served", max_rows=10_000)
    log.add(served_rows(results, rows, served_at))
    log.close()


def test_served_window_reads_the_days_flows_whenever_served(tmp_path: Path) -> None:
    from flowguard.monitoring import served_window

    day = datetime(2017, 7, 6, tzinfo=UTC)
    flows = _flows(4, 0)
    # a replay: the 2017 flows served in 2026; and the day before's flows, served live
    _serve_log(tmp_path, flows, ["BENIGN"] * 4, "2", datetime(2026, 12, 1, 9, tzinfo=UTC),
               day + timedelta(hours=10))
    _serve_log(tmp_path, flows[:2], ["PortScan"] * 2, "1", day - timedelta(hours=2),
               day - timedelta(hours=3))
    window = served_window(tmp_path, day, day + timedelta(days=1))
    assert window["flow_id"].tolist() == ["f0", "f1", "f2", "f3"]
    assert set(window["model_version"]) == {"2"}
    assert window["flow_duration"].tolist() == flows["flow_duration"].tolist()
    assert served_window(tmp_path, day - timedelta(days=1), day)["flow_id"].tolist() == [
        "f0", "f1"]
    assert served_window(tmp_path, day + timedelta(days=1), day + timedelta(days=2)).empty
    assert served_window(tmp_path / "nothing", day, day + timedelta(days=1)).empty


def test_served_traffic_check_compares_what_the_champion_answered(tmp_path: Path) -> None:
    from flowguard.monitoring import served_traffic_check, served_window

    day = datetime(2017, 7, 6, tzinfo=UTC)
    reference = _flows(300, 0)
    ref_pred = np.array(["BENIGN"] * 270 + ["PortScan"] * 30)
    served = _flows(200, 1)
    served["flow_duration"] *= 50  # the served flows moved on one feature
    # the champion (v2) answered PortScan for half the flows; v1 served 10 before it
    _serve_log(tmp_path, served, ["BENIGN"] * 100 + ["PortScan"] * 100, "2",
               datetime(2026, 12, 1, 9, tzinfo=UTC), day + timedelta(hours=10))
    _serve_log(tmp_path, served[:10], ["BENIGN"] * 10, "1",
               datetime(2026, 12, 1, 8, tzinfo=UTC), day + timedelta(hours=9))
    window = served_window(tmp_path, day, day + timedelta(days=1))
    check = served_traffic_check(reference, ref_pred, window, ["BENIGN", "PortScan"], "2",
                                 0.05, top=3)
    assert check["n_served"] == 210 and check["n_compared"] == 200
    assert check["by_version"] == {"2": 200, "1": 10}
    assert check["prediction"]["window_mix"] == {"BENIGN": 100, "PortScan": 100}
    assert check["prediction"]["reference_mix"] == {"BENIGN": 270, "PortScan": 30}
    assert check["prediction"]["is_drift"] and check["prediction"]["p_value"] < 1e-6
    assert check["top_features"][0]["feature"] == "flow_duration"
    assert check["host_features_fresh_share"] == pytest.approx(105 / 210)
    # the same mix as the reference: no drift
    same = window[window["model_version"] == "2"].copy()
    same["predicted_label"] = ["BENIGN"] * 180 + ["PortScan"] * 20
    assert not served_traffic_check(reference, ref_pred, same, ["BENIGN", "PortScan"], "2",
                                    0.05)["prediction"]["is_drift"]
    # served only by an older version: counted, not compared
    older = served_traffic_check(reference, ref_pred, window, ["BENIGN", "PortScan"], "3", 0.05)
    assert older["prediction"] is None and "nothing to compare" in older["note"]
    # a few flows: the class mix, no feature tests
    few = served_traffic_check(reference, ref_pred, same.iloc[:5], ["BENIGN", "PortScan"],
                               "2", 0.05)
    assert few["prediction"] is not None and few["top_features"] == []
    assert served_traffic_check(reference, ref_pred, window.iloc[:0], ["BENIGN"], "2",
                                0.05) is None
    # the report shows it
    report = {"window": "2017-07-06", "champion_version": "2", "n_window": 99,
              "detectors": {"n_ref": 10, "n_cur": 10, "p_val": 0.05},
              "decision": "no drift", "top_features": [],
              "prediction_drift": {"p_value": 0.5, "reference_mix": {}, "window_mix": {}},
              "served_traffic": check}
    page = Path(write_report(report, tmp_path / "report")["html"]).read_text()
    served_part = page[page.index("Served traffic"):]
    assert "210 of this window" in served_part and "v1: 10" in served_part
    assert "DRIFT" in served_part and "flow_duration" in served_part
    assert "<svg" in served_part
    nothing = Path(write_report({**report, "served_traffic": None}, tmp_path / "none")["html"])
    assert "None of this window" in nothing.read_text()
