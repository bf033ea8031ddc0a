"""Issue 15: calibrated null, novelty test, harm estimate and the Holm decision."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.calibration import apply_calibration, block_null, calibrated_p, mmd2
from flowguard.harm import expected_macro_f1, harm_estimate
from flowguard.monitoring import (
    MonitoringConfig,
    calibrate,
    decide,
    holm,
    novelty_check,
    split_reference,
)
from flowguard.novelty import novelty_test, tail_rank
from flowguard.schema import FEATURE_COLUMNS

PROJECT = Path(__file__).resolve().parents[1]


def test_numpy_mmd_is_the_fast_permutation_tests_statistic(drift_python: Path) -> None:
    """The calibration's numpy MMD^2 equals the drift runtime's (torch) statistic."""
    code = ("import numpy as np; from flowguard.calibration import mmd2; "
            "from flowguard.drift import mmd_permutation_test; "
            "rng = np.random.default_rng(0); x = rng.normal(size=(300, 6)); "
            "y = rng.normal(0.3, 1, size=(250, 6)); "
            "print(mmd2(x, y), mmd_permutation_test(x, y, n_permutations=10)['distance'])")
    done = subprocess.run([str(drift_python), "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT / "include")},
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    mine, fast = map(float, done.stdout.split())
    assert mine == pytest.approx(fast, rel=1e-3, abs=1e-6) and fast > 0.01


def test_rff_mmd_is_the_same_in_both_runtimes_and_picked_beyond_the_quadratic_range(
        drift_python: Path, tmp_path: Path) -> None:
    """The drift runtime's rff MMD (numpy 1.x) equals the platform's (the calibration's),
    and ``auto`` runs it beyond QUADRATIC_MAX_ROWS rows per side."""
    from flowguard.calibration import QUADRATIC_MAX_ROWS, rff_mmd2, rff_mmd_test

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 6)), rng.normal(0.3, 1, size=(250, 6))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    big = QUADRATIC_MAX_ROWS + 1
    np.save(tmp_path / "bx.npy", rng.normal(size=(big, 3)).astype(np.float32))
    np.save(tmp_path / "by.npy", rng.normal(size=(40, 3)).astype(np.float32))
    code = ("import json, sys, numpy as np; from flowguard.calibration import rff_mmd_test; "
            "from flowguard.drift import run_detectors; d = sys.argv[1]; "
            "r = rff_mmd_test(np.load(d + '/x.npy'), np.load(d + '/y.npy'), 50); "
            "a = run_detectors(d + '/bx.npy', d + '/by.npy', detectors=['mmd'], "
            "n_permutations=20)['mmd']; print(json.dumps([r, a['backend']]))")
    done = subprocess.run([str(drift_python), "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(PROJECT / "include")},
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs, auto_backend = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    mine = rff_mmd_test(x, y, 50)
    assert theirs["distance"] == pytest.approx(mine["distance"], rel=1e-9, abs=1e-12)
    assert theirs["p_value"] == mine["p_value"] and theirs["sigma"] == mine["sigma"]
    assert rff_mmd2(x, y) == pytest.approx(mine["distance"], rel=1e-12)
    assert auto_backend == "rff"


def test_rff_mmd_approximates_the_quadratic_statistic_and_keeps_its_rules() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(800, 8))
    shifted = rng.normal(size=(800, 8))
    shifted[:, :2] += 0.4
    from flowguard.calibration import rff_mmd_test

    exact, approx = mmd2(x, shifted), rff_mmd_test(x, shifted, 100, seed=0)
    # 512 features: the kernel's approximation error is O(1/sqrt(512)) per entry
    assert approx["distance"] == pytest.approx(exact, rel=0.25) and exact > 0.01
    assert approx["is_drift"] and approx["p_value"] == 0.0
    same = rff_mmd_test(x, rng.normal(size=(800, 8)), 100, seed=0)
    assert abs(same["distance"]) < exact / 10 and not same["is_drift"]
    # over no-drift pairs its p-values are those of a permutation test (roughly uniform)
    ps = [rff_mmd_test(rng.normal(size=(150, 4)), rng.normal(size=(150, 4)), 50, seed=s)
          ["p_value"] for s in range(40)]
    assert 0.3 < float(np.mean(ps)) < 0.7 and np.mean(np.asarray(ps) < 0.05) <= 0.15


def test_calibration_of_an_rff_check_uses_the_rff_statistic() -> None:
    from flowguard.calibration import rff_mmd2

    rng = np.random.default_rng(5)
    reference = _timed_rows(700, rng, 72)
    config = MonitoringConfig(sample_size=100, reference_size=100, calibration_draws=6,
                              detectors=("mmd",), mmd_backend="rff")
    rff = calibrate(reference, config, None)
    fast = calibrate(reference, MonitoringConfig(sample_size=100, reference_size=100,
                                                 calibration_draws=6, detectors=("mmd",)))
    assert rff["mmd_backend"] == "rff" and fast["mmd_backend"] == "fast"
    assert rff["null"]["mmd"] != fast["null"]["mmd"]
    # a fast check's result is not calibrated with an rff null (and the other way round)
    det = {"mmd": {"distance": 1.0, "p_value": 0.0, "is_drift": True, "backend": "fast"}}
    out = apply_calibration(det, rff, 0.05)
    assert out["mmd"]["p_value"] == 0.0 and "not applied" in out["mmd"]["calibration"]
    assert apply_calibration({"mmd": {**det["mmd"], "backend": "rff"}}, rff, 0.05)[
        "mmd"]["p_value"] == pytest.approx(1 / 7)
    assert np.isfinite(rff_mmd2(reference[FEATURE_COLUMNS].to_numpy()[:50],
                                reference[FEATURE_COLUMNS].to_numpy()[50:100]))


def test_mmd2_is_near_zero_for_one_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5))
    same, shifted = mmd2(x, rng.normal(size=(400, 5))), mmd2(x, rng.normal(1, 1, (400, 5)))
    assert abs(same) < 0.01 < shifted


@pytest.mark.parametrize(("observed", "expected"), [(10.0, 1 / 100), (-1.0, 1.0), (0.5, 50 / 100)])
def test_calibrated_p_is_the_finite_sample_empirical_one(observed: float, expected: float) -> None:
    null = list(np.linspace(0, 1, 99))  # 99 draws
    assert calibrated_p(observed, null) == pytest.approx(expected, abs=0.011)


def test_apply_calibration_takes_the_larger_p_and_keeps_the_permutation_one() -> None:
    det = {"mmd": {"p_value": 0.0, "distance": 0.01, "is_drift": True},
           "classifier": {"p_value": 0.3, "distance": 0.5, "is_drift": False}}
    cal = {"null": {"mmd": [0.02] * 99, "classifier": [0.0] * 99}}
    out = apply_calibration(det, cal, 0.05)
    # MMD: far inside the reference period's own variation -> no drift despite p_perm = 0
    assert out["mmd"]["p_value_permutation"] == 0.0 and out["mmd"]["p_value"] == 1.0
    assert not out["mmd"]["is_drift"]
    assert out["classifier"]["p_value_calibrated"] == 0.01 and out["classifier"]["p_value"] == 0.3
    assert apply_calibration(det, None, 0.05) is det


def _timed_rows(n: int, rng: np.random.Generator, hours: float, shift: float = 0.0
                ) -> pd.DataFrame:
    values = np.abs(rng.lognormal(3 + shift, 1, size=(n, len(FEATURE_COLUMNS))))
    frame = pd.DataFrame(values, columns=FEATURE_COLUMNS)
    frame["label"] = "BENIGN"
    frame["event_timestamp"] = pd.Timestamp("2017-07-03", tz="UTC") + pd.to_timedelta(
        rng.uniform(0, hours, n), unit="h")
    frame["flow_uid"] = [f"u{i}" for i in range(n)]
    frame["src_ip"] = "10.0.0.9"
    return frame


def test_block_null_draws_blocks_of_the_period_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    x_ref, x_rest = rng.normal(size=(120, 4)), rng.normal(size=(600, 4))
    t_ref, t_rest = rng.uniform(0, 72, 120), rng.uniform(0, 72, 600)
    a = block_null(x_ref, t_ref, x_rest, t_rest, 100, ["mmd"], draws=15, block_hours=24)
    b = block_null(x_ref, t_ref, x_rest, t_rest, 100, ["mmd"], draws=15, block_hours=24)
    assert a["null"] == b["null"] and a["draws"] == 15 and len(a["null"]["mmd"]) == 15
    assert a["block_hours"] == 24 and a["period_hours"] > 70
    assert a["median_sizes"] == [120, 100]  # x_ref size kept, window sample of the block


def test_block_null_split_over_worker_processes_gives_the_same_null(monkeypatch) -> None:
    """The draws are planned in one random stream and only computed in parallel: two worker
    processes give the numbers one process gives, in the same order."""
    rng = np.random.default_rng(5)
    x_ref, x_rest = rng.normal(size=(80, 4)), rng.normal(size=(400, 4))
    t_ref, t_rest = rng.uniform(0, 72, 80), rng.uniform(0, 72, 400)
    runs = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv("FLOWGUARD_CALIBRATION_JOBS", jobs)
        runs[jobs] = block_null(x_ref, t_ref, x_rest, t_rest, 60, ["mmd", "classifier"],
                                draws=24, block_hours=24, classifier_estimators=10)
    assert runs["1"]["jobs"] == 1 and runs["2"]["jobs"] == 2
    assert runs["1"]["null"] == runs["2"]["null"]
    assert len(runs["2"]["null"]["classifier"]) == runs["2"]["draws"] == 24
    monkeypatch.setenv("FLOWGUARD_CALIBRATION_JOBS", "2")
    few = block_null(x_ref, t_ref, x_rest, t_rest, 60, ["mmd"], draws=5, block_hours=24)
    assert few["jobs"] == 1  # a worker's start costs more than five draws


def test_block_null_runs_the_classifier_on_one_openmp_thread() -> None:
    """In a fresh process (scikit-learn not yet imported), every draw runs with OpenMP at
    one thread: threadpoolctl limits only what is loaded when the limit is set."""
    code = ("import numpy as np; from threadpoolctl import threadpool_info; "
            "import flowguard.calibration as c; seen = []\n"
            "def stats(*a, **k):\n"
            "    import sklearn.ensemble  # as the classifier statistic does\n"
            "    seen.append(sorted({i['num_threads'] for i in threadpool_info() "
            "if i['internal_api'] == 'openmp'})); return {}\n"
            "c.statistics = stats; rng = np.random.default_rng(0)\n"
            "c.block_null(rng.normal(size=(50, 3)), rng.uniform(0, 48, 50), "
            "rng.normal(size=(200, 3)), rng.uniform(0, 48, 200), 30, ['classifier'], draws=3)\n"
            "print(seen)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([str(PROJECT / ".venv" / "bin" / "python"), "-c", code],
                          capture_output=True, text=True, check=False,
                          env={**env, "PYTHONPATH": str(PROJECT / "include")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[[1], [1], [1]]"


def test_calibrate_caches_by_reference_and_settings(tmp_path) -> None:
    rng = np.random.default_rng(3)
    reference = _timed_rows(700, rng, 72)
    config = MonitoringConfig(sample_size=100, reference_size=100, calibration_draws=12,
                              detectors=("mmd",))
    first = calibrate(reference, config, tmp_path)
    assert first["draws"] == 12 and len(list(tmp_path.glob("calibration-*.json"))) == 1
    again = calibrate(reference, config, tmp_path)  # read back, not recomputed
    assert first.pop("source") == "computed" and again.pop("source") == "cache"
    assert again == first
    other = MonitoringConfig(sample_size=100, reference_size=100, calibration_draws=13,
                             detectors=("mmd",))
    assert calibrate(reference, other, tmp_path)["draws"] == 13
    assert calibrate(reference, MonitoringConfig(calibration_draws=0), tmp_path) is None


def test_calibrate_uses_the_champions_saved_calibration_only_when_its_key_matches(
        tmp_path) -> None:
    rng = np.random.default_rng(4)
    reference = _timed_rows(700, rng, 72)
    config = MonitoringConfig(sample_size=100, reference_size=100, calibration_draws=10,
                              detectors=("mmd",))
    saved = calibrate(reference, config, None)
    saved.pop("source")
    used = calibrate(reference, config, tmp_path / "cache", saved=saved)
    assert used["source"] == "champion" and used["null"] == saved["null"]
    # copied into the local cache: the next check reads it there
    assert len(list((tmp_path / "cache").glob("calibration-*.json"))) == 1
    # other settings: the saved null is not this check's, so it is computed, not reused
    other = MonitoringConfig(sample_size=100, reference_size=100, calibration_draws=11,
                             detectors=("mmd",))
    recomputed = calibrate(reference, other, tmp_path / "cache", saved=saved)
    assert recomputed["source"] == "computed" and recomputed["draws"] == 11


def test_tail_rank_leaves_the_tail_share_for_all_but_delta_of_references() -> None:
    from scipy.stats import beta

    r = tail_rank(20_000, 0.005, 0.05)
    assert r < 0.005 * 20_001 and beta.ppf(0.95, r, 20_001 - r) <= 0.005
    assert beta.ppf(0.95, r + 1, 20_000 - r) > 0.005  # the largest such rank
    assert tail_rank(50, 0.005, 0.05) == 1


def test_novelty_test_catches_a_few_percent_of_unlike_flows_and_names_them() -> None:
    rng = np.random.default_rng(4)
    fit, cal = rng.normal(size=(2000, 5)), rng.normal(size=(4000, 5))
    normal = rng.normal(size=(2000, 5))
    novel = np.vstack([normal, rng.normal(6, 0.3, size=(40, 5))])  # 2 % far away
    labels = np.array(["BENIGN"] * 2000)
    quiet = novelty_test(fit, cal, normal, labels)
    loud = novelty_test(fit, cal, novel, labels)
    assert not quiet["is_drift"] and quiet["n_novel"] <= 2 * quiet["expected_at_most"] + 5
    assert loud["is_drift"] and loud["p_value"] < 1e-6 and loud["n_novel"] >= 40
    assert {r["row"] for r in loud["novel"]} <= set(range(2000, 2040))  # most novel first
    assert loud["novel"][0]["nearest_class"] == "BENIGN"


def test_novelty_check_reports_ids_hosts_and_times() -> None:
    rng = np.random.default_rng(5)
    reference = _timed_rows(3000, rng, 72)
    window = pd.concat([_timed_rows(500, rng, 24), _timed_rows(25, rng, 24, shift=4)],
                       ignore_index=True)
    window["flow_uid"] = [f"w{i}" for i in range(len(window))]
    out = novelty_check(reference, window, MonitoringConfig(reference_size=500))
    assert out["is_drift"] and out["n_window"] == 525
    first = out["novel"][0]
    assert first["flow_uid"].startswith("w") and int(first["flow_uid"][1:]) >= 500
    assert first["src_ip"] == "10.0.0.9" and first["event_timestamp"].startswith("2017-07-03")


def test_novelty_is_valid_per_fixed_reference_on_no_drift_windows() -> None:
    """One fixed reference, 60 fresh no-drift windows: flags at most the level (+ noise)."""
    rng = np.random.default_rng(6)
    fit, cal = rng.normal(size=(2000, 4)), rng.normal(size=(8000, 4))
    flags = [novelty_test(fit, cal, rng.normal(size=(1000, 4)))["is_drift"] for _ in range(60)]
    assert sum(flags) <= 6  # 5 % of 60 is 3; Binomial(60, 0.05) exceeds 6 with p ~ 0.03


def test_split_reference_is_the_split_prepare_inputs_uses(tmp_path) -> None:
    from flowguard.monitoring import prepare_inputs, transform

    rng = np.random.default_rng(7)
    reference, window = _timed_rows(600, rng, 72), _timed_rows(200, rng, 24)
    prepared = prepare_inputs(reference, window, tmp_path, n=100, seed=3, reference_size=100)
    fit, ref, rest = split_reference(reference, 3, 100)
    scaler = __import__("json").loads((tmp_path / "scaler.json").read_text())
    assert np.allclose(np.load(prepared["ref_path"]), transform(ref, scaler))
    assert len(fit) == 300 and len(rest) == 200


def test_expected_macro_f1_of_confident_correct_probabilities_is_one() -> None:
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert expected_macro_f1(proba, ["a", "b"])["macro_f1"] == 1.0
    unsure = np.array([[0.6, 0.4]] * 10)
    # predicted a every time: TP_a 6, FP_a 4, FN_b 4 -> F1_a = 12/16, F1_b = 0
    assert expected_macro_f1(unsure, ["a", "b"])["per_class"] == {"a": 0.75, "b": 0.0}


def test_harm_estimate_flags_a_drop_of_confidence() -> None:
    ref = np.array([[0.98, 0.02], [0.03, 0.97]] * 50)
    win = np.array([[0.55, 0.45], [0.45, 0.55]] * 50)
    out = harm_estimate(ref, win, ["BENIGN", "DoS"], max_drop=0.05)
    assert out["is_drift"] and out["drop"] > 0.3
    assert not harm_estimate(ref, ref, ["BENIGN", "DoS"])["is_drift"]


@pytest.mark.parametrize(("p", "rejected"), [
    ({"mmd": 0.02, "classifier": 0.03, "novelty": 0.04}, []),  # 0.02 > 0.05 / 3
    ({"mmd": 0.01, "classifier": 0.02, "novelty": 0.04}, ["mmd", "classifier", "novelty"]),
    ({"mmd": 0.01, "classifier": 0.03, "novelty": 0.04}, ["mmd"]),  # 0.03 > 0.05 / 2
    ({"mmd": 0.5, "classifier": 0.5, "novelty": 1e-9}, ["novelty"]),
])
def test_holm(p: dict[str, float], rejected: list[str]) -> None:
    assert holm(p, 0.05) == rejected


def test_holm_decision_keeps_one_budget_and_lets_harm_flag() -> None:
    det = {"mmd": {"p_value": 0.04, "is_drift": True},
           "classifier": {"p_value": 0.04, "is_drift": True},
           "novelty": {"p_value": 0.5, "is_drift": False},
           "harm": {"drop": 0.2, "is_drift": True}, "performance": None}
    drift, reason = decide(det, "holm", ["mmd", "classifier", "novelty"])
    assert not drift and "holm at 0.05" in reason  # 0.04 > 0.05 / 3: no drift
    drift, reason = decide(det, "holm", ["mmd", "classifier", "novelty", "harm", "performance"])
    assert drift and reason.endswith("flagged: harm)")
