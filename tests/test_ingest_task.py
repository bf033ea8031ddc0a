"""The Airflow ingest task validates a day chunk by chunk and writes what one batch would.

The reference is the whole-day path (``read_day`` + one ``validate_batch`` + the partition
writers); the task streams the same files in chunks of a few hundred rows. The validated
flows, host windows and quarantine it writes must be the same frames, the row accounting the
same numbers, and the day-level rules must hold over the day, not per chunk.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from flowguard.validation import BatchRejected

MON, TUE = date(2017, 7, 3), date(2017, 7, 4)
CHUNK = 250


def _interval(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + pd.Timedelta(days=1)).isoformat()


def _whole_day(landing: Path, home: Path, day: date) -> dict[str, object]:
    """What the task wrote before it streamed: one batch per day."""
    from flowguard.features import write_host_activity, write_partition, write_valid_flows
    from flowguard.ingest import read_day
    from flowguard.validation import get_context, validate_batch

    frame = read_day(landing, day)
    start, end = (pd.Timestamp(t).to_pydatetime() for t in _interval(day))
    outcome = validate_batch(frame, get_context(home / "gx"), (start, end), run_name="ref")
    now = datetime.now(UTC)
    write_valid_flows(outcome.valid, home / "lake" / "flows", day, now)
    write_host_activity(outcome.valid, home / "lake" / "hosts", day, now,
                        flows_root=home / "lake" / "flows")
    write_partition(outcome.quarantined.astype({"raw_label": "string", "label": "string"}),
                    home / "quarantine" / "flows", day)
    return {"rows_in": len(frame), "rows_valid": len(outcome.valid),
            "rows_quarantined": len(outcome.quarantined)}


def _partition(root: Path, day: date) -> pd.DataFrame:
    frame = pd.read_parquet(root / f"date={day:%Y-%m-%d}" / "part-0.parquet")
    return frame.drop(columns=["ingested_at"], errors="ignore")


@pytest.mark.slow
def test_chunked_task_writes_what_one_whole_day_batch_wrote(
        home: Path, synthetic_week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.pipeline import validate_interval

    monkeypatch.setenv("FLOWGUARD_LANDING_DIR", str(synthetic_week))
    reference = tmp_path / "reference"
    for day in (MON, TUE):  # Tuesday's first host windows read Monday's partition
        result = validate_interval(*_interval(day), f"run-{day}", chunk_rows=CHUNK)
        expected = _whole_day(synthetic_week, reference, day)
        assert result["chunks"] > 2
        assert {k: result[k] for k in expected} == expected
        assert result["rows_in"] == result["rows_valid"] + result["rows_quarantined"]
        for sub in ("lake/flows", "lake/hosts", "quarantine/flows"):
            got, want = _partition(home / sub, day), _partition(reference / sub, day)
            assert len(want) > 0, sub
            pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"{sub} {day}")
    stamped = pd.read_parquet(home / "lake" / "flows" / f"date={TUE}" / "part-0.parquet",
                              columns=["ingested_at"])["ingested_at"]
    assert stamped.nunique() == 1 and str(stamped.dtype) == "datetime64[ns, UTC]"
    assert not list((home / "work").rglob("*.parquet"))  # the staged rows are gone


@pytest.mark.slow
def test_day_rules_hold_over_the_day_not_per_chunk(
        home: Path, synthetic_week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first chunk wholly outside the interval is quarantined, not a rejected day."""
    from flowguard.pipeline import validate_interval

    landing = tmp_path / "landing"
    landing.mkdir()
    source = next(synthetic_week.glob("Tuesday*.csv"))
    lines = source.read_bytes().split(b"\n")
    moved = CHUNK + 20
    lines[1:moved + 1] = [line.replace(b",4/7/2017 ", b",3/7/2017 ") for line in lines[1:moved + 1]]
    (landing / source.name).write_bytes(b"\n".join(lines))
    monkeypatch.setenv("FLOWGUARD_LANDING_DIR", str(landing))
    result = validate_interval(*_interval(TUE), "run-moved", chunk_rows=CHUNK)
    quarantine = _partition(home / "quarantine" / "flows", TUE)
    outside = quarantine["quarantine_reasons"].str.contains("in_interval")
    moved_out = quarantine.loc[outside, "source_line"] <= moved + 1
    assert moved_out.sum() >= moved - 5  # a few of those lines were already spoiled
    assert result["rows_quarantined"] == len(quarantine)

    # the whole day outside the interval: rejected, naming the files, and nothing written
    shutil.rmtree(home / "lake", ignore_errors=True)
    shutil.rmtree(home / "quarantine", ignore_errors=True)
    with pytest.raises(BatchRejected, match=r"no landing row falls in .*Tuesday-WorkingHours"):
        validate_interval(*_interval(date(2017, 7, 11)), "run-wrong-day", chunk_rows=CHUNK)
    assert not list(home.rglob("*.parquet")) and not list(home.rglob("*.tmp"))


@pytest.mark.slow
def test_a_day_is_committed_whole(home: Path, synthetic_week: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the day's partition writes (flows written, host windows not) leaves a
    day that training does not treat as ingested; the rerun completes it (issue 19)."""
    import flowguard.features as features
    from flowguard.config import get_settings
    from flowguard.features import entity_rows
    from flowguard.pipeline import training_days, validate_interval

    monkeypatch.setenv("FLOWGUARD_LANDING_DIR", str(synthetic_week))
    settings = get_settings()
    real = features.write_host_activity

    def crash(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt("killed between the flows and the host windows")

    monkeypatch.setattr(features, "write_host_activity", crash)
    with pytest.raises(KeyboardInterrupt):
        validate_interval(*_interval(MON), "run-killed", chunk_rows=CHUNK)
    assert (settings.flows_source / f"date={MON}" / "part-0.parquet").exists()
    assert (settings.flows_source / f"date={MON}" / "_INCOMPLETE").exists()
    with pytest.raises(FileNotFoundError):
        training_days(settings, None, 7)
    with pytest.raises(FileNotFoundError):
        entity_rows(settings.flows_source, [MON])
    monkeypatch.setattr(features, "write_host_activity", real)
    validate_interval(*_interval(MON), "run-retry", chunk_rows=CHUNK)
    assert not (settings.flows_source / f"date={MON}" / "_INCOMPLETE").exists()
    assert training_days(settings, None, 7) == [MON]
    assert len(entity_rows(settings.flows_source, [MON])) > 0


def test_a_weekday_file_of_another_week_is_skipped_before_great_expectations(
        home: Path, synthetic_week: Path, tmp_path: Path) -> None:
    """The scheduled run for a later Tuesday over 2017's Tuesday file: the task reads the
    file, finds no row in its interval and ends (WrongDayFiles, a skip) before Great
    Expectations is imported or anything is written; the verdict validate_chunks would give."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from flowguard.pipeline import WrongDayFiles, validate_interval\n"
        "try:\n"
        "    validate_interval('2017-07-11T00:00:00+00:00', '2017-07-12T00:00:00+00:00', 'w')\n"
        "except WrongDayFiles as exc:\n"
        "    print(json.dumps({'skip': str(exc),\n"
        "                      'gx': 'great_expectations' in sys.modules}))\n")
    env = {**os.environ, "FLOWGUARD_HOME": str(home),
           "FLOWGUARD_LANDING_DIR": str(synthetic_week)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["gx"] is False
    assert seen["skip"].startswith("no data for 2017-07-11: no landing row falls in the run's "
                                   "interval [2017-07-11 00:00:00+00:00")
    assert "Tuesday-WorkingHours.pcap_ISCX.csv" in seen["skip"]
    assert not list(home.rglob("*.parquet")) and not (home / "gx").exists()


def test_the_look_ahead_hands_every_chunk_on_in_order() -> None:
    """Chunks read while looking for a row in the interval are validated, not lost or re-read:
    the stream comes back whole; a stream with unknown labels is left to validate_chunks."""
    from flowguard.batch import skip_if_no_row_in_interval
    from flowguard.validation import CICIDS2017, NoRowsInInterval

    def chunk(day: int, rows: int, label: str = "BENIGN") -> pd.DataFrame:
        stamps = pd.Series(pd.Timestamp(2017, 7, day, 9, tz="UTC"), index=range(rows))
        return pd.DataFrame({"event_timestamp": stamps, "label": label, "raw_label": label,
                             "source_file": "Tuesday.csv"})

    interval = (datetime(2017, 7, 4, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))
    stream = [chunk(3, 10), chunk(3, 10), chunk(4, 10), chunk(3, 10)]
    out = list(skip_if_no_row_in_interval(iter(stream), interval, CICIDS2017, max_rows=1000))
    assert len(out) == 4 and all(a is b for a, b in zip(out, stream, strict=True))
    wrong = [chunk(3, 10), chunk(3, 10), chunk(3, 10)]  # beyond max_rows: not decided here
    out = list(skip_if_no_row_in_interval(iter(wrong), interval, CICIDS2017, max_rows=15))
    assert len(out) == 3 and all(a is b for a, b in zip(out, wrong, strict=True))
    with pytest.raises(NoRowsInInterval, match=r"Tuesday.csv.*hold flows from 2017-07-03"):
        skip_if_no_row_in_interval(iter(wrong), interval, CICIDS2017, max_rows=1000)
    unknown = [chunk(3, 10, label=None)]
    unknown[0]["raw_label"] = "Mystery"
    assert len(list(skip_if_no_row_in_interval(iter(unknown), interval, CICIDS2017))) == 1
