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
    header = [h.strip() for h in _split(data.split(b"\n", 1)[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf"))]
    column = header.index(entry["label_column"])
    counts = collections.Counter(_split(line)[column] for line in rows)
    assert dict(counts) == entry["label_counts"]
    assert all(len(_split(line)) == len(header) for line in rows)
