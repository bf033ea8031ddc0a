from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.ingest import read_day, read_landing_file
from flowguard.realflows import load_real
from flowguard.schema import canonical_label
from flowguard.synth import (
    ATTACKER,
    INTERNAL_HOSTS,
    MIN_POOL_ROWS,
    PROFILES,
    PUBLISHED_FILES,
    RATE_COLUMNS,
    TIME_COLUMNS,
    VICTIM,
    generate_week,
    week_sources,
)

# Counts and sizes: the generator copies them from the real row it draws.
SIZE_KEY = ["dst_port", "tot_fwd_pkts", "tot_bwd_pkts", "totlen_fwd_pkts", "totlen_bwd_pkts",
            "fwd_pkt_len_max", "bwd_pkt_len_max", "init_fwd_win_byts", "init_bwd_win_byts",
            "fin_flag_cnt", "syn_flag_cnt", "psh_flag_cnt", "ack_flag_cnt"]


@pytest.fixture(scope="module")
def parametric_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The parametric generator's week (the model for classes with no real rows)."""
    out = tmp_path_factory.mktemp("parametric")
    generate_week(out, scale=0.003, min_per_class=30, quirk_rate=0.002, source="parametric")
    return out


def _digest(paths: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()


def test_generator_is_reproducible(tmp_path: Path) -> None:
    a = generate_week(tmp_path / "a", scale=0.001, days=[1])
    b = generate_week(tmp_path / "b", scale=0.001, days=[1])
    c = generate_week(tmp_path / "c", scale=0.001, days=[1], seed=8)
    assert _digest(a) == _digest(b) != _digest(c)


def test_week_schedule_and_published_names(synthetic_week: Path) -> None:
    assert sorted(p.name for p in synthetic_week.glob("*.csv")) == sorted(PUBLISHED_FILES)
    expected = {
        3: {"BENIGN"},
        4: {"BENIGN", "FTP-Patator", "SSH-Patator"},
        5: {"BENIGN", "DoS Hulk", "DoS GoldenEye", "DoS slowloris", "DoS Slowhttptest", "Heartbleed"},
        6: {"BENIGN", "Web Attack - Brute Force", "Web Attack - XSS", "Web Attack - Sql Injection",
            "Infiltration"},
        7: {"BENIGN", "Bot", "PortScan", "DDoS"},
    }
    for day, labels in expected.items():
        frame = read_day(synthetic_week, date(2017, 7, day))
        assert set(frame["label"].dropna()) == labels
        # office hours in the capture's local time (UTC-3): 11:00-20:00 UTC
        hours = frame["event_timestamp"].dropna().dt.hour
        assert hours.between(11, 19).all()


def test_rows_are_internally_consistent(parametric_week: Path) -> None:
    synthetic_week = parametric_week
    frame = read_day(synthetic_week, date(2017, 7, 7))
    frame = frame[frame["parse_error"] == ""]
    frame = frame[(frame["flow_duration"] > 0) & (frame["tot_fwd_pkts"] > 0)]
    f = frame
    assert (f["fwd_pkt_len_min"] <= f["fwd_pkt_len_mean"] + 1e-9).all()
    assert (f["fwd_pkt_len_mean"] <= f["fwd_pkt_len_max"] + 1e-9).all()
    np.testing.assert_allclose(f["totlen_fwd_pkts"], f["tot_fwd_pkts"] * f["fwd_pkt_len_mean"],
                               rtol=1e-4)
    rate = (f["totlen_fwd_pkts"] + f["totlen_bwd_pkts"]) / (f["flow_duration"] / 1e6)
    np.testing.assert_allclose(f["flow_byts_s"], rate, rtol=1e-4)
    np.testing.assert_allclose(f["fwd_header_len"], f["subflow_fwd_pkts"] * f["fwd_seg_size_min"])


def test_class_conditional_structure(parametric_week: Path) -> None:
    synthetic_week = parametric_week
    frame = read_day(synthetic_week, date(2017, 7, 7)).dropna(subset=["label"])
    scans = frame[frame["label"] == "PortScan"]
    benign = frame[frame["label"] == "BENIGN"]
    assert scans["dst_port"].nunique() > 0.5 * len(scans)  # scans sweep ports
    assert scans["flow_duration"].median() < benign["flow_duration"].median() / 100
    assert scans["syn_flag_cnt"].mean() > 0.8 > benign["syn_flag_cnt"].mean()
    assert (frame.loc[frame["label"] == "DDoS", "dst_port"] == 80).all()
    assert isinstance(frame, pd.DataFrame)


def _local(frame: pd.DataFrame) -> pd.Series:
    return frame["event_timestamp"].dt.tz_convert("America/Halifax")


def test_class_counts_follow_the_published_counts(tmp_path: Path) -> None:
    scale = 0.004
    paths = generate_week(tmp_path, scale=scale, min_per_class=5, days=[2, 4])
    for path in paths:
        _, counts = PUBLISHED_FILES[path.name]
        labels = read_landing_file(path, None, 0)["label"].value_counts()
        for label, published in counts.items():
            expected = max(round(published * scale), 5 if label != "BENIGN" else 1)
            assert labels[canonical_label(label)] == expected, (path.name, label)
    assert sum(sum(c.values()) for _, c in PUBLISHED_FILES.values()) == 2_830_743


def test_office_hours_windows_and_testbed_addresses(synthetic_week: Path) -> None:
    for day in range(3, 8):
        frame = read_day(synthetic_week, date(2017, 7, day))
        frame = frame[frame["parse_error"] == ""]
        local = _local(frame)
        for raw_label, profile in PROFILES.items():
            rows = frame["label"] == canonical_label(raw_label)
            if not rows.any():
                continue
            start, end = profile.window
            clock = local[rows].dt.strftime("%H:%M")
            assert clock.min() >= start and clock.max() <= end, (raw_label, clock.min(), clock.max())
        # Addresses: the real row's where its layout has them, else the testbed's.
        real = load_real("pool")
        benign = frame[frame["label"] == "BENIGN"]
        attacks = frame[frame["label"].notna() & (frame["label"] != "BENIGN")]
        assert benign["src_ip"].isin({*INTERNAL_HOSTS, *real["src_ip"].dropna()}).all()
        assert attacks["src_ip"].isin({ATTACKER, *real["src_ip"].dropna()}).all()
        assert attacks["dst_ip"].isin({VICTIM, *real["dst_ip"].dropna()}).all()


def test_heavy_tails_and_full_consistency(parametric_week: Path) -> None:
    synthetic_week = parametric_week
    frame = read_day(synthetic_week, date(2017, 7, 5))
    # rows the generator did not spoil on purpose (quirk_rate > 0 in the shared week)
    f = frame[(frame["parse_error"] == "") & (frame["flow_duration"] > 0)
              & (frame["tot_fwd_pkts"] > 0) & frame["label"].notna()]
    benign = f[f["label"] == "BENIGN"]
    duration = benign["flow_duration"]
    assert duration.quantile(0.99) > 50 * duration.median()  # heavy tail
    assert duration.kurt() > 10
    packets = benign["tot_fwd_pkts"] + benign["tot_bwd_pkts"]
    assert packets.max() > 20 * packets.median()
    eps = 1e-6
    for side in ("fwd", "bwd"):
        lo, mean, hi = (f[f"{side}_pkt_len_{s}"] for s in ("min", "mean", "max"))
        assert ((lo <= mean * (1 + eps) + eps) & (mean <= hi * (1 + eps) + eps)).all()
    assert ((f["pkt_len_min"] <= f["pkt_len_mean"] * (1 + eps) + eps)
            & (f["pkt_len_mean"] <= f["pkt_len_max"] * (1 + eps) + eps)).all()
    np.testing.assert_allclose(f["totlen_bwd_pkts"], f["tot_bwd_pkts"] * f["bwd_pkt_len_mean"],
                               rtol=1e-4)
    seconds = f["flow_duration"] / 1e6
    np.testing.assert_allclose(f["flow_pkts_s"], (f["tot_fwd_pkts"] + f["tot_bwd_pkts"]) / seconds,
                               rtol=1e-4)
    np.testing.assert_allclose(f["fwd_pkts_s"], f["tot_fwd_pkts"] / seconds, rtol=1e-4)
    assert (f["flow_iat_min"] <= f["flow_iat_mean"] * (1 + eps)).all()
    assert (f["flow_iat_max"] <= f["flow_duration"] * (1 + eps)).all()
    assert (f["flow_iat_mean"] <= f["flow_iat_max"] * (1 + eps)).all()
    assert (f["fwd_pkt_len_std"] >= 0).all() and (f["pkt_len_var"] >= 0).all()
    assert (f["subflow_fwd_byts"] == f["totlen_fwd_pkts"]).all()


def test_quirks_include_exact_duplicates(synthetic_week: Path) -> None:
    frame = read_day(synthetic_week, date(2017, 7, 4))
    dups = frame[frame["parse_error"].str.startswith("exact duplicate of line")]
    assert len(dups) >= 1
    first = int(dups["parse_error"].iloc[0].rsplit(" ", 1)[1])
    original = frame[(frame["source_file"] == dups["source_file"].iloc[0])
                     & (frame["source_line"] == first)]
    assert original["flow_id"].item() == dups["flow_id"].iloc[0]
    assert dups["source_line"].iloc[0] == first + 1  # the repeat follows its original


def test_quirks_include_minute_only_timestamps(synthetic_week: Path) -> None:
    path = synthetic_week / "Tuesday-WorkingHours.pcap_ISCX.csv"
    stamps = pd.read_csv(path, encoding="cp1252", usecols=[" Timestamp"])[" Timestamp"].dropna()
    short = stamps[stamps.str.count(":") == 1]
    assert len(short) >= 1
    frame = read_landing_file(path, date(2017, 7, 4), 0)
    parsed = frame.loc[frame["source_line"].isin(short.index + 2), "event_timestamp"]
    assert parsed.notna().all() and (parsed.dt.second == 0).all()


@pytest.fixture(scope="module")
def real_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Friday from the committed real samples, every class with a few real rows real-based."""
    out = tmp_path_factory.mktemp("real")
    generate_week(out, scale=0.003, min_per_class=30, days=[4], min_pool_rows=10)
    return out


def test_classes_come_from_real_flows(real_week: Path) -> None:
    """Every class with real pool rows is drawn from them: counts and sizes as measured."""
    pool = load_real("pool")
    sources = week_sources(min_pool_rows=10)
    real_classes = {label for label, how in sources.items() if how.startswith("real")}
    assert real_classes == set(pool["label"]) and "BENIGN" in real_classes
    frame = read_day(real_week, date(2017, 7, 7))
    frame = frame[(frame["parse_error"] == "") & frame["label"].isin(real_classes)]
    assert len(frame) > 100
    for label, rows in frame.groupby("label"):
        known = set(map(tuple, pool.loc[pool["label"] == label, SIZE_KEY].to_numpy()))
        drawn = list(map(tuple, rows[SIZE_KEY].to_numpy()))
        assert all(k in known for k in drawn), label
    # by default a class is real-based only with MIN_POOL_ROWS real rows in the pool
    counts = pool["label"].value_counts()
    for label, how in week_sources().items():
        assert how.startswith("real") == (counts.get(label, 0) >= MIN_POOL_ROWS), (label, how)


def test_real_rows_keep_their_consistency_under_the_clock_jitter() -> None:
    """One factor per flow scales its times, its inverse the rates: ratios stay as measured."""
    from flowguard.schema import CICIDS2017_COLUMNS, FEATURE_COLUMNS
    from flowguard.synth import _real_flows

    pool = load_real("pool")
    pool = pool[pool["flow_duration"] >= 30].reset_index(drop=True)
    assert len(pool) >= 10
    rng = np.random.default_rng(3)
    picks = np.random.default_rng(3).integers(0, len(pool), 200)
    out = _real_flows(rng, "BENIGN", 200, date(2017, 7, 3), pool)
    out.columns = [c for _, c in CICIDS2017_COLUMNS]
    drawn = pool.iloc[picks].reset_index(drop=True)
    factor = out["flow_duration"] / drawn["flow_duration"]
    assert 0.6 < factor.min() and factor.max() < 1.6 and factor.std() > 0.01
    for col in TIME_COLUMNS:
        np.testing.assert_allclose(out[col], drawn[col] * factor, rtol=1e-6, atol=0.51)
    for col in RATE_COLUMNS:
        np.testing.assert_allclose(out[col], drawn[col] / factor, rtol=1e-9)
    same = [c for c in FEATURE_COLUMNS if c not in {*TIME_COLUMNS, *RATE_COLUMNS}]
    np.testing.assert_array_equal(out[same].to_numpy(float), drawn[same].to_numpy(float))


def test_generator_never_draws_held_out_rows() -> None:
    """The pool and the eval rows are disjoint, and every class with enough rows has both."""
    real = load_real()
    key = real["sample_file"] + ":" + real["source_line"].astype(str)
    assert not set(key[real["real_split"] == "pool"]) & set(key[real["real_split"] == "eval"])
    counts = real.groupby(["label", "real_split"]).size().unstack(fill_value=0)
    big = counts[(counts.sum(axis=1) >= 20)]
    assert (big["eval"] > 0).all() and (big["pool"] > 0).all()


def test_week_manifest_says_where_rows_came_from(real_week: Path) -> None:
    import json

    manifest = json.loads((real_week / "synthetic-week.json").read_text())
    assert manifest["source"] == "real" and manifest["min_pool_rows"] == 10
    assert manifest["classes"] == week_sources(min_pool_rows=10)
