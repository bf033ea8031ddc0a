"""`flowguard drift` outside Airflow: the same check through the drift runtime, on canonical
parquet and on a landing CSV, human and --json output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.shifts import apply_shift, synthetic_rows
from tests.conftest import HANG_GUARD_S

pytestmark = pytest.mark.slow
FLOWGUARD = str(Path(sys.executable).parent / "flowguard")
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    pool = pd.concat([synthetic_rows("BENIGN", 1600, rng), synthetic_rows("DoS Hulk", 300, rng),
                      synthetic_rows("FTP-Patator", 100, rng)], ignore_index=True)
    pool = pool.iloc[rng.permutation(len(pool))].reset_index(drop=True)
    out = tmp_path_factory.mktemp("drift-files")
    paths = {"ref": out / "ref.parquet", "same": out / "same.parquet",
             "new": out / "new.parquet"}
    pool.iloc[:1000].to_parquet(paths["ref"])
    pool.iloc[1000:].to_parquet(paths["same"])
    apply_shift(pool.iloc[1000:], "new_class", rng, label="PortScan", share=0.1).to_parquet(
        paths["new"])
    return paths


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLOWGUARD, "drift", *args], capture_output=True, text=True,
                          timeout=HANG_GUARD_S)


def test_no_drift_then_drift(files: dict[str, Path], drift_python: Path) -> None:
    same = _run(str(files["ref"]), str(files["same"]), "--sample-size", "400",
                "--reference-size", "400", "--detectors", "mmd")
    assert same.returncode == 0, same.stderr[-2000:]
    assert same.stdout.startswith("no drift: no drift (holm at 0.05 over mmd p=")
    assert "top drifted features" in same.stdout
    # 39 calibration draws (floor 0.025) instead of 99: the classifier's calibration costs a
    # fit per draw, minutes on a loaded machine; the decision's logic is the same
    config = files["ref"].parent / "monitoring-39.yaml"
    config.write_text((PROJECT / "config" / "monitoring.yaml").read_text().replace(
        "calibration_draws: 99", "calibration_draws: 39"))
    new = _run(str(files["ref"]), str(files["new"]), "--sample-size", "400",
               "--reference-size", "400", "--json", "--config", str(config))
    assert new.returncode == 1, new.stderr[-2000:]
    result = json.loads(new.stdout)
    assert result["drift"] is True
    assert set(result["p_values"]) == {"mmd", "classifier", "novelty"}
    # a new class at 10 %: the novelty test names its flows; the MMD's permutation test sees
    # it too, and its calibrated p is larger here (the 100 reference rows left for the
    # calibration give 50-row blocks, a wider null than 400-row windows: conservative)
    assert result["p_values"]["novelty"] < 0.05 / 3 and result["detectors"]["novelty"]["novel"]
    mmd = result["detectors"]["mmd"]
    assert mmd["p_value_permutation"] < 0.05 and mmd["backend"] == "fast"
    assert result["p_values"]["mmd"] == max(mmd["p_value_permutation"], mmd["p_value_calibrated"])
    assert result["calibration"]["draws"] == 39
    assert result["n_ref"] == 400 and result["config"]["n_permutations"] == 100
    assert len(result["top_features"]) == 5 and result["top_features"][0]["p_adjusted"] < 0.05


def test_landing_csv_and_bad_input(files: dict[str, Path], synthetic_week: Path,
                                   drift_python: Path, tmp_path: Path) -> None:
    friday = sorted(synthetic_week.glob("Friday*PortScan*.csv"))[0]
    done = _run(str(files["ref"]), str(friday), "--day", "2017-07-07", "--sample-size", "300",
                "--reference-size", "300", "--detectors", "mmd", "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["rows"]["current"] > 100
    assert result["excluded"]["current"]["rows"] >= 1  # the quirky rows, with reasons
    assert result["excluded"]["current"]["examples"][0]["reason"]
    missing = _run(str(files["ref"]), str(tmp_path / "nope.parquet"))
    assert missing.returncode == 2 and "nope.parquet: no such file" in missing.stderr
    bad = _run(str(files["ref"]), str(files["same"]), "--p-value", "0.9")
    assert bad.returncode == 2 and "p_value: 0.9 is outside" in bad.stderr
    # 1000 reference rows: 500 fit the preprocessing, so x_ref cannot have the default 1000
    small = _run(str(files["ref"]), str(files["same"]), "--detectors", "mmd")
    assert small.returncode == 2
    assert "reference_size=1000 but the reference sample has 1000 rows" in small.stderr
    assert "at most 500" in small.stderr
