"""Great Expectations contract of the canonical flow batch, with quarantine.

The suite is code. Row-level failures (a negative counter, an unknown label, a non-finite
rate the repair rule could not fix, an unparseable field, a row outside the run's data
interval) move the row to quarantine with the names of the failed expectations; the batch
goes on. Batch-level failures (no rows, missing columns, too many rejected rows) raise
:class:`BatchRejected` with a message a person can act on. Data docs are rebuilt each run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowguard.schema import (
    FEATURE_COLUMNS,
    LABELS,
    NON_NEGATIVE_COLUMNS,
    RATE_COLUMNS,
    as_utc,
)

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    import pandas as pd
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

SUITE_NAME = "cicids2017_canonical_flows"
DATASOURCE = "flowguard"
ASSET = "canonical_flows"
ROW_ID = "flow_uid"
MAX_REJECTED_SHARE = 0.5


class BatchRejected(RuntimeError):
    """The batch as a whole is unusable; nothing was written."""


@dataclass
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    success: bool
    result_id: str
    statistics: dict[str, Any]


def build_suite() -> Any:
    """The expectation suite for one canonical batch."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[Any] = [gxe.ExpectColumnToExist(column=c) for c in
                               [ROW_ID, "event_timestamp", "label", *FEATURE_COLUMNS]]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in FEATURE_COLUMNS]
    expectations += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0)
                     for c in NON_NEGATIVE_COLUMNS + RATE_COLUMNS]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="dst_port", min_value=0, max_value=65535),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=LABELS),
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="parse_error", value_set=[""]),
        gxe.ExpectColumnValuesToBeInSet(column="in_interval", value_set=[True]),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID),
    ]
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def get_context(gx_dir: Path) -> AbstractDataContext:
    """A file-backed GX context (data docs under ``gx_dir``), with the suite up to date."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    if (context.variables.progress_bars or {}).get("globally", True):
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.variables.save()  # no tqdm bars in task logs; saved once per project
    # add_or_update_pandas on an existing source wipes its assets: get first, add if missing.
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        source.get_asset(ASSET)
    except LookupError:
        source.add_dataframe_asset(ASSET)
    context.suites.add_or_update(build_suite())
    return context


def _checkpoint(context: AbstractDataContext) -> Any:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    asset = context.data_sources.get(DATASOURCE).get_asset(ASSET)
    try:
        batch_definition = asset.get_batch_definition("whole_batch")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
    definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(
        name=f"{SUITE_NAME}_vd", data=batch_definition, suite=context.suites.get(SUITE_NAME)))
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{SUITE_NAME}_checkpoint",
        validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="update_data_docs")],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    ))


def validate_batch(
    frame: pd.DataFrame, context: AbstractDataContext, interval: tuple[datetime, datetime],
    run_name: str,
) -> ValidationOutcome:
    """Run the suite on one batch and split it into valid and quarantined rows.

    Quarantined rows keep every column plus ``quarantine_reasons`` (failed expectations, the
    parse errors) and their source file and line.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    if frame.empty:
        raise BatchRejected("the batch has no rows: check the landing files for this interval")
    missing = [c for c in [ROW_ID, "label", *FEATURE_COLUMNS] if c not in frame.columns]
    if missing:
        raise BatchRejected(f"the batch lacks columns {missing}: the landing layout changed")
    start, end = (as_utc(t) for t in interval)
    frame = frame.assign(
        in_interval=(frame["event_timestamp"] >= start) & (frame["event_timestamp"] < end))
    if not frame["in_interval"].any():
        stamps = frame["event_timestamp"].dropna()
        held = f"{stamps.min()} to {stamps.max()}" if len(stamps) else "no parseable timestamps"
        raise BatchRejected(
            f"no landing row falls in the run's interval [{start}, {end}): the files "
            f"{sorted(frame['source_file'].unique()) if 'source_file' in frame else '?'} "
            f"hold flows from {held}. Land this day's files, or trigger the run for their day.")
    checkpoint = _checkpoint(context)
    result = checkpoint.run(batch_parameters={"dataframe": frame},
                            run_id=RunIdentifier(run_name=run_name))
    reasons: dict[int, list[str]] = {}
    failed = []
    for validation in result.run_results.values():
        for r in validation.results:
            if r.success:
                continue
            config = r.expectation_config
            name = f"{config.type}({config.kwargs.get('column', '')})"
            failed.append(name)
            for item in (r.result or {}).get("unexpected_index_list") or []:
                uid = item[ROW_ID] if isinstance(item, dict) else item
                reasons.setdefault(int(uid), []).append(name)
            if config.type == "expect_column_to_exist":
                raise BatchRejected(f"the batch lacks column {config.kwargs['column']!r}")
    reason_series = frame[ROW_ID].map(lambda u: "; ".join(reasons.get(int(u), [])))
    parse = frame["parse_error"].where(frame["parse_error"] == "", "parse: " + frame["parse_error"])
    reason_series = (reason_series + " " + parse).str.strip()
    bad = reason_series != ""
    quarantined = frame[bad].assign(quarantine_reasons=reason_series[bad])
    valid = frame[~bad].drop(columns=["in_interval", "parse_error"])
    share = len(quarantined) / len(frame)
    run_result = next(iter(result.run_results.values()))
    statistics = dict(run_result.statistics)
    log.info("validated %d rows: %d valid, %d quarantined; failed expectations: %s",
             len(frame), len(valid), len(quarantined), sorted(set(failed)))
    if share > MAX_REJECTED_SHARE:
        raise BatchRejected(
            f"{share:.0%} of {len(frame)} rows failed validation (limit {MAX_REJECTED_SHARE:.0%});"
            f" failed expectations: {sorted(set(failed))}. Inspect the data docs.")
    result_id = str(next(iter(result.run_results.keys())))
    return ValidationOutcome(valid, quarantined, bool(result.success), result_id, statistics)
