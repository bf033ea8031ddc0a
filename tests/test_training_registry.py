from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.evaluation import evaluate
from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES
from flowguard.training import class_weights, time_aware_split


def _frame(n_per_class: dict[str, int], seed: int = 0, shift: float = 3.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    uid = 0
    for k, (label, n) in enumerate(n_per_class.items()):
        x = rng.normal(k * shift, 1.0, size=(n, len(FEATURE_COLUMNS))).clip(0)
        part = pd.DataFrame(x, columns=FEATURE_COLUMNS)
        for col in HOST_FEATURES:  # host activity: informative, and missing for some flows
            part[col] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(k, 1.0, n))
        part["label"] = label
        part["flow_uid"] = np.arange(uid, uid + n)
        part["event_timestamp"] = pd.Timestamp("2017-07-03", tz="UTC") + pd.to_timedelta(
            rng.uniform(0, 86_400, n), unit="s")
        uid += n
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_time_aware_split_keeps_each_class_future_out_of_training() -> None:
    frame = _frame({"BENIGN": 500, "PortScan": 100, "Heartbleed": 12})
    train, valid, test = time_aware_split(frame)
    assert len(train) + len(valid) + len(test) == len(frame)
    for label in frame["label"].unique():
        tr = train[train.label == label].event_timestamp.max()
        va = valid[valid.label == label].event_timestamp
        te = test[test.label == label].event_timestamp.min()
        assert tr <= te
        if len(va):
            assert tr <= va.min() and va.max() <= te
    assert set(test["label"]) == set(frame["label"])


def test_class_weights_favour_rare_classes_with_mean_one() -> None:
    labels = pd.Series(["BENIGN"] * 900 + ["Bot"] * 100)
    w = class_weights(labels)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] / w[0] == pytest.approx(3.0)  # sqrt(900 / 100)


def test_evaluate_counts_classes_the_model_never_predicts() -> None:
    y_true = np.array(["BENIGN"] * 8 + ["PortScan"] * 2)
    y_pred = np.array(["BENIGN"] * 10)
    m = evaluate(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["f1.PortScan"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 * 0.8 / 1.8 + 0) / 2)


@pytest.mark.slow
def test_train_register_gate_and_rollback_on_a_real_mlflow(home: Path, tmp_path: Path) -> None:
    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow
    from flowguard.registry import (
        CHAMPION,
        PREVIOUS,
        champion_version,
        gate_and_promote,
        register,
        rollback,
        summarise_versions,
    )
    from flowguard.training import train_and_log

    settings = get_settings()
    client = _mlflow(settings)
    artifacts = home / "mlflow" / "artifacts"
    first = tmp_path / "first.parquet"
    _frame({"BENIGN": 600, "DoS Hulk": 200}).to_parquet(first)
    r1 = train_and_log(first, artifacts, "m", {"dag_run_id": "t1", "trigger_reason": "test"})
    assert r1.metrics["macro_f1"] > 0.9
    v1 = register(client, "m", r1.model_uri, r1.run_id)
    d1 = gate_and_promote(client, "m", v1)
    assert d1.promoted and champion_version(client, "m") == v1

    # a challenger trained on data with a new class beats the champion on the newest flows
    second = tmp_path / "second.parquet"
    _frame({"BENIGN": 600, "DoS Hulk": 200, "PortScan": 200}, seed=1).to_parquet(second)
    r2 = train_and_log(second, artifacts, "m", {"dag_run_id": "t2", "trigger_reason": "drift"})
    v2 = register(client, "m", r2.model_uri, r2.run_id)
    d2 = gate_and_promote(client, "m", v2)
    assert d2.promoted and d2.champion_macro_f1 < d2.challenger_macro_f1
    assert str(client.get_model_version_by_alias("m", PREVIOUS).version) == v1

    # a worse challenger (noise labels) is registered but does not move the champion
    third = tmp_path / "third.parquet"
    bad = _frame({"BENIGN": 600, "DoS Hulk": 200, "PortScan": 200}, seed=2)
    bad["label"] = np.random.default_rng(0).permutation(bad["label"].to_numpy())
    bad.to_parquet(third)
    r3 = train_and_log(third, artifacts, "m", {"dag_run_id": "t3", "trigger_reason": "test"})
    v3 = register(client, "m", r3.model_uri, r3.run_id)
    d3 = gate_and_promote(client, "m", v3)
    assert not d3.promoted
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == v2
    assert client.get_model_version("m", v3).tags["gate"] == "failed"

    assert rollback(client, "m") == v1
    assert str(client.get_model_version_by_alias("m", PREVIOUS).version) == v2
    rows = summarise_versions(client, "m")
    assert [r["version"] for r in rows] == [v1, v2, v3]
    run = client.get_run(r2.run_id)
    assert run.data.tags["lineage.trigger_reason"] == "drift"
    assert run.data.tags["lineage.code_version"]
    artifacts_logged = {a.path for a in client.list_artifacts(r2.run_id)}
    assert {"reference", "holdout", "model_schema.json"} <= artifacts_logged
    assert not (Path.cwd() / "mlruns").exists()
