"""Every published layout and every malformed input, each on a small file the test writes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard.ingest import LandingError, iter_landing_chunks, read_landing_file, sniff
from flowguard.schema import (
    LAYOUTS,
    MACHINE_LEARNING_CVE_HEADERS,
    TRAFFIC_LABELLING_HEADERS,
    UNSW_NB15_RAW_COLUMNS,
    UNSW_NB15_SET_COLUMNS,
    canonical_unsw_category,
)
from tests.receivers import cic_row

MONDAY = date(2017, 7, 3)


def _cic_lines(rows: list[dict[str, object]], headers: list[str] = TRAFFIC_LABELLING_HEADERS
               ) -> list[str]:
    lines = [",".join(f" {h}" if i else h for i, h in enumerate(headers))]
    lines += [",".join(str(row[h]) for h in headers) for row in rows]
    return lines


def _write(path: Path, lines: list[str], end: str = "\n", encoding: str = "cp1252") -> Path:
    path.write_bytes((end.join(lines) + end).encode(encoding))
    return path


def _unsw_raw_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {h: 1 for h, _ in UNSW_NB15_RAW_COLUMNS}
    row.update({"srcip": "59.166.0.0", "sport": 1390, "dstip": "149.171.126.6", "dsport": 53,
                "proto": "udp", "state": "CON", "dur": 0.001, "service": "dns",
                "Stime": 1421927414, "Ltime": 1421927414, "ct_flw_http_mthd": 0,
                "is_ftp_login": 0, "attack_cat": "", "Label": 0})
    row.update(overrides)
    return row


def _unsw_raw_lines(rows: list[dict[str, object]]) -> list[str]:
    return [",".join(str(r[h]) for h, _ in UNSW_NB15_RAW_COLUMNS) for r in rows]


# ---------------------------------------------------------------- CICIDS2017 quirks


def test_timestamp_formats_and_latin1_bytes(tmp_path: Path) -> None:
    rows = [
        cic_row(**{"Timestamp": "03/07/2017 08:55:58"}),  # zero-padded, seconds
        cic_row(**{"Timestamp": "3/7/2017 1:05"}),  # no seconds, 12-hour clock: 13:05
        cic_row(**{"Timestamp": "3/7/2017 01:05:00 PM"}),  # explicit AM/PM
        cic_row(**{"Timestamp": "2017-07-03 16:00:00"}),  # ISO, 24-hour
        cic_row(**{"Flow ID": "caf\xe9-\xb5", "Label": "Web Attack \x96 Brute Force"}),
    ]
    path = _write(tmp_path / "Monday-WorkingHours.pcap_ISCX.csv", _cic_lines(rows),
                  encoding="latin-1")
    frame = read_landing_file(path, MONDAY, 0)
    local = frame["event_timestamp"].dt.tz_convert("America/Halifax").dt.strftime("%H:%M")
    assert local.tolist() == ["08:55", "13:05", "13:05", "16:00", "09:15"]
    assert frame.loc[4, "flow_id"] == "caf\xe9-\xb5"
    assert frame.loc[4, "label"] == "Web Attack - Brute Force"
    assert frame.loc[4, "label_family"] == "web_attack"
    assert (frame["parse_error"] == "").all()


def test_negative_durations_iat_and_windows_are_kept(tmp_path: Path) -> None:
    row = cic_row(**{"Flow Duration": -1, "Flow IAT Min": -12, "Init_Win_bytes_forward": -1,
                      "Flow Bytes/s": "Infinity", "Flow Packets/s": ""})
    frame = read_landing_file(_write(tmp_path / "Monday.csv", _cic_lines([row])), MONDAY, 0)
    assert frame.loc[0, "flow_duration"] == -1 and frame.loc[0, "init_fwd_win_byts"] == -1
    assert frame.loc[0, "parse_error"] == ""
    assert np.isnan(frame.loc[0, "flow_byts_s"]) and np.isnan(frame.loc[0, "flow_pkts_s"])


def test_exact_duplicates_quarantined_where_rows_have_identity(tmp_path: Path) -> None:
    rows = [cic_row(), cic_row(**{"Source Port": 50001}), cic_row()]
    frame = read_landing_file(_write(tmp_path / "Monday.csv", _cic_lines(rows)), MONDAY, 0)
    assert frame["parse_error"].tolist() == ["", "", "exact duplicate of line 2"]
    # Without identifiers, identical rows are distinct flows: kept.
    cve = _write(tmp_path / "Monday-cve.csv", _cic_lines(rows, MACHINE_LEARNING_CVE_HEADERS))
    frame = read_landing_file(cve, MONDAY, 0)
    assert sniff(cve)[0].name == "cicids2017_machine_learning_cve"
    assert (frame["parse_error"] == "").all() and len(frame) == 3


def test_chunking_gives_the_same_rows_as_one_read(tmp_path: Path) -> None:
    rows = [cic_row(**{"Source Port": 40000 + i, "Flow Duration": 1000 + i}) for i in range(23)]
    lines = _cic_lines(rows)
    lines.insert(9, "," * 84)  # an empty row in the middle, and a bad line
    lines.insert(15, "1,2,3")
    path = _write(tmp_path / "Monday.csv", lines)
    whole = read_landing_file(path, MONDAY, 0, chunk_rows=1000)
    chunks = list(iter_landing_chunks(path, MONDAY, 0, chunk_rows=4))
    assert len(chunks) == 7
    parts = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, parts)
    assert whole["source_line"].tolist() == list(range(2, 27))
    assert whole.loc[whole["source_line"] == 10, "parse_error"].item() == "empty row"
    assert whole.loc[whole["source_line"] == 16, "parse_error"].item() == "missing fields: 3 of 85"


# ---------------------------------------------------------------- malformed inputs


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"empty file \(0 bytes\)"),
    (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
    (b"\x00\x01\x02\x03binary\x00\xff" * 50, r":1: binary data, not a text CSV \(NUL byte"),
    (b"Flow ID; Source IP; Label\n1;2;3\n", r":1: cannot split .*delimited by ';'"),
    (b"Flow ID\tSource IP\tLabel\n", r":1: cannot split .*delimited by '\\t'"),
    (b"Destination Port,Flow Duration,Bogus,Label\n1,2,3,x\n", ":1: unknown column 'Bogus'"),
    (b"Destination Port,Flow Duration,Label\n1,2,x\n", r":1: missing columns \['tot_fwd_pkts'"),
    (b"hello,world\n1,2\n", ":1: header not recognised"),
])
def test_unreadable_files_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "Monday-bad.csv"
    path.write_bytes(content)
    with pytest.raises(LandingError, match=message) as info:
        list(iter_landing_chunks(path, MONDAY))
    assert str(path) in str(info.value)


def test_header_only_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "Monday.csv", _cic_lines([]))
    with pytest.raises(LandingError, match=r"Monday\.csv: header only \(line 1\), no data rows"):
        read_landing_file(path, MONDAY, 0)


def test_bad_lines_become_rows_with_reasons(tmp_path: Path) -> None:
    good = _cic_lines([cic_row()])[1]
    lines = _cic_lines([cic_row(**{"Source Port": 1})])
    lines += [
        good + ",extra",  # extra field
        ",".join(good.split(",")[:40]),  # missing fields (not at the end of the file)
        good.replace("BENIGN", "BEN\x00IGN"),  # binary garbage in a line
        good.replace(",300,", ",three hundred,", 1),  # text in a numeric field
        ",,,,,,,,,,",  # empty but for commas
        ",".join(good.split(",")[:30]),  # truncated last line, no newline
    ]
    path = tmp_path / "Monday.csv"
    path.write_bytes("\n".join(lines).encode("cp1252"))
    frame = read_landing_file(path, MONDAY, 0)
    errors = dict(zip(frame["source_line"], frame["parse_error"], strict=True))
    assert errors == {
        2: "",
        3: "extra fields: 86, expected 85",
        4: "missing fields: 40 of 85",
        5: "binary data (NUL byte) in the line",
        6: "unparseable totlen_fwd_pkts",
        7: "empty row",
        8: "truncated line: 30 of 85 fields (the file ends mid-row)",
    }
    assert frame["flow_uid"].is_unique and (frame["source_file"] == "Monday.csv").all()


def test_quoted_fields_are_counted_as_csv(tmp_path: Path) -> None:
    row = cic_row(**{"Flow ID": '"a,b"'})
    frame = read_landing_file(_write(tmp_path / "Monday.csv", _cic_lines([row])), MONDAY, 0)
    assert frame.loc[0, "flow_id"] == "a,b" and frame.loc[0, "parse_error"] == ""


# ---------------------------------------------------------------- UNSW-NB15


@pytest.mark.parametrize(("raw", "expected"), [
    (" Fuzzers ", "Fuzzers"), ("Fuzzers", "Fuzzers"), ("Backdoors", "Backdoor"),
    ("Backdoor", "Backdoor"), (" Reconnaissance ", "Reconnaissance"), (" Shellcode ", "Shellcode"),
    ("Exploit", "Exploits"), ("worms", "Worms"), ("", "Normal"), (None, "Normal"),
    ("normal", "Normal"), ("Spam", None),
])
def test_unsw_categories(raw: object, expected: str | None) -> None:
    assert canonical_unsw_category(raw) == expected


def _features_file(path: Path, typo_free: bool = False) -> None:
    lines = ["No.,Name,Type ,Description"]
    for i, (name, _) in enumerate(UNSW_NB15_RAW_COLUMNS, start=1):
        lines.append(f"{i},{name.replace(' ', '') if typo_free else name},integer,desc \xe9")
    path.write_bytes("\n".join(lines).encode("latin-1"))


@pytest.mark.parametrize("with_features_file", [True, False])
def test_unsw_raw_part(tmp_path: Path, with_features_file: bool) -> None:
    if with_features_file:
        _features_file(tmp_path / "NUSW-NB15_features.csv")
    rows = [
        _unsw_raw_row(),
        _unsw_raw_row(sport="0x000b", dsport="-", proto="icmp", attack_cat=" Fuzzers ", Label=1),
        _unsw_raw_row(attack_cat="Backdoors", Label=1, ct_flw_http_mthd=" ", is_ftp_login="",
                      ct_ftp_cmd=" "),
        _unsw_raw_row(attack_cat="Backdoor", Label=1, sbytes="lots"),
        _unsw_raw_row(attack_cat="Exploits", Label=0),  # category says attack, label says not
        _unsw_raw_row(dsport="0xzz"),
        _unsw_raw_row(),  # exact duplicate of line 1
    ]
    path = _write(tmp_path / "UNSW-NB15_1.csv", _unsw_raw_lines(rows), end="\r\n")
    assert sniff(path)[0].name == "unsw_nb15_raw"
    frame = read_landing_file(path)
    assert frame["source_line"].tolist() == list(range(1, 8))
    assert frame["label"].tolist()[:5] == ["Normal", "Fuzzers", "Backdoor", "Backdoor", "Exploits"]
    assert frame["label_family"].tolist()[:3] == ["benign", "fuzzing", "backdoor"]
    assert frame.loc[1, "src_port"] == 11 and np.isnan(frame.loc[1, "dst_port"])
    assert frame.loc[1, "protocol"] == 1 and frame.loc[0, "protocol"] == 17
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp("2015-01-22 11:50:14", tz="UTC")
    assert np.isnan(frame.loc[2, "ct_flw_http_mthd"]) and np.isnan(frame.loc[2, "ct_ftp_cmd"])
    assert frame.loc[2, "parse_error"] == ""
    assert frame["parse_error"].tolist()[3:] == [
        "unparseable sbytes", "is_attack disagrees with attack_cat", "unparseable dst_port",
        "exact duplicate of line 1"]


def test_unsw_features_file_that_disagrees_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "NUSW-NB15_features.csv").write_text("No.,Name\n1,srcip\n2,dstip\n")
    path = _write(tmp_path / "UNSW-NB15_2.csv", _unsw_raw_lines([_unsw_raw_row()]))
    with pytest.raises(LandingError, match=r"NUSW-NB15_features\.csv: its 2 names differ"):
        sniff(path)


def _unsw_set(path: Path, rows: list[dict[str, object]]) -> Path:
    headers = [h for h, _ in UNSW_NB15_SET_COLUMNS]
    lines = [",".join(headers)]
    for i, row in enumerate(rows, start=1):
        full = {h: 1 for h in headers} | {"id": i, "proto": "tcp", "service": "-",
                                          "state": "FIN", "dur": 0.12} | row
        lines.append(",".join(str(full[h]) for h in headers))
    return _write(path, lines)


def test_unsw_set_layout(tmp_path: Path) -> None:
    path = _unsw_set(tmp_path / "UNSW_NB15_training-set.csv", [
        {"attack_cat": "Normal", "label": 0}, {"attack_cat": "Generic", "label": 1},
        {"attack_cat": "Normal", "label": 0}])
    layout, _ = sniff(path)
    assert layout is LAYOUTS["unsw_nb15_set"]
    frame = read_landing_file(path)
    assert frame["label"].tolist() == ["Normal", "Generic", "Normal"]
    assert frame["record_id"].tolist() == [1, 2, 3]
    assert frame["event_timestamp"].isna().all() and frame["src_ip"].isna().all()
    assert (frame["parse_error"] == "").all()  # identical rows kept: no identity in this layout


# ---------------------------------------------------------------- validate outside Airflow


def test_validate_folder_of_mixed_layouts(tmp_path: Path, home: Path) -> None:
    from flowguard.batch import validate_path

    land = tmp_path / "land"
    land.mkdir()
    _features_file(land / "NUSW-NB15_features.csv")
    _write(land / "UNSW-NB15_1.csv", _unsw_raw_lines(
        [_unsw_raw_row(sport=1000 + i, ct_ftp_cmd=" " if i % 2 else 0) for i in range(30)]
        + [_unsw_raw_row(sbytes=-5), _unsw_raw_row(attack_cat="Spam", Label=1)]))
    _unsw_set(land / "UNSW_NB15_testing-set.csv",
              [{"attack_cat": " Reconnaissance ", "label": 1}] * 5 + [{"dur": -1, "label": 0}])
    cic = [cic_row(**{"Source Port": 40000 + i}) for i in range(20)]
    cic.append(cic_row(**{"Total Fwd Packets": -1}))
    _write(land / "Monday-WorkingHours.pcap_ISCX.csv", _cic_lines(cic) + ["," * 84])
    (land / "Tuesday-broken.csv").write_bytes(b"")
    report = validate_path(land, tmp_path / "out", home / "gx", chunk_rows=8)

    assert (report["files_ok"], report["files_failed"]) == (3, 1)
    assert report["rows_in"] == 32 + 6 + 22
    assert report["rows_in"] == report["rows_valid"] + report["rows_quarantined"]
    by_name = {Path(f["file"]).name: f for f in report["files"]}
    assert "empty file" in by_name["Tuesday-broken.csv"]["error"]
    unsw = by_name["UNSW-NB15_1.csv"]
    assert (unsw["layout"], unsw["rows_quarantined"], unsw["chunks"]) == ("unsw_nb15_raw", 2, 4)
    quarantine = pd.read_parquet(unsw["quarantine_path"])
    assert quarantine["source_line"].tolist() == [31, 32]
    assert "expect_column_values_to_be_between(sbytes)" in quarantine["quarantine_reasons"].iloc[0]
    assert "expect_column_values_to_not_be_null(label)" in quarantine["quarantine_reasons"].iloc[1]
    valid = pd.read_parquet(unsw["valid_path"])
    assert len(valid) == 30 and valid["flow_uid"].is_unique
    monday = by_name["Monday-WorkingHours.pcap_ISCX.csv"]
    assert (monday["rows_valid"], monday["rows_quarantined"]) == (20, 2)
    assert Path(report["data_docs"]).exists()
    docs = Path(report["data_docs"]).parent
    assert "unsw_nb15_canonical_flows" in " ".join(p.name for p in docs.rglob("*"))


def test_validate_rejects_a_file_whose_labels_are_foreign(tmp_path: Path, home: Path) -> None:
    from flowguard.batch import validate_path

    rows = [cic_row(**{"Source Port": 40000 + i, "Label": "Ransomware"}) for i in range(10)]
    path = _write(tmp_path / "Monday.csv", _cic_lines(rows))
    report = validate_path(path, tmp_path / "out", home / "gx")
    assert report["files_failed"] == 1
    assert "labels outside the cicids2017_canonical_flows taxonomy" in report["files"][0]["error"]
    assert "Ransomware" in report["files"][0]["error"]
    assert not list((tmp_path / "out").rglob("*.parquet*"))  # a failed file leaves no output


def test_cli_validate_json(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture) -> None:
    from flowguard.cli import main

    path = _write(tmp_path / "Monday.csv", _cic_lines([cic_row(), cic_row()]))
    assert main(["validate", str(path), "--out", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_in"], report["rows_valid"], report["rows_quarantined"]) == (2, 1, 1)
    assert Path(report["files"][0]["valid_path"]).exists()
    assert main(["validate", str(tmp_path / "missing.csv"), "--json"]) == 2
    assert "no such file or folder" in json.loads(capsys.readouterr().err)["error"]
