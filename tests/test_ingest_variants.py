"""The forms in which the published files circulate, and the layouts added beside CICIDS2017.

A UTF-8 byte-order mark on every layout, pandas re-saves (``.1`` suffix, stripped names, an
index column), the improved CICIDS2017 (Engelen et al.) with its attempted attacks and their
training default, CSE-CIC-IDS2018, the fix named by every refusal, and the accounting of a
folder run (refused file, sub-folder, skipped files). Each on a small file the test writes;
the real samples under ``data/real/`` are read when present.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flowguard.ingest import LandingError, read_landing_file, sniff
from flowguard.schema import (
    CICIDS2017_IMPROVED_COLUMNS,
    CSE_CIC_IDS2018_COLUMNS,
    CSE_CIC_IDS2018_IDENTIFIERS,
    FEATURE_COLUMNS,
    LAYOUTS,
    MACHINE_LEARNING_CVE_HEADERS,
    TRAFFIC_LABELLING_HEADERS,
    canonical_ids2018_label,
    canonical_improved_label,
    header_key,
    is_attempted,
)
from tests.receivers import cic_row
from tests.test_ingest_formats import (
    _cic_lines,
    _features_file,
    _unsw_raw_lines,
    _unsw_raw_row,
    _unsw_set,
    _write,
)

BOM = b"\xef\xbb\xbf"
IMPROVED_HEADERS = [h for h, _ in CICIDS2017_IMPROVED_COLUMNS]
IDS2018_HEADERS = [h for h, _ in CSE_CIC_IDS2018_COLUMNS]
IDS2018_FLOW_ID_HEADERS = [h for h, _ in CSE_CIC_IDS2018_IDENTIFIERS] + IDS2018_HEADERS
REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def improved_row(i: int = 1, **overrides: object) -> dict[str, object]:
    """One plausible improved-CICIDS2017 row (published header names)."""
    row: dict[str, object] = {h: 1 for h in IMPROVED_HEADERS}
    row.update({"id": i, "Flow ID": "192.168.10.5-1.2.3.4-50000-443-6", "Src IP": "192.168.10.5",
                "Src Port": 50000 + i, "Dst IP": "1.2.3.4", "Dst Port": 443, "Protocol": 6,
                "Timestamp": "2017-07-04 12:17:53.838272", "Flow Duration": 2_000_000,
                "Total Fwd Packet": 3, "Total Bwd packets": 1,
                "Total Length of Fwd Packet": 300, "Total Length of Bwd Packet": 100,
                "Flow Bytes/s": 200.0, "Flow Packets/s": 2.0, "ICMP Code": -1, "ICMP Type": -1,
                "Label": "BENIGN", "Attempted Category": -1})
    row.update(overrides)
    return row


def ids2018_row(i: int = 1, **overrides: object) -> dict[str, object]:
    """One plausible CSE-CIC-IDS2018 row (published header names, 84-column superset)."""
    row: dict[str, object] = {h: 1 for h in IDS2018_FLOW_ID_HEADERS}
    row.update({"Flow ID": "172.31.69.25-18.219.211.138-80-54000-6", "Src IP": "18.219.211.138",
                "Src Port": 54000 + i, "Dst IP": "172.31.69.25", "Dst Port": 80, "Protocol": 6,
                "Timestamp": "15/02/2018 10:30:00", "Flow Duration": 654929,
                "Tot Fwd Pkts": 5, "Tot Bwd Pkts": 3, "TotLen Fwd Pkts": 1024,
                "TotLen Bwd Pkts": 512, "Flow Byts/s": 2345.2, "Flow Pkts/s": 12.2,
                "Label": "Benign"})
    row.update(overrides)
    return row


def _lines(headers: list[str], rows: list[dict[str, object]]) -> list[str]:
    return [",".join(headers)] + [",".join(str(r[h]) for h in headers) for r in rows]


# ---------------------------------------------------------------- header keys


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_no_two_published_names_of_a_layout_share_a_key(name: str) -> None:
    keys = [header_key(h) for h in LAYOUTS[name].published]
    repeated = {k for k in keys if keys.count(k) > 1}
    assert repeated <= {"fwdheaderlength"}, repeated  # CICIDS2017's duplicate, by position


def test_no_two_layouts_share_a_header() -> None:
    for a, b in itertools.combinations(LAYOUTS.values(), 2):
        assert sorted(map(header_key, a.published)) != sorted(map(header_key, b.published))


def test_header_key_ignores_bom_suffix_case_space_punctuation() -> None:
    assert {header_key(h) for h in ("\ufeffFwd Header Length.1", " fwd_header_length",
                                    "FWD HEADER LENGTH", "Fwd Header Length")} == {
        "fwdheaderlength"}


# ---------------------------------------------------------------- byte-order mark


def _bom_cases(tmp_path: Path) -> dict[str, tuple[Path, str, object]]:
    """One file per layout; (path, a column of its first row, its expected value)."""
    tl = _write(tmp_path / "Monday-tl.csv", _cic_lines([cic_row()]))
    cve = _write(tmp_path / "Monday-cve.csv", _cic_lines([cic_row()], MACHINE_LEARNING_CVE_HEADERS))
    improved = _write(tmp_path / "tuesday.csv", _lines(IMPROVED_HEADERS, [improved_row(7)]))
    ids = _write(tmp_path / "Thursday-15-02-2018.csv", _lines(IDS2018_HEADERS, [ids2018_row()]))
    ids_fid = _write(tmp_path / "Tuesday-20-02-2018.csv",
                     _lines(IDS2018_FLOW_ID_HEADERS, [ids2018_row()]))
    unsw_set = _unsw_set(tmp_path / "UNSW_NB15_training-set.csv", [{"attack_cat": "Normal",
                                                                      "label": 0}])
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    unsw_raw = _write(raw_dir / "UNSW-NB15_1.csv", _unsw_raw_lines([_unsw_raw_row()]))
    return {"cicids2017_traffic_labelling": (tl, "flow_id", "a-b-1-2-6"),
            "cicids2017_machine_learning_cve": (cve, "dst_port", 443),
            "cicids2017_improved": (improved, "record_id", 7),
            "cse_cic_ids2018": (ids, "dst_port", 80),
            "cse_cic_ids2018_flow_id": (ids_fid, "flow_id",
                                        "172.31.69.25-18.219.211.138-80-54000-6"),
            "unsw_nb15_set": (unsw_set, "record_id", 1),
            "unsw_nb15_raw": (unsw_raw, "src_ip", "59.166.0.0")}


def test_every_layout_has_a_bom_case(tmp_path: Path) -> None:
    assert set(_bom_cases(tmp_path)) == set(LAYOUTS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_utf8_bom_is_stripped_in_every_layout(tmp_path: Path, name: str) -> None:
    path, column, expected = _bom_cases(tmp_path)[name]
    plain = read_landing_file(path)
    path.write_bytes(BOM + path.read_bytes())
    layout, names = sniff(path)
    assert layout.name == name and not names[0].startswith("\ufeff")
    frame = read_landing_file(path)
    assert len(frame) == len(plain) == 1
    assert frame.loc[0, column] == expected and frame.loc[0, "parse_error"] == ""
    pd.testing.assert_frame_equal(frame, plain)


def test_utf16_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "Monday.csv"
    path.write_bytes("\n".join(_cic_lines([cic_row()])).encode("utf-16"))
    with pytest.raises(LandingError, match=r"Monday\.csv:1: UTF-16 text .* re-save it as UTF-8"):
        sniff(path)


# ---------------------------------------------------------------- pandas re-saves


@pytest.mark.parametrize("headers", [TRAFFIC_LABELLING_HEADERS, MACHINE_LEARNING_CVE_HEADERS])
@pytest.mark.parametrize("index", ["index", "unnamed", "none"])
def test_pandas_resave_reads_like_the_published_file(tmp_path: Path, headers: list[str],
                                                     index: str) -> None:
    rows = [cic_row(**{"Source Port": 40000 + i, "Label": lab})
            for i, lab in enumerate(["BENIGN", "DDoS", "Web Attack \x96 XSS"])]
    published = _write(tmp_path / "Friday-published.csv", _cic_lines(rows, headers),
                       encoding="latin-1")
    frame = pd.read_csv(published, encoding="latin-1")
    assert "Fwd Header Length.1" in [c.strip() for c in frame.columns]  # what pandas does
    frame.columns = frame.columns.str.strip()
    resaved = tmp_path / "Friday-resaved.csv"
    if index == "unnamed":  # read back with its index, saved again without: "Unnamed: 0"
        frame.to_csv(resaved)
        pd.read_csv(resaved).to_csv(resaved, index=False)
        assert resaved.read_text().startswith("Unnamed: 0,")
    else:
        frame.to_csv(resaved, index=index == "index")
        assert resaved.read_text().startswith(",") == (index == "index")
    layout, names = sniff(resaved)
    assert layout is sniff(published)[0]
    assert names.count("fwd_header_len_dup") == 1 and names[-1] == "label"
    assert (names[0] == "_pandas_index") == (index != "none")
    got, want = read_landing_file(resaved), read_landing_file(published)
    assert (got["parse_error"] == "").all() and len(got) == 3
    pd.testing.assert_frame_equal(got[FEATURE_COLUMNS], want[FEATURE_COLUMNS])
    assert got["label"].tolist() == ["BENIGN", "DDoS", "Web Attack - XSS"]
    assert "_pandas_index" not in got


def test_small_respellings_map_and_order_does_not_matter(tmp_path: Path) -> None:
    spelt = [h.lower().replace(" ", "_").replace("/", "_") for h in TRAFFIC_LABELLING_HEADERS]
    lines = [",".join(spelt)] + _cic_lines([cic_row()])[1:]
    frame = read_landing_file(_write(tmp_path / "Monday.csv", lines))
    assert frame.loc[0, "parse_error"] == "" and frame.loc[0, "src_ip"] == "192.168.10.5"
    # the 84-column variant some copies carry: duplicate dropped, identifiers reordered
    headers = [h for i, h in enumerate(TRAFFIC_LABELLING_HEADERS) if i != 61]
    headers = headers[1:4] + headers[:1] + headers[4:]
    frame = read_landing_file(_write(tmp_path / "Monday2.csv", _cic_lines([cic_row()], headers)))
    assert sniff(tmp_path / "Monday2.csv")[0].name == "cicids2017_traffic_labelling"
    assert frame.loc[0, "parse_error"] == "" and frame.loc[0, "flow_id"] == "a-b-1-2-6"


# ---------------------------------------------------------------- improved CICIDS2017


@pytest.mark.parametrize(("raw", "expected"), [
    ("BENIGN", "BENIGN"), ("Botnet", "Bot"), ("Portscan", "PortScan"),
    ("DoS Slowloris", "DoS slowloris"), ("Web Attack - SQL Injection", "Web Attack - Sql Injection"),
    ("Infiltration - Portscan", "Infiltration - Portscan"),
    ("FTP-Patator - Attempted", "FTP-Patator - Attempted"),
    ("Botnet - Attempted", "Bot - Attempted"),
    ("DoS Slowloris - Attempted", "DoS slowloris - Attempted"),
    ("Web Attack - SQL Injection - Attempted", "Web Attack - Sql Injection - Attempted"),
    ("Heartbleed - Attempted", None), ("Ransomware", None),
])
def test_improved_labels(raw: str, expected: str | None) -> None:
    assert canonical_improved_label(raw) == expected


def test_improved_layout(tmp_path: Path) -> None:
    assert len(IMPROVED_HEADERS) == 91
    rows = [improved_row(1),
            improved_row(2, **{"Label": "FTP-Patator - Attempted", "Attempted Category": 0,
                               "Total Length of Fwd Packet": 0, "Dst Port": 21}),
            improved_row(3, **{"Label": "Infiltration - Portscan", "Timestamp":
                               "2017-07-06 21:02:01"}),
            improved_row(4, **{"Label": "Botnet", "ICMP Type": 3}),
            improved_row(5, **{"Timestamp": "not a time"})]
    path = _write(tmp_path / "tuesday.csv", _lines(IMPROVED_HEADERS, rows))
    assert sniff(path)[0].name == "cicids2017_improved"
    frame = read_landing_file(path)
    assert frame["label"].tolist() == ["BENIGN", "FTP-Patator - Attempted",
                                       "Infiltration - Portscan", "Bot", "BENIGN"]
    assert frame["label_family"].tolist() == ["benign", "brute_force", "reconnaissance",
                                              "botnet", "benign"]
    assert frame["raw_label"].tolist()[3] == "Botnet"
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp("2017-07-04 12:17:53.838272", tz="UTC")
    assert frame["record_id"].tolist() == [1, 2, 3, 4, 5]
    assert frame["attempted_category"].tolist() == [-1, 0, -1, -1, -1]
    assert frame.loc[3, "icmp_type"] == 3 and "total_tcp_flow_time" in frame
    assert frame["flow_uid"].iloc[0] == 2017070400000002  # dated by its name, like the original
    assert frame["parse_error"].tolist() == ["", "", "", "", "unparseable timestamp"]


def test_improved_file_validates_with_its_own_contract(tmp_path: Path, home: Path) -> None:
    from flowguard.batch import validate_path

    rows = [improved_row(i) for i in range(1, 9)]
    rows += [improved_row(9, **{"Label": "DoS Hulk - Attempted", "Attempted Category": 6}),
             improved_row(10, **{"Label": "Botnet - Attempted", "Attempted Category": 1}),
             improved_row(11, **{"Total Fwd Packet": -3})]
    path = _write(tmp_path / "wednesday.csv", _lines(IMPROVED_HEADERS, rows))
    report = validate_path(path, tmp_path / "out", home / "gx")
    (result,) = report["files"]
    assert result["layout"] == "cicids2017_improved" and result["error"] is None
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (11, 10, 1)
    valid = pd.read_parquet(result["valid_path"])
    assert "/valid/cicids2017_improved/" in result["valid_path"]
    assert {"DoS Hulk - Attempted", "Bot - Attempted"} <= set(valid["label"])


# ---------------------------------------------------------------- attempted: training default


def test_attempted_rows_are_left_out_of_training_by_default(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from flowguard.config import get_settings
    from flowguard.training import training_rows

    monkeypatch.delenv("FLOWGUARD_TRAIN_ON_ATTEMPTED", raising=False)
    assert get_settings().train_on_attempted is False
    frame = pd.DataFrame({"label": ["BENIGN", "FTP-Patator", "FTP-Patator - Attempted",
                                    "Bot - Attempted", "Bot - Attempted"], "flow_uid": range(5)})
    kept, left_out = training_rows(frame)
    assert kept["label"].tolist() == ["BENIGN", "FTP-Patator"]
    assert left_out == {"Bot - Attempted": 2, "FTP-Patator - Attempted": 1}
    assert training_rows(frame, include_attempted=True)[0].equals(frame)
    monkeypatch.setenv("FLOWGUARD_TRAIN_ON_ATTEMPTED", "1")
    assert get_settings().train_on_attempted is True
    assert is_attempted("DDoS - Attempted") and not is_attempted("DDoS")


@pytest.mark.parametrize(("env", "expected"), [(None, False), ("true", True)])
def test_train_model_honours_the_setting(monkeypatch: pytest.MonkeyPatch, home: Path,
                                         env: str | None, expected: bool) -> None:
    import flowguard.pipeline as pipeline
    import flowguard.registry as registry
    import flowguard.training as training

    if env is None:
        monkeypatch.delenv("FLOWGUARD_TRAIN_ON_ATTEMPTED", raising=False)
    else:
        monkeypatch.setenv("FLOWGUARD_TRAIN_ON_ATTEMPTED", env)
    seen: dict[str, object] = {}

    def fake_train(*args: object, **kwargs: object) -> training.TrainResult:
        seen.update(kwargs)
        return training.TrainResult("run", "uri", {"macro_f1": 1.0, "accuracy": 1.0}, ["a"])

    class Client:  # train_model reads back the run's experiment id
        def get_run(self, run_id: str) -> object:
            return SimpleNamespace(info=SimpleNamespace(experiment_id="0"))

    monkeypatch.setattr(pipeline, "_mlflow", lambda settings: Client())
    monkeypatch.setattr(registry, "frozen_holdout", lambda client, name: None)
    monkeypatch.setattr(registry, "register", lambda *a, **k: "1")
    monkeypatch.setattr(training, "train_and_log", fake_train)
    pipeline.train_model("x.parquet", {})
    assert seen["include_attempted"] is expected


@pytest.mark.slow
def test_training_label_set_has_no_attempted_class(home: Path, tmp_path: Path) -> None:
    from flowguard.config import get_settings
    from flowguard.pipeline import _mlflow
    from flowguard.schema import HOST_FEATURES
    from flowguard.training import TuningConfig, train_and_log

    rng = np.random.default_rng(0)
    parts = []
    for k, (label, n) in enumerate({"BENIGN": 300, "DoS Hulk": 120,
                                    "DoS Hulk - Attempted": 40}.items()):
        part = pd.DataFrame(rng.normal(3 * k, 1, (n, len(FEATURE_COLUMNS))).clip(0),
                            columns=FEATURE_COLUMNS)
        for col in HOST_FEATURES:
            part[col] = rng.normal(k, 1, n)
        part["label"] = label
        part["event_timestamp"] = pd.Timestamp("2017-07-05", tz="UTC") + pd.to_timedelta(
            rng.uniform(0, 86_400, n), unit="s")
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["flow_uid"] = np.arange(len(frame))
    path = tmp_path / "training_set.parquet"
    frame.to_parquet(path)
    settings = get_settings()
    client = _mlflow(settings)
    result = train_and_log(path, settings.home / "mlflow" / "artifacts", "m", {"trigger_reason": "test"},
                           tuning=TuningConfig(max_trials=0, n_estimators=20))
    assert result.classes == ["BENIGN", "DoS Hulk"]
    assert client.get_run(result.run_id).data.params["attempted_rows_excluded"] == "40"


# ---------------------------------------------------------------- CSE-CIC-IDS2018


@pytest.mark.parametrize(("raw", "expected"), [
    ("Benign", "Benign"), ("FTP-BruteForce", "FTP-BruteForce"), ("SSH-Bruteforce", "SSH-Bruteforce"),
    ("DoS attacks-Hulk", "DoS attacks-Hulk"), ("DDOS attack-HOIC", "DDOS attack-HOIC"),
    ("DDoS attacks-LOIC-HTTP", "DDoS attacks-LOIC-HTTP"), ("Infilteration", "Infilteration"),
    ("Bot", "Bot"), ("Brute Force -Web", "Brute Force -Web"), ("SQL Injection", "SQL Injection"),
    ("Label", None), ("BENIGN ", "Benign"),
])
def test_ids2018_labels(raw: str, expected: str | None) -> None:
    assert canonical_ids2018_label(raw) == expected


@pytest.mark.parametrize("headers", [IDS2018_HEADERS, IDS2018_FLOW_ID_HEADERS])
def test_cse_cic_ids2018_layout(tmp_path: Path, headers: list[str]) -> None:
    assert len(headers) in (80, 84)
    rows = [ids2018_row(1), ids2018_row(2, **{"Label": "DDOS attack-HOIC",
                                              "Timestamp": "15/02/2018 01:05:00"}),
            ids2018_row(3, **{"Label": "Infilteration", "Flow Byts/s": "Infinity"})]
    lines = _lines(headers, rows)
    lines.insert(2, lines[0])  # the published files repeat their header mid-file
    path = _write(tmp_path / "Thursday-15-02-2018_TrafficForML_CICFlowMeter.csv", lines)
    layout = sniff(path)[0]
    assert layout.dataset == "cse_cic_ids2018"
    assert layout.name == ("cse_cic_ids2018" if len(headers) == 80 else "cse_cic_ids2018_flow_id")
    frame = read_landing_file(path)
    assert frame["source_line"].tolist() == [2, 3, 4, 5]
    assert frame["parse_error"].tolist() == ["", "repeated header line", "", ""]
    assert frame["label"].tolist() == ["Benign", None, "DDOS attack-HOIC", "Infilteration"]
    assert frame["label_family"].fillna("-").tolist() == ["benign", "-", "ddos", "infiltration"]
    local = frame["event_timestamp"].dt.tz_convert("America/Halifax").dt.strftime("%H:%M")
    assert local.tolist()[2] == "13:05"  # 12-hour clock without AM/PM: a PM hour
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp("2018-02-15 14:30", tz="UTC")
    assert frame.loc[3, "flow_byts_s"] == pytest.approx((1024 + 512) / 0.654929)
    assert (frame.loc[0, "src_ip"] == "18.219.211.138") == (len(headers) == 84)


# ---------------------------------------------------------------- refusals name the fix


@pytest.mark.parametrize(("header", "message"), [
    (",".join(h for h in MACHINE_LEARNING_CVE_HEADERS if h != "Destination Port"),
     r":1: no `Destination Port` column: this looks like a pre-processed copy \(features "
     r"selected or scaled\); the model needs it: use the published CSV files \(nearest layout "
     r"cicids2017_machine_learning_cve: 77 of 78"),
    (",".join(h for h in IDS2018_HEADERS if h != "Dst Port"),
     r":1: no `Dst Port` column: this looks like a pre-processed copy"),
    (",".join(MACHINE_LEARNING_CVE_HEADERS[:30] + ["Label"]),
     r":1: missing columns \['fwd_psh_flags', .* \(published as Fwd PSH Flags, .*\(first 5 of 47\)\);"
     r" nearest layout cicids2017_machine_learning_cve: 31 of 78 columns match\. Fix: the file "
     r"looks cut down .* use the published CSV files"),
    (",".join([*MACHINE_LEARNING_CVE_HEADERS, "x1", "x2", "x3", "x4", "x5", "x6"]),
     r":1: unknown columns 'x1', 'x2', 'x3', 'x4', 'x5' \(first 5 of 6\); nearest layout "
     r"cicids2017_machine_learning_cve: 78 of 78 columns match\. Fix: remove or rename"),
    (",".join([*MACHINE_LEARNING_CVE_HEADERS, "Label"]), r"unknown column 'Label' \(a second copy\)"),
    (",".join([*IMPROVED_HEADERS[:-10], "Bogus"]),
     r":1: unknown column 'Bogus' and missing columns \['active_min'.*nearest layout "
     r"cicids2017_improved.*Fix: not a supported layout as published: use the published CSV"),
    ("hello,world", r":1: header not recognised \(first fields \['hello', 'world'\]\): no "
                    r"supported layout shares a column .* Use the published CSV files"),
    ("a;b;c", r":1: cannot split the first line on ','; it seems delimited by ';'\. Supported "
              r"layouts are comma-separated: re-save it with ','"),
])
def test_refusals_say_what_and_how_to_fix(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "Monday-x.csv"
    path.write_text(header + "\n1,2,3\n")
    with pytest.raises(LandingError, match=message) as info:
        sniff(path)
    assert str(info.value).startswith(f"{path}:1: ")


# ---------------------------------------------------------------- folder accounting


def test_folder_counts_refused_rows_descends_and_lists_skipped(tmp_path: Path, home: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    from flowguard.cli import main

    land = tmp_path / "CIC-IDS-2017"
    (land / "MachineLearningCVE").mkdir(parents=True)
    (land / "TrafficLabelling").mkdir()
    rows = [cic_row(**{"Source Port": 40000 + i}) for i in range(6)]
    _write(land / "TrafficLabelling" / "Monday-WorkingHours.pcap_ISCX.csv", _cic_lines(rows))
    _write(land / "MachineLearningCVE" / "Monday-WorkingHours.pcap_ISCX.csv",
           _cic_lines(rows[:4], MACHINE_LEARNING_CVE_HEADERS))
    cut = [h for h in MACHINE_LEARNING_CVE_HEADERS if h != "Destination Port"]
    _write(land / "MachineLearningCVE" / "Tuesday-selected.csv",
           _cic_lines(rows[:5], cut) + [""])  # 5 data lines, and a last empty line
    _features_file(land / "NUSW-NB15_features.csv")
    (land / "README.txt").write_text("notes\n")
    (land / "MachineLearningCVE" / "MachineLearningCSV.md5").write_text("x\n")
    unsw = land / "UNSW"
    unsw.mkdir()
    _unsw_set(unsw / "UNSW_NB15_testing-set.csv", [{"attack_cat": "Normal", "label": 0}] * 3)
    (unsw / "UNSW_NB15_testing-set.csv").write_bytes(
        BOM + (unsw / "UNSW_NB15_testing-set.csv").read_bytes())

    out = tmp_path / "out"
    assert main(["validate", str(land), "--out", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    files = {str(Path(f["file"]).relative_to(land)): f for f in report["files"]}
    assert sorted(files) == ["MachineLearningCVE/Monday-WorkingHours.pcap_ISCX.csv",
                             "MachineLearningCVE/Tuesday-selected.csv",
                             "TrafficLabelling/Monday-WorkingHours.pcap_ISCX.csv",
                             "UNSW/UNSW_NB15_testing-set.csv"]
    refused = files["MachineLearningCVE/Tuesday-selected.csv"]
    assert (refused["rows_in"], refused["rows_refused"], refused["rows_valid"]) == (6, 6, 0)
    assert "no `Destination Port` column" in refused["error"]
    assert files["UNSW/UNSW_NB15_testing-set.csv"]["rows_valid"] == 3  # BOM: read fully
    assert (report["rows_in"], report["rows_valid"], report["rows_quarantined"],
            report["rows_refused"]) == (6 + 4 + 6 + 3, 6 + 4 + 3, 0, 6)
    assert report["rows_in"] == (report["rows_valid"] + report["rows_quarantined"]
                                 + report["rows_refused"])
    skipped = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"NUSW-NB15_features.csv", "README.txt", "MachineLearningCSV.md5"}
    assert skipped["README.txt"] == "not a CSV (.txt)"
    assert "features list" in skipped["NUSW-NB15_features.csv"]
    # one output per source file: the two Monday copies do not overwrite each other
    tl = files["TrafficLabelling/Monday-WorkingHours.pcap_ISCX.csv"]["valid_path"]
    cve = files["MachineLearningCVE/Monday-WorkingHours.pcap_ISCX.csv"]["valid_path"]
    assert tl != cve and len(pd.read_parquet(tl)) == 6 and len(pd.read_parquet(cve)) == 4

    assert main(["validate", str(land), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "FAILED " in text and "rows in 6, all refused (not read)" in text
    assert "SKIPPED " in text and "not a CSV (.txt)" in text
    assert "+ refused 6;" in text and "3 skipped" in text


# ---------------------------------------------------------------- real samples (once merged)


def _real(*parts: str) -> Path:
    return REAL.joinpath(*parts)


@pytest.mark.parametrize("folder", ["cicids2017", "cicids2017_improved", "cse_cic_ids2018",
                                    "unsw_nb15"])
def test_real_samples_read_in_full(folder: str) -> None:
    root = _real(folder)
    samples = sorted(p for p in root.rglob("*.csv")) if root.exists() else []
    if not samples:
        pytest.skip(f"no real sample of this layout under {root} yet (data/real/PROVENANCE.md, "
                    "\"Not found\")")
    from flowguard.ingest import landing_files

    for path in landing_files(root):
        frame = read_landing_file(path, date(2017, 7, 3) if folder == "cicids2017" else None)
        assert len(frame) > 0
        assert (frame["parse_error"] == "").mean() > 0.9, (path, frame["parse_error"].value_counts())
