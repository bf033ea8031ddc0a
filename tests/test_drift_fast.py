"""The fast MMD permutation test against alibi-detect's MMDDrift (the reference), both run
in the drift runtime on the same data: same bandwidth, statistic, p-value and threshold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, PROJECT

pytestmark = pytest.mark.slow

COMPARE = r"""
import json, sys
import numpy as np
from flowguard.drift import alibi_mmd, mmd_permutation_test, run_detectors
rng = np.random.default_rng(7)
out = []
# (n_ref, n_cur, mean shift on 5 of 20 features, heavy tails, seed)
for n_ref, n_cur, shift, heavy, seed in [(400, 400, 0.0, False, 0), (400, 400, 0.25, False, 1),
                                         (300, 500, 0.0, True, 2), (500, 250, 0.15, True, 3),
                                         (600, 600, 0.08, False, 4)]:
    draw = (lambda size: rng.standard_t(3, size)) if heavy else rng.standard_normal
    x = draw((n_ref, 20)).astype(np.float32)
    y = draw((n_cur, 20)).astype(np.float32)
    y[:, :5] += shift
    a = alibi_mmd(x, y, n_permutations=100, seed=seed)
    f = mmd_permutation_test(x, y, n_permutations=100, seed=seed, block_rows=128)
    out.append({"a": a, "f": f})
np.save(sys.argv[1] + "/r.npy", rng.standard_normal((200, 10)).astype(np.float32))
np.save(sys.argv[1] + "/c.npy", rng.standard_normal((200, 10)).astype(np.float32))
for backend in ("fast", "alibi"):
    out.append(run_detectors(sys.argv[1] + "/r.npy", sys.argv[1] + "/c.npy",
                             detectors=["mmd"], mmd_backend=backend, n_permutations=50))
print(json.dumps(out))
"""


def test_fast_mmd_equals_alibi_detect(tmp_path: Path, drift_python: Path) -> None:
    done = subprocess.run([str(drift_python), "-c", COMPARE, str(tmp_path)], capture_output=True,
                          text=True, timeout=HANG_GUARD_S, env={
                              "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(PROJECT / "include")})
    assert done.returncode == 0, done.stderr[-2000:]
    *pairs, fast_run, alibi_run = json.loads(done.stdout.strip().splitlines()[-1])
    flagged = 0
    for pair in pairs:
        a, f = pair["a"], pair["f"]
        assert f["sigma"] == pytest.approx(a["sigma"], rel=1e-5)
        # alibi-detect sums the kernel in float32, the fast path in float64
        assert f["distance"] == pytest.approx(a["distance"], rel=2e-3, abs=2e-6)
        assert f["threshold"] == pytest.approx(a["threshold"], rel=2e-3, abs=2e-6)
        # same permutations: the p-values agree to one permutation at most (a float tie)
        assert abs(f["p_value"] - a["p_value"]) <= 0.0101
        assert f["is_drift"] == a["is_drift"]
        flagged += f["is_drift"]
    assert 1 <= flagged < len(pairs)  # the cases cover both outcomes
    assert pairs[1]["f"]["is_drift"] and not pairs[0]["f"]["is_drift"]
    # through run_detectors, selectable, same answer
    assert fast_run["mmd"]["backend"] == "fast" and alibi_run["mmd"]["backend"] == "alibi"
    assert abs(fast_run["mmd"]["p_value"] - alibi_run["mmd"]["p_value"]) <= 0.021
    assert "classifier" not in fast_run


def test_unknown_detector_or_backend_fails_clearly(tmp_path: Path, drift_python: Path) -> None:
    code = ("from flowguard.drift import run_detectors\n"
            "for kw in ({'detectors': ['ks']}, {'mmd_backend': 'gpu'},\n"
            "           {'classifier_backend': 'xgb'}):\n"
            "    try:\n        run_detectors('a', 'b', **kw)\n"
            "    except ValueError as e:\n        print(e)\n")
    done = subprocess.run([str(drift_python), "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(PROJECT / "include"), "PATH": "/usr/bin:/bin"},
                          timeout=HANG_GUARD_S)
    assert "detectors must be a non-empty subset" in done.stdout
    assert "mmd_backend must be one of" in done.stdout
    assert "classifier_backend must be one of ('fast', 'alibi')" in done.stdout
