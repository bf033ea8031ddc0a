"""Controlled shifts: each one changes what it says and nothing else, without repeating rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowguard.schema import FEATURE_COLUMNS
from flowguard.shifts import BYTE_COUNTERS, ShiftError, apply_shift, synthetic_rows


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = [synthetic_rows("BENIGN", 800, rng), synthetic_rows("DoS Hulk", 150, rng),
             synthetic_rows("FTP-Patator", 50, rng)]
    return pd.concat(parts, ignore_index=True)


def _shares(frame: pd.DataFrame) -> pd.Series:
    return frame["label"].value_counts(normalize=True)


def test_synthetic_rows_are_canonical_and_finite() -> None:
    rows = synthetic_rows("Web Attack - XSS", 20, np.random.default_rng(1))
    assert list(rows.columns) == [*FEATURE_COLUMNS, "label"]
    assert np.isfinite(rows[FEATURE_COLUMNS].to_numpy()).all()
    assert (rows["label"] == "Web Attack - XSS").all()
    with pytest.raises(ShiftError, match="unknown class"):
        synthetic_rows("Nope", 5, np.random.default_rng(1))


def test_none_is_identity(pool: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(apply_shift(pool, "none", np.random.default_rng(0)), pool)


@pytest.mark.parametrize("share", [0.01, 0.05, 0.3])
def test_new_class_at_share(pool: pd.DataFrame, share: float) -> None:
    out = apply_shift(pool, "new_class", np.random.default_rng(0), label="PortScan", share=share)
    assert abs(_shares(out)["PortScan"] - share) < 0.002
    kept = out[out["label"] != "PortScan"]
    assert len(kept) == len(pool)  # nothing of the original is dropped or repeated
    assert not out.duplicated().any()


def test_new_class_from_a_pool(pool: pd.DataFrame) -> None:
    donors = synthetic_rows("Bot", 100, np.random.default_rng(5))
    out = apply_shift(pool, "new_class", np.random.default_rng(0), label="Bot", share=0.05,
                      pool=donors)
    assert set(out.loc[out["label"] == "Bot", "flow_duration"]) <= set(donors["flow_duration"])
    with pytest.raises(ShiftError, match="pool has 100 rows"):
        apply_shift(pool, "new_class", np.random.default_rng(0), label="Bot", share=0.5,
                    pool=donors)


def test_class_mix_and_benign_surge(pool: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    mixed = apply_shift(pool, "class_mix", rng, weights={"DoS Hulk": 0.5})
    shares = _shares(mixed)
    assert abs(shares["DoS Hulk"] - 0.5) < 0.01
    # the classes not named keep their relative proportions
    assert abs(shares["BENIGN"] / shares["FTP-Patator"] - 16) < 1
    assert not mixed.duplicated().any()
    surge = apply_shift(pool, "benign_surge", rng, factor=3)
    before, after = _shares(pool), _shares(surge)
    odds = (after["BENIGN"] / (1 - after["BENIGN"])) / (before["BENIGN"] / (1 - before["BENIGN"]))
    assert abs(odds - 3) < 0.15
    with pytest.raises(ShiftError, match="factor > 1"):
        apply_shift(pool, "benign_surge", rng, factor=0.5)
    with pytest.raises(ShiftError, match="use new_class"):
        apply_shift(pool, "class_mix", rng, weights={"Bot": 0.1})


def test_byte_scale_touches_byte_counters_only(pool: pd.DataFrame) -> None:
    out = apply_shift(pool, "byte_scale", np.random.default_rng(0), factor=2.0)
    np.testing.assert_allclose(out[BYTE_COUNTERS], pool[BYTE_COUNTERS] * 2.0)
    others = [c for c in FEATURE_COLUMNS if c not in BYTE_COUNTERS]
    pd.testing.assert_frame_equal(out[others], pool[others])


def test_remove_class(pool: pd.DataFrame) -> None:
    out = apply_shift(pool, "remove_class", np.random.default_rng(0), label="DoS Hulk")
    assert "DoS Hulk" not in set(out["label"]) and len(out) == len(pool) - 150
    with pytest.raises(ShiftError, match="not in the frame"):
        apply_shift(out, "remove_class", np.random.default_rng(0), label="DoS Hulk")


def test_bad_input_is_named(pool: pd.DataFrame) -> None:
    with pytest.raises(ShiftError, match="unknown shift kind 'warp'"):
        apply_shift(pool, "warp", np.random.default_rng(0))
    with pytest.raises(ShiftError, match="missing columns"):
        apply_shift(pool.drop(columns=["label"]), "none", np.random.default_rng(0))
