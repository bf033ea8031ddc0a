from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.monitoring import (
    decide,
    feature_shift,
    fit_scaler,
    prediction_drift,
    prepare_inputs,
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
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    same_result, shifted_result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not same_result["mmd"]["is_drift"] and not same_result["classifier"]["is_drift"]
    assert shifted_result["mmd"]["is_drift"] and shifted_result["classifier"]["is_drift"]
    assert 0 <= same_result["mmd"]["p_value"] <= 1
