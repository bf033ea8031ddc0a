from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from flowguard.ingest import read_day
from flowguard.synth import PUBLISHED_FILES, generate_week


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


def test_rows_are_internally_consistent(synthetic_week: Path) -> None:
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


def test_class_conditional_structure(synthetic_week: Path) -> None:
    frame = read_day(synthetic_week, date(2017, 7, 7)).dropna(subset=["label"])
    scans = frame[frame["label"] == "PortScan"]
    benign = frame[frame["label"] == "BENIGN"]
    assert scans["dst_port"].nunique() > 0.5 * len(scans)  # scans sweep ports
    assert scans["flow_duration"].median() < benign["flow_duration"].median() / 100
    assert scans["syn_flag_cnt"].mean() > 0.8 > benign["syn_flag_cnt"].mean()
    assert (frame.loc[frame["label"] == "DDoS", "dst_port"] == 80).all()
    assert isinstance(frame, pd.DataFrame)
