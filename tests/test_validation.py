from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flowguard.ingest import read_day
from flowguard.validation import BatchRejected, get_context, validate_batch

DAY = date(2017, 7, 4)
INTERVAL = (datetime(2017, 7, 4, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))


@pytest.fixture(scope="module")
def tuesday(synthetic_week: Path):
    return read_day(synthetic_week, DAY)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory):
    return get_context(tmp_path_factory.mktemp("gx"))


def test_quarantine_is_exactly_the_bad_rows_with_reasons(tuesday, context) -> None:
    frame = tuesday.copy()
    # start from the rows the generator did not already spoil
    clean = frame[frame["parse_error"].eq("") & frame["label"].notna()
                  & frame["flow_byts_s"].notna() & (frame["tot_fwd_pkts"] >= 0)].copy()
    idx = clean.index[:4]
    clean.loc[idx[0], "tot_bwd_pkts"] = -3
    clean.loc[idx[1], "label"] = None
    clean.loc[idx[2], "flow_pkts_s"] = float("nan")
    clean.loc[idx[3], "event_timestamp"] = clean.loc[idx[3], "event_timestamp"] + \
        __import__("pandas").Timedelta(days=2)
    outcome = validate_batch(clean, context, INTERVAL, run_name="test-quarantine")
    assert set(outcome.quarantined["flow_uid"]) == set(clean.loc[idx, "flow_uid"])
    reasons = outcome.quarantined.set_index("flow_uid")["quarantine_reasons"]
    assert "expect_column_values_to_be_between(tot_bwd_pkts)" in reasons[clean.loc[idx[0], "flow_uid"]]
    assert "not_be_null(label)" in reasons[clean.loc[idx[1], "flow_uid"]]
    assert "not_be_null(flow_pkts_s)" in reasons[clean.loc[idx[2], "flow_uid"]]
    assert "in_interval" in reasons[clean.loc[idx[3], "flow_uid"]]
    assert len(outcome.valid) + len(outcome.quarantined) == len(clean)
    # four rows quarantined, the batch accepted: GX reports success (row-level rules have
    # `mostly`), so "Failed" in the data docs means a refused batch
    assert outcome.success and outcome.result_id


def test_generator_quirks_land_in_quarantine_with_source_lines(tuesday, context) -> None:
    outcome = validate_batch(tuesday, context, INTERVAL, run_name="test-quirks")
    q = outcome.quarantined
    assert len(q) >= 5
    assert {"source_file", "source_line", "quarantine_reasons"} <= set(q.columns)
    assert q["quarantine_reasons"].str.contains("parse: empty row").any()
    assert (q["quarantine_reasons"] != "").all()
    assert len(outcome.valid) + len(q) == len(tuesday)


def test_data_docs_are_built(tuesday, context, tmp_path_factory) -> None:
    validate_batch(tuesday.head(200), context, INTERVAL, run_name="test-docs")
    root = Path(context.root_directory)
    assert list(root.glob("uncommitted/data_docs/local_site/index.html"))


def test_batch_level_failures_raise_actionable_errors(tuesday, context) -> None:
    with pytest.raises(BatchRejected, match="no rows"):
        validate_batch(tuesday.head(0), context, INTERVAL, run_name="empty")
    with pytest.raises(BatchRejected, match="lacks columns.*flow_duration"):
        validate_batch(tuesday.drop(columns=["flow_duration"]), context, INTERVAL, run_name="cols")
    wrong_day = (datetime(2017, 7, 10, tzinfo=UTC), datetime(2017, 7, 11, tzinfo=UTC))
    with pytest.raises(BatchRejected, match=r"no landing row falls in .*Tuesday-WorkingHours"):
        validate_batch(tuesday, context, wrong_day, run_name="wrong-day")
    spoiled = tuesday.copy()
    spoiled.loc[spoiled.index[: len(spoiled) * 2 // 3], "tot_fwd_pkts"] = -1
    with pytest.raises(BatchRejected, match="failed validation .*tot_fwd_pkts"):
        validate_batch(spoiled, context, INTERVAL, run_name="spoiled")
