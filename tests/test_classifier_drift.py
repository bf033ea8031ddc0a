"""The classifier drift detector (one held-out split, one model, rank test) in the drift
runtime: its p-values are uniform on no-drift windows (the false-alarm rate is the p-value),
a clear shift is detected, and it is not the pooled-out-of-fold test it replaced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, PROJECT

pytestmark = pytest.mark.slow

NULL_AND_SHIFT = r"""
import json, sys
import numpy as np
from scipy.stats import kstest
from flowguard.drift import classifier_drift, run_detectors
p_values = []
for w in range(400):
    rng = np.random.default_rng([5, w])
    # heavy tails and ties (values on a 0.1 grid), like preprocessed flow counters
    x = np.round(rng.standard_t(3, (500, 12)), 1).astype(np.float32)
    r = classifier_drift(x[:250], x[250:], p_val=0.05, seed=w, n_estimators=20)
    p_values.append(r["p_value"])
p = np.array(p_values)
rng = np.random.default_rng(1)
ref = rng.standard_normal((400, 12)).astype(np.float32)
cur = rng.standard_normal((400, 12)).astype(np.float32)
cur[:, :2] *= 1.6  # two features spread out
shifted = classifier_drift(ref, cur, seed=0, n_estimators=50)
unequal = classifier_drift(ref, cur[:150], seed=0, n_estimators=50)
same = classifier_drift(ref, rng.standard_normal((400, 12)).astype(np.float32), seed=0,
                        n_estimators=50)
again = classifier_drift(ref, cur, seed=0, n_estimators=50)
np.save(sys.argv[1] + "/r.npy", ref)
np.save(sys.argv[1] + "/c.npy", cur)
via = run_detectors(sys.argv[1] + "/r.npy", sys.argv[1] + "/c.npy", detectors=["classifier"],
                    classifier_estimators=50)
print(json.dumps({"rate": float((p < 0.05).mean()), "below_20": float((p < 0.2).mean()),
                  "n": len(p), "ks_uniform_p": float(kstest(p, "uniform").pvalue), "shifted": shifted,
                  "unequal": unequal, "same": same, "again": again, "via": via}))
"""


def test_classifier_test_is_calibrated_and_detects_a_shift(tmp_path: Path,
                                                          drift_python: Path) -> None:
    done = subprocess.run([str(drift_python), "-c", NULL_AND_SHIFT, str(tmp_path)],
                          capture_output=True, text=True, timeout=HANG_GUARD_S, env={
                              "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(PROJECT / "include")})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # 400 no-drift windows: a valid level-0.05 test flags Binomial(400, 0.05) of them (mean
    # 20, P(>= 32) < 0.005), and its p-values are uniform
    assert out["rate"] <= 31 / 400
    assert out["n"] == 400 and 0.13 <= out["below_20"] <= 0.27
    assert out["ks_uniform_p"] > 0.01
    shifted, same = out["shifted"], out["same"]
    assert shifted["is_drift"] and shifted["p_value"] < 1e-4 and shifted["auc"] > 0.6
    assert out["unequal"]["is_drift"]  # 400 vs 150 rows: class weights keep it working
    assert not same["is_drift"] and abs(same["auc"] - 0.5) < 0.1
    assert (shifted["n_train"], shifted["n_test"]) == (400, 400)  # half of each side
    assert out["again"]["p_value"] == shifted["p_value"]  # seeded: reruns agree
    assert out["via"]["classifier"]["backend"] == "fast"
    assert out["via"]["classifier"]["p_value"] == shifted["p_value"]
