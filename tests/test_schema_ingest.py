from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.ingest import LandingError, canonical_columns, files_for_day, read_landing_file
from flowguard.schema import (
    FEATURE_COLUMNS,
    MACHINE_LEARNING_CVE_HEADERS,
    TRAFFIC_LABELLING_HEADERS,
    canonical_label,
)
from tests.receivers import cic_row


@pytest.mark.parametrize(("raw", "expected"), [
    ("BENIGN", "BENIGN"),
    (" benign ", "BENIGN"),
    ("Web Attack \x96 Brute Force", "Web Attack - Brute Force"),  # cp1252 byte read as latin-1
    ("Web Attack \ufffd XSS", "Web Attack - XSS"),  # mangled UTF-8 replacement form
    ("Web Attack – Sql Injection", "Web Attack - Sql Injection"),
    ("DoS slowloris", "DoS slowloris"),
    ("PortScan", "PortScan"),
    ("Infiltration", "Infiltration"),
    ("UNKNOWN-ATTACK", None),
    ("", None),
])
def test_canonical_label(raw: str, expected: str | None) -> None:
    assert canonical_label(raw) == expected


def test_feature_columns_exclude_identifiers_and_duplicate() -> None:
    assert len(FEATURE_COLUMNS) == 77
    assert "fwd_header_len" in FEATURE_COLUMNS
    assert not {"fwd_header_len_dup", "label", "timestamp", "src_ip"} & set(FEATURE_COLUMNS)


@pytest.mark.parametrize("headers", [TRAFFIC_LABELLING_HEADERS, MACHINE_LEARNING_CVE_HEADERS])
def test_canonical_columns_both_layouts(headers: list[str]) -> None:
    names = canonical_columns([f" {h}" for h in headers], Path("x.csv"))
    assert names.count("fwd_header_len") == 1 and names.count("fwd_header_len_dup") == 1
    assert names[-1] == "label"


def test_canonical_columns_names_the_file_and_column() -> None:
    with pytest.raises(LandingError, match=r"x\.csv:1: unknown column ' Bogus'"):
        canonical_columns([" Bogus", *TRAFFIC_LABELLING_HEADERS], Path("x.csv"))
    with pytest.raises(LandingError, match="missing columns"):
        canonical_columns(TRAFFIC_LABELLING_HEADERS[:20], Path("x.csv"))


def _write(path: Path, rows: list[dict[str, object]], trailing_blank: bool = False) -> Path:
    lines = [",".join(f" {h}" if i else h for i, h in enumerate(TRAFFIC_LABELLING_HEADERS))]
    for row in rows:
        lines.append(",".join(str(row[h]) for h in TRAFFIC_LABELLING_HEADERS))
    if trailing_blank:
        lines.append("," * (len(TRAFFIC_LABELLING_HEADERS) - 1))
    path.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    return path


def test_read_landing_file_quirks(tmp_path: Path) -> None:
    rows = [
        cic_row(),
        cic_row(**{"Flow Bytes/s": "Infinity", "Flow Packets/s": "NaN"}),  # repairable
        cic_row(**{"Flow Duration": 0, "Flow Bytes/s": "Infinity"}),  # not repairable
        cic_row(**{"Timestamp": "3/7/2017 2:30", "Label": "Web Attack – XSS"}),  # 2:30 PM
        cic_row(**{"Flow IAT Mean": "n/a"}),
    ]
    frame = read_landing_file(_write(tmp_path / "Monday.csv", rows, trailing_blank=True),
                              date(2017, 7, 3), file_index=1)
    assert len(frame) == 6  # nothing dropped, the blank row included
    assert frame["source_line"].tolist() == [2, 3, 4, 5, 6, 7]
    assert frame["flow_uid"].is_unique and frame["flow_uid"].iloc[0] == 2017070310000002
    assert frame.loc[1, "flow_byts_s"] == pytest.approx(200.0)  # (300 + 100) / 2 s
    assert frame.loc[1, "flow_pkts_s"] == pytest.approx(2.0)
    assert np.isnan(frame.loc[2, "flow_byts_s"])
    assert frame.loc[3, "event_timestamp"] == pd.Timestamp("2017-07-03 17:30", tz="UTC")
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp("2017-07-03 12:15", tz="UTC")
    assert frame.loc[3, "label"] == "Web Attack - XSS"
    assert "unparseable flow_iat_mean" in frame.loc[4, "parse_error"]
    assert frame.loc[5, "parse_error"] == "empty row"
    assert (frame.loc[:3, "parse_error"] == "").all()


def test_read_machine_learning_cve_layout_imputes_times(tmp_path: Path) -> None:
    path = tmp_path / "Tuesday-WorkingHours.pcap_ISCX.csv"
    frame = pd.DataFrame([cic_row()] * 3)[MACHINE_LEARNING_CVE_HEADERS]
    frame.columns = [f" {h}" for h in MACHINE_LEARNING_CVE_HEADERS]
    frame.to_csv(path, index=False)
    out = read_landing_file(path, date(2017, 7, 4), 0)
    assert len(out) == 3 and (out["parse_error"] == "").all()
    assert out["event_timestamp"].is_monotonic_increasing
    assert out["event_timestamp"].dt.date.eq(date(2017, 7, 4)).all()


def test_files_for_day_matches_published_names(tmp_path: Path) -> None:
    for name in ("Wednesday-workingHours.pcap_ISCX.csv", "Friday-WorkingHours-Morning.pcap_ISCX.csv",
                 "Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in files_for_day(tmp_path, date(2017, 7, 5))] == [
        "Wednesday-workingHours.pcap_ISCX.csv"]
    assert len(files_for_day(tmp_path, date(2017, 7, 7))) == 2
    assert files_for_day(tmp_path, date(2017, 7, 3)) == []
