"""The committed real-traffic samples match their provenance record (data/real/provenance.json).

Pure Python and fast: every listed file exists, its sha256 and size are the recorded ones,
its data-row count and per-class counts are the recorded ones, and nothing under data/real
is left out of the record.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
PROVENANCE = REAL / "provenance.json"
DATASETS = {"cicids2017", "cicids2017_improved", "cse_cic_ids2018", "unsw_nb15"}
HELD_OUT = {
    "Paris-svg/dataaset",
    "Shreyas26X/NetSentinel",
    "Mondirkb/dataset-CIC-IDS-2017",
    "starrix16/cybersec-project",
    "ScubaInstructor/fuh",
    "Ankit300302/Intelligent-IDS",
}


def _entries() -> list[dict]:
    return json.loads(PROVENANCE.read_text(encoding="utf-8"))


def _data_lines(data: bytes) -> list[bytes]:
    """Lines after the header; a missing final newline does not drop the last row."""
    lines = data.split(b"\n")
    if lines and lines[-1] in (b"", b"\r"):
        lines = lines[:-1]
    return [line.rstrip(b"\r") for line in lines[1:]]


def _split(line: bytes) -> list[str]:
    return line.decode("latin-1").split(",")


ENTRIES = _entries()


def test_provenance_lists_every_committed_sample() -> None:
    listed = {e["file"] for e in ENTRIES}
    on_disk = {p.relative_to(REAL).as_posix() for p in REAL.rglob("*.csv")}
    assert listed == on_disk
    assert len(listed) == len(ENTRIES), "a file is listed twice"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_sample_matches_its_record(entry: dict) -> None:
    path = REAL / entry["file"]
    assert path.is_file(), path
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) == entry["bytes"]
    assert entry["dataset"] in DATASETS
    assert entry["source_repo"] not in HELD_OUT
    assert len(entry["source_commit"]) == 40
    int(entry["source_commit"], 16)

    rows = _data_lines(data)
    assert len(rows) == entry["rows"]
    header = [
        h.strip() for h in _split(data.split(b"\n", 1)[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf"))
    ]
    column = header.index(entry["label_column"])
    counts = collections.Counter(_split(line)[column] for line in rows)
    assert dict(counts) == entry["label_counts"]
    assert all(len(_split(line)) == len(header) for line in rows)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_derivation_blocks_add_up(entry: dict) -> None:
    blocks = entry.get("derivation_blocks")
    if blocks is None:
        pytest.skip("no block list recorded")
    assert sum(b["lines_kept"] for b in blocks) == entry["rows"]
    offsets = [b["offset"] for b in blocks]
    assert offsets == sorted(offsets), "blocks are recorded in source order"
    assert all(b["offset"] + b["chars_read"] <= entry["source_chars"] for b in blocks)


CIC_ENTRIES = [
    e
    for e in ENTRIES
    if e["dataset"] == "cicids2017" and e["layout"].startswith("TrafficLabelling")
]


def _rel_ok(shown: str, expected: float) -> bool:
    # CICFlowMeter prints ~10 significant digits, and 3 significant digits from 1e7 up.
    tol = 1e-6 if expected < 1e7 else 6e-3
    return abs(float(shown) - expected) <= tol * max(abs(expected), 1e-300)


@pytest.mark.parametrize("entry", CIC_ENTRIES, ids=[e["file"] for e in CIC_ENTRIES])
def test_cicflowmeter_rows_are_self_consistent(entry: dict) -> None:
    """A transcription slip in a real row shows up in CICFlowMeter's own arithmetic."""
    data = (REAL / entry["file"]).read_bytes()
    header = [h.strip() for h in _split(data.split(b"\n", 1)[0].rstrip(b"\r"))]
    col = {}
    for i, name in enumerate(header):
        col.setdefault(name, i)
    fwd_hdr = [i for i, name in enumerate(header) if name == "Fwd Header Length"]
    assert len(fwd_hdr) == 2
    for line in _data_lines(data):
        f = _split(line)
        row = {name: f[i] for name, i in col.items()}
        src, dst, sport, dport, proto = (
            row["Source IP"],
            row["Destination IP"],
            row["Source Port"],
            row["Destination Port"],
            row["Protocol"],
        )
        assert row["Flow ID"] in (
            f"{src}-{dst}-{sport}-{dport}-{proto}",
            f"{dst}-{src}-{dport}-{sport}-{proto}",
        ), line[:60]
        assert f[fwd_hdr[0]] == f[fwd_hdr[1]], line[:60]
        nf, nb = int(row["Total Fwd Packets"]), int(row["Total Backward Packets"])
        lf, lb = (
            float(row["Total Length of Fwd Packets"]),
            float(row["Total Length of Bwd Packets"]),
        )
        assert (int(row["Subflow Fwd Packets"]), int(row["Subflow Bwd Packets"])) == (nf, nb), line[
            :60
        ]
        assert (float(row["Subflow Fwd Bytes"]), float(row["Subflow Bwd Bytes"])) == (lf, lb), line[
            :60
        ]
        seconds = float(row["Flow Duration"]) / 1e6
        if seconds > 0:
            assert _rel_ok(row["Flow Bytes/s"], (lf + lb) / seconds), line[:60]
            assert _rel_ok(row["Flow Packets/s"], (nf + nb) / seconds), line[:60]
        else:
            assert row["Flow Bytes/s"] in ("Infinity", "NaN") or row["Flow Packets/s"] in (
                "Infinity",
                "NaN",
            ), line[:60]
