"""Great Expectations contract of the canonical flow batch, with quarantine.

The suite is code. Row-level failures (a negative counter, an unknown label, a non-finite
rate the repair rule could not fix, an unparseable field, a row outside the run's data
interval) move the row to quarantine with the names of the failed expectations; the batch
goes on. Batch-level failures (no rows, missing columns, too many rejected rows, labels far
outside the known taxonomy) raise :class:`BatchRejected` with a message a person can act on.
Every batch's row accounting (in = valid + quarantined) is checked and logged. Data docs are
rebuilt each run.

One :class:`Contract` per dataset: :data:`CICIDS2017` (suite ``cicids2017_canonical_flows``),
:data:`CICIDS2017_IMPROVED`, :data:`CSE_CIC_IDS2018` (same feature block, own taxonomy) and
:data:`UNSW_NB15` (suite ``unsw_nb15_canonical_flows``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowguard.schema import (
    CICIDS2017_IMPROVED_LABELS,
    CSE_CIC_IDS2018_LABELS,
    FEATURE_COLUMNS,
    LABELS,
    NON_NEGATIVE_COLUMNS,
    RATE_COLUMNS,
    UNSW_NB15_FEATURES,
    UNSW_NB15_LABELS,
    UNSW_NB15_NON_NEGATIVE,
    UNSW_NB15_NULLABLE,
    as_utc,
)

if TYPE_CHECKING:
    from collections import Counter
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
# A batch whose labels are mostly outside the known taxonomy is a mapping problem, not bad rows.
MAX_UNKNOWN_LABEL_SHARE = 0.2


class BatchRejected(RuntimeError):
    """The batch as a whole is unusable; nothing was written."""


class NoRowsInInterval(BatchRejected):
    """No row of the batch falls in the run's interval: the files hold another day's flows."""


class AccountingError(RuntimeError):
    """Rows in != rows valid + rows quarantined: a row vanished or was counted twice."""


@dataclass(frozen=True)
class Contract:
    """What one canonical schema promises: the columns, and the rules a row must meet."""

    suite_name: str
    asset: str
    required: tuple[str, ...]  # must exist (batch-level)
    not_null: tuple[str, ...]
    non_negative: tuple[str, ...]
    labels: tuple[str, ...]


CICIDS2017 = Contract(SUITE_NAME, ASSET, (ROW_ID, "event_timestamp", "label", *FEATURE_COLUMNS),
                      tuple(FEATURE_COLUMNS), tuple(NON_NEGATIVE_COLUMNS + RATE_COLUMNS),
                      tuple(LABELS))
UNSW_NB15 = Contract(
    "unsw_nb15_canonical_flows", "unsw_nb15_flows",
    (ROW_ID, "event_timestamp", "label", "is_attack", *UNSW_NB15_FEATURES),
    tuple(c for c in UNSW_NB15_FEATURES if c not in UNSW_NB15_NULLABLE),
    tuple(UNSW_NB15_NON_NEGATIVE), tuple(UNSW_NB15_LABELS))
# The other CICFlowMeter datasets: the same feature block and rules, their own taxonomy
# (the improved release's includes its "X - Attempted" labels) and their own suite, so that
# their rows never pass as original CICIDS2017 ones.
CICIDS2017_IMPROVED = Contract(
    "cicids2017_improved_canonical_flows", "cicids2017_improved_flows", CICIDS2017.required,
    CICIDS2017.not_null, CICIDS2017.non_negative, tuple(CICIDS2017_IMPROVED_LABELS))
CSE_CIC_IDS2018 = Contract(
    "cse_cic_ids2018_canonical_flows", "cse_cic_ids2018_flows", CICIDS2017.required,
    CICIDS2017.not_null, CICIDS2017.non_negative, tuple(CSE_CIC_IDS2018_LABELS))
CONTRACTS = {"cicids2017": CICIDS2017, "cicids2017_improved": CICIDS2017_IMPROVED,
             "cse_cic_ids2018": CSE_CIC_IDS2018, "unsw_nb15": UNSW_NB15}


def check_accounting(rows_in: int, rows_valid: int, rows_quarantined: int, what: str) -> None:
    """Log the row accounting and raise :class:`AccountingError` if it does not balance."""
    log.info("row accounting %s: in %d = valid %d + quarantined %d", what, rows_in, rows_valid,
             rows_quarantined)
    if rows_in != rows_valid + rows_quarantined:
        raise AccountingError(f"{what}: {rows_in} rows in but {rows_valid} valid + "
                              f"{rows_quarantined} quarantined = {rows_valid + rows_quarantined}")


@dataclass
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    success: bool
    result_id: str
    statistics: dict[str, Any]


def build_suite(contract: Contract = CICIDS2017) -> Any:
    """The expectation suite for one canonical batch of the contract's schema."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[Any] = [gxe.ExpectColumnToExist(column=c) for c in contract.required]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in contract.not_null]
    expectations += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0)
                     for c in contract.non_negative]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="dst_port", min_value=0, max_value=65535),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(contract.labels)),
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="parse_error", value_set=[""]),
        gxe.ExpectColumnValuesToBeInSet(column="in_interval", value_set=[True]),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID),
    ]
    if contract is UNSW_NB15:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column="is_attack",
                                                            value_set=[0, 1]))
    return gx.ExpectationSuite(name=contract.suite_name,
                               expectations=[_as_row_level(e) for e in expectations])


ROW_LEVEL_MOSTLY = 1.0 - MAX_REJECTED_SHARE


def _as_row_level(expectation: Any) -> Any:
    """A row-level rule passes while few enough rows fail it (``mostly``), so the data docs'
    "Failed" and a result's ``success`` mean the batch was refused, not "some rows went to
    quarantine"; the failing rows are still listed (and quarantined) either way. Table-level
    rules (a column exists) stay strict."""
    import great_expectations.expectations as gxe

    if isinstance(expectation, gxe.ExpectColumnToExist):
        return expectation
    return expectation.copy(update={"mostly": ROW_LEVEL_MOSTLY})


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
    for contract in CONTRACTS.values():
        try:
            source.get_asset(contract.asset)
        except LookupError:
            source.add_dataframe_asset(contract.asset)
        _update_suite(context, build_suite(contract))
    return context


def _signature(suite: Any) -> str:
    return json.dumps([(e.expectation_type, e.configuration.kwargs) for e in suite.expectations],
                      sort_keys=True, default=str)


def _update_suite(context: AbstractDataContext, suite: Any) -> None:
    """Save the suite if the stored one differs (GX's own comparison is pairwise, ~10 s)."""
    try:
        stored = context.suites.get(suite.name)
    except Exception:  # noqa: BLE001 - GX raises different errors for a missing suite
        stored = None
    if stored is None:
        context.suites.add(suite)
    elif _signature(stored) != _signature(suite):
        context.suites.delete(suite.name)
        context.suites.add(suite)
        # definitions and checkpoints hold the old suite's id: register them again
        for name in (f"{suite.name}_checkpoint", f"{suite.name}_checkpoint_nodocs"):
            with contextlib.suppress(Exception):
                context.checkpoints.delete(name)
        with contextlib.suppress(Exception):
            context.validation_definitions.delete(f"{suite.name}_vd")


# Registering a checkpoint re-saves its suite, which compares every expectation pairwise
# (~10 s for this suite): do it once per context and contract, not once per batch.
# The context is kept in the value so that its id cannot be reused by another context.
_CHECKPOINTS: dict[tuple[int, str, bool], tuple[AbstractDataContext, Any]] = {}


def _checkpoint(context: AbstractDataContext, contract: Contract, build_docs: bool) -> Any:
    key = (id(context), contract.suite_name, build_docs)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = (context, _register_checkpoint(context, contract, build_docs))
    return _CHECKPOINTS[key][1]


def _register_checkpoint(context: AbstractDataContext, contract: Contract,
                         build_docs: bool) -> Any:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    asset = context.data_sources.get(DATASOURCE).get_asset(contract.asset)
    try:
        batch_definition = asset.get_batch_definition("whole_batch")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
    name = contract.suite_name
    checkpoint_name = f"{name}_checkpoint{'' if build_docs else '_nodocs'}"
    with contextlib.suppress(Exception):  # registered by an earlier process: reuse it
        return context.checkpoints.get(checkpoint_name)
    try:
        definition = context.validation_definitions.get(f"{name}_vd")
    except Exception:  # noqa: BLE001 - missing definition
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=f"{name}_vd", data=batch_definition, suite=context.suites.get(name)))
    return context.checkpoints.add(gx.Checkpoint(
        name=checkpoint_name,
        validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="update_data_docs")] if build_docs else [],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    ))


def unknown_labels(frame: pd.DataFrame) -> Counter[str]:
    """Raw labels of the rows whose label is outside the taxonomy, with their counts."""
    from collections import Counter

    if "raw_label" not in frame:
        return Counter()
    unknown = frame["label"].isna() & frame["raw_label"].notna()
    return Counter(frame.loc[unknown, "raw_label"].value_counts().to_dict())


def check_labels(unknown: Counter[str], rows: int, contract: Contract) -> None:
    """Batch-level: a label set far outside the known one means the taxonomy mapping is off.

    ``unknown`` counts the raw labels outside the taxonomy among ``rows`` rows (the whole
    batch, or every chunk of a file or a day: :func:`unknown_labels` of each, added).
    """
    share = sum(unknown.values()) / max(rows, 1)
    if share > MAX_UNKNOWN_LABEL_SHARE:
        top = dict(sorted(unknown.items(), key=lambda kv: (-kv[1], str(kv[0])))[:5])
        raise BatchRejected(
            f"{share:.0%} of {rows} rows carry labels outside the "
            f"{contract.suite_name} taxonomy (most common: {top}); known labels: "
            f"{list(contract.labels)}. Map the new spellings in flowguard.schema or check that "
            "the files belong to this dataset.")


def check_some_in_interval(rows_in_interval: int, interval: tuple[datetime, datetime],
                           files: list[str], first: Any, last: Any) -> None:
    """Batch-level: a batch none of whose rows falls in the run's interval is the wrong day.

    ``first``/``last``: the earliest and latest parseable timestamps (``None`` if none).
    """
    if rows_in_interval:
        return
    raise _no_rows_in_interval(interval, files, first, last)


def _no_rows_in_interval(interval: tuple[datetime, datetime], files: list[str], first: Any,
                         last: Any) -> NoRowsInInterval:
    start, end = (as_utc(t) for t in interval)
    held = f"{first} to {last}" if first is not None else "no parseable timestamps"
    return NoRowsInInterval(
        f"no landing row falls in the run's interval [{start}, {end}): the files "
        f"{sorted(files) or '?'} hold flows from {held}. Land this day's files, or trigger the "
        "run for their day.")


def in_interval(stamps: pd.Series, interval: tuple[datetime, datetime]) -> pd.Series:
    """Which of ``stamps`` fall in the run's interval (UTC, half-open)."""
    start, end = (as_utc(t) for t in interval)
    return (stamps >= start) & (stamps < end)


def no_row_in_interval(frames: list[pd.DataFrame], interval: tuple[datetime, datetime]
                       ) -> NoRowsInInterval:
    """The wrong-day verdict for ``frames`` none of whose rows falls in ``interval``: the
    error naming their files and the span of their parseable timestamps."""
    import pandas as pd

    stamps = pd.concat([f["event_timestamp"] for f in frames]).dropna()
    files = sorted({name for f in frames if "source_file" in f
                    for name in f["source_file"].dropna().unique()})
    return _no_rows_in_interval(interval, files, stamps.min() if len(stamps) else None,
                                stamps.max() if len(stamps) else None)


def validate_batch(
    frame: pd.DataFrame, context: AbstractDataContext,
    interval: tuple[datetime, datetime] | None, run_name: str,
    contract: Contract = CICIDS2017, build_docs: bool = True,
    max_rejected_share: float = MAX_REJECTED_SHARE, batch_checks: bool = True,
) -> ValidationOutcome:
    """Run the contract's suite on one batch and split it into valid and quarantined rows.

    Quarantined rows keep every column plus ``quarantine_reasons`` (failed expectations, the
    parse errors) and their source file and line. ``interval`` (UTC, half-open) is the run's
    data interval; ``None`` accepts any time (validating files outside a scheduled run).
    ``build_docs=False`` skips the data docs rebuild (call :func:`build_data_docs` once after
    a series of chunks). ``batch_checks=False`` leaves the label-share and "some row in the
    interval" checks to the caller, who sees every chunk (:func:`flowguard.batch.validate_chunks`).
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    if frame.empty:
        raise BatchRejected("the batch has no rows: check the landing files for this interval")
    missing = [c for c in contract.required if c not in frame.columns]
    if missing:
        raise BatchRejected(f"the batch lacks columns {missing}: the landing layout changed")
    if batch_checks:
        check_labels(unknown_labels(frame), len(frame), contract)
    frame = frame.assign(in_interval=True if interval is None
                         else in_interval(frame["event_timestamp"], interval))
    if interval is not None and batch_checks and not frame["in_interval"].any():
        raise no_row_in_interval([frame], interval)
    checkpoint = _checkpoint(context, contract, build_docs)
    # GX's pandas engine filters the whole batch once per metric: hand it only the columns the
    # suite reads (a third of the time on a CICIDS2017 chunk), the row id included.
    checked = [c for c in dict.fromkeys([*contract.required, "dst_port", "label", "parse_error",
                                          "in_interval", *contract.not_null,
                                          *contract.non_negative, "is_attack"]) if c in frame]
    # GX filters nulls with a boolean mask per metric; when nothing is null pandas answers with
    # a full copy of the frame (two thirds of the run). Copy-on-write makes those copies lazy;
    # scoped to this call, results unchanged (tests/test_validation.py pins the quarantine).
    with pd.option_context("mode.copy_on_write", True):
        result = checkpoint.run(batch_parameters={"dataframe": frame[checked].copy()},
                                run_id=RunIdentifier(run_name=run_name))
    reasons: dict[int, list[str]] = {}
    failed = []
    for validation in result.run_results.values():
        for r in validation.results:
            config = r.expectation_config
            name = f"{config.type}({config.kwargs.get('column', '')})"
            # a row-level rule within its `mostly` passes but still lists its failing rows
            for item in (r.result or {}).get("unexpected_index_list") or []:
                uid = item[ROW_ID] if isinstance(item, dict) else item
                reasons.setdefault(int(uid), []).append(name)
            if r.success:
                continue
            failed.append(name)
            if config.type == "expect_column_to_exist":
                raise BatchRejected(f"the batch lacks column {config.kwargs['column']!r}")
    reason_series = pd.Series("", index=frame.index, dtype=object)
    flagged = frame[ROW_ID].map(lambda u: int(u) in reasons) | (frame["parse_error"] != "")
    if flagged.any():
        rows = frame.loc[flagged, [ROW_ID, "parse_error", *(
            ["raw_label"] if "raw_label" in frame else [])]]
        reason_series[flagged] = [
            quarantine_reason(r.parse_error, reasons.get(int(getattr(r, ROW_ID)), []),
                              getattr(r, "raw_label", None))
            for r in rows.itertuples(index=False)]
    bad = reason_series != ""
    quarantined = frame[bad].assign(quarantine_reasons=reason_series[bad])
    valid = frame[~bad].drop(columns=["in_interval", "parse_error"])
    share = len(quarantined) / len(frame)
    run_result = next(iter(result.run_results.values()))
    statistics = dict(run_result.statistics)
    log.info("validated %d rows: %d valid, %d quarantined (rules with failing rows: %s); "
             "failed expectations: %s", len(frame), len(valid), len(quarantined),
             sorted({n for names in reasons.values() for n in names}), sorted(set(failed)))
    check_accounting(len(frame), len(valid), len(quarantined), run_name)
    if share > max_rejected_share:
        raise BatchRejected(
            f"{share:.0%} of {len(frame)} rows failed validation (limit {max_rejected_share:.0%});"
            f" failed expectations: {sorted(set(failed))}. Inspect the data docs.")
    result_id = str(next(iter(result.run_results.keys())))
    return ValidationOutcome(valid, quarantined, bool(result.success), result_id, statistics)


# Problems of the line itself: every failed expectation of such a row follows from it.
LINE_PROBLEMS = ("truncated line", "missing fields", "extra fields", "binary data", "empty row",
                 "repeated header line", "unbalanced quote")
_NOT_NULL = "expect_column_values_to_not_be_null("
MAX_LISTED_COLUMNS = 3


def quarantine_reason(parse_error: str, expectations: list[str], raw_label: object = None
                      ) -> str:
    """Why a row is quarantined, the cause first and briefly.

    A line-level problem (truncated, extra fields, a repeated header) is the whole reason;
    otherwise the parse and bounds errors come first, then the failed expectations, with an
    unknown label named and more than three missing columns counted rather than listed.
    """
    if parse_error.startswith(LINE_PROBLEMS):
        return f"parse: {parse_error}"
    parts = [f"parse: {parse_error}"] if parse_error else []
    names = [n for n in dict.fromkeys(expectations)
             if n != "expect_column_values_to_be_in_set(parse_error)"]
    label_rules = {"expect_column_values_to_be_in_set(label)", f"{_NOT_NULL}label)"}
    if label_rules & set(names) and isinstance(raw_label, str) and raw_label.strip():
        # the label did not map onto the taxonomy: name it (the rule stays listed after it)
        parts.insert(0, f"unknown label {raw_label.strip()[:60]!r}")
    missing = [n[len(_NOT_NULL):-1] for n in names if n.startswith(_NOT_NULL)]
    parts += [n for n in names if not n.startswith(_NOT_NULL)]
    if len(missing) > MAX_LISTED_COLUMNS:
        shown = ", ".join(missing[:MAX_LISTED_COLUMNS])
        parts.append(f"{_NOT_NULL}{len(missing)} columns: {shown}, ...)")
    else:
        parts += [f"{_NOT_NULL}{c})" for c in missing]
    return "; ".join(parts)


def build_data_docs(context: AbstractDataContext) -> None:
    """Rebuild the data docs site (all validation results kept in the GX project)."""
    context.build_data_docs()
