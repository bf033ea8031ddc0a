"""Validate published files or folders in bounded memory, chunk by chunk.

Each file is read chunk by chunk (:func:`flowguard.ingest.iter_landing_chunks`), every chunk
runs through its dataset's Great Expectations contract (:func:`validate_chunks`), and the
valid rows and the quarantine are appended to parquet (:class:`ParquetSink`). Peak memory
follows the chunk size, not the file size. ``flowguard validate`` writes one valid and one
quarantine file per source file (:func:`validate_path`); the Airflow ingest task
(:func:`flowguard.pipeline.validate_interval`) runs the same :func:`validate_chunks` over a
day's files. Outputs appear only when the whole file (or day) is done (written to a
temporary name, then renamed), so a rerun replaces them and a failure leaves none. Row
accounting is checked per chunk and over the whole stream; data docs are rebuilt once at
the end.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flowguard.ingest import (
    CHUNK_ROWS,
    LandingError,
    cicids_day_from_name,
    count_data_lines,
    iter_landing_chunks,
    landing_inventory,
    sniff,
    unreadable,
)
from flowguard.validation import (
    CONTRACTS,
    MAX_REJECTED_SHARE,
    BatchRejected,
    Contract,
    ValidationOutcome,
    build_data_docs,
    check_accounting,
    check_labels,
    check_some_in_interval,
    get_context,
    in_interval,
    no_row_in_interval,
    unknown_labels,
    validate_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import datetime
    from pathlib import Path

    import pandas as pd
    import pyarrow as pa
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """Row accounting and output locations of one source file.

    ``rows_in = rows_valid + rows_quarantined + rows_refused``: a file that could not be used
    (``error``) counts its data lines in ``rows_in`` and ``rows_refused``, none read.
    """

    file: str
    layout: str = ""
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_refused: int = 0
    chunks: int = 0
    valid_path: str | None = None
    quarantine_path: str | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    internal_error: bool = False  # the error is a bug of flowguard, not of the file


class ParquetSink:
    """Append frames to one parquet file under a temporary name; commit renames it.

    Columns keep their pandas dtypes (read back, the file gives what ``to_parquet`` of the
    concatenated frames would); object columns are written as text, so a first chunk where
    a text column happens to be all empty does not fix its type to null. ``write_empty``:
    when no frame had rows, commit writes the columns of the first (empty) frame instead of
    leaving no file.
    """

    def __init__(self, path: Path, write_empty: bool = False) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.write_empty = write_empty
        self.writer: Any = None
        self.schema: pa.Schema | None = None
        self.template: pd.DataFrame | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame.empty:
            if self.template is None:
                self.template = frame.head(0)
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema = pa.schema(
                [f.with_type(pa.string()) if pa.types.is_null(f.type) and
                 frame[f.name].dtype == object else f for f in table.schema],
                metadata=table.schema.metadata)
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        table = table.select(self.schema.names).cast(self.schema)
        self.writer.write_table(table)
        self.rows += len(frame)

    def commit(self) -> str | None:
        if self.writer is None:
            if self.write_empty and self.template is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.template.to_parquet(self.tmp, index=False)
                self.tmp.replace(self.path)
                return str(self.path)
            self.path.unlink(missing_ok=True)
            return None
        self.writer.close()
        self.writer = None
        self.tmp.replace(self.path)
        return str(self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.tmp.unlink(missing_ok=True)


@dataclass
class ChunkTally:
    """What a stream of validated chunks held: row accounting and the batch-level facts."""

    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_in_interval: int = 0
    chunks: int = 0
    unknown_labels: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    files: set[str] = field(default_factory=set)
    first: Any = None
    last: Any = None
    result_ids: list[str] = field(default_factory=list)
    success: bool = True

    def add(self, chunk: pd.DataFrame, outcome: ValidationOutcome) -> None:
        self.rows_in += len(chunk)
        self.rows_valid += len(outcome.valid)
        self.rows_quarantined += len(outcome.quarantined)
        self.rows_in_interval += len(outcome.valid) + int(
            outcome.quarantined["in_interval"].sum())
        self.chunks += 1
        self.unknown_labels.update(unknown_labels(chunk))
        for text in outcome.quarantined["quarantine_reasons"]:
            self.reasons.update(r.strip() for r in text.replace("parse: ", "; ").split(";")
                                if r.strip())
        if "source_file" in chunk:
            self.files.update(chunk["source_file"].dropna().unique())
        stamps = chunk["event_timestamp"]
        low, high = stamps.min(), stamps.max()
        if low is not None and low == low:  # NaT != NaT
            self.first = low if self.first is None else min(self.first, low)
            self.last = high if self.last is None else max(self.last, high)
        self.result_ids.append(outcome.result_id)
        self.success = self.success and outcome.success

    def check(self, what: str, contract: Contract,
              interval: tuple[datetime, datetime] | None,
              max_rejected_share: float = MAX_REJECTED_SHARE) -> None:
        """The batch-level checks of :func:`validate_batch`, over every chunk at once."""
        if self.rows_in == 0:
            raise BatchRejected(f"{what}: no rows: check the landing files")
        check_accounting(self.rows_in, self.rows_valid, self.rows_quarantined, what)
        check_labels(self.unknown_labels, self.rows_in, contract)
        if interval is not None:
            check_some_in_interval(self.rows_in_interval, interval, list(self.files),
                                   self.first, self.last)
        share = self.rows_quarantined / self.rows_in
        if share > max_rejected_share:
            raise BatchRejected(
                f"{what}: {share:.0%} of {self.rows_in} rows failed validation (limit "
                f"{max_rejected_share:.0%}); most common reasons: "
                f"{self.reasons.most_common(5)}. Inspect the data docs.")


def skip_if_no_row_in_interval(chunks: Iterable[pd.DataFrame],
                                interval: tuple[datetime, datetime], contract: Contract,
                                max_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The same chunk stream, after a look at its first ``max_rows`` parsed rows.

    A stream that ends within them with rows, labels the taxonomy knows and no row in the
    interval raises :class:`NoRowsInInterval` here, the very verdict :func:`validate_chunks`
    reaches at its end, before Great Expectations is imported or anything is validated or
    written (the scheduled run for a date whose weekday file holds another week). Any other
    stream is handed on whole, the chunks already read first, so nothing is parsed twice.
    """
    from itertools import chain

    seen: list[pd.DataFrame] = []
    rows = 0
    stream = iter(chunks)
    for chunk in stream:
        seen.append(chunk)
        rows += len(chunk)
        if bool(in_interval(chunk["event_timestamp"], interval).any()) or rows >= max_rows:
            return chain(seen, stream)
    if not rows:
        return iter(seen)  # validate_chunks says "no rows"
    unknown: Counter[str] = Counter()
    for chunk in seen:
        unknown.update(unknown_labels(chunk))
    try:
        check_labels(unknown, rows, contract)
    except BatchRejected:
        return iter(seen)  # fails in validate_chunks, with its validation results
    raise no_row_in_interval(seen, interval)


def validate_chunks(chunks: Iterable[pd.DataFrame], context: AbstractDataContext,
                    interval: tuple[datetime, datetime] | None, contract: Contract,
                    run_name: Callable[[int], str],
                    on_valid: Callable[[pd.DataFrame], None],
                    on_quarantine: Callable[[pd.DataFrame], None], what: str,
                    max_rejected_share: float = MAX_REJECTED_SHARE) -> ChunkTally:
    """Validate a stream of canonical chunks, handing on each chunk's valid rows and quarantine.

    The one validation path of both ``flowguard validate`` (per file) and the ingest task
    (per day): each chunk runs through the contract's suite, its rows go to ``on_valid`` and
    ``on_quarantine`` (sinks that append them to disk), and only the tally stays in memory.
    The batch-level rules are then checked over the whole stream (:meth:`ChunkTally.check`):
    no rows, row accounting, labels outside the taxonomy, no row in the interval, too many
    rejected rows. Raises :class:`BatchRejected` (the caller aborts its sinks). Data docs are
    not rebuilt here: call :func:`build_data_docs` once at the end.
    """
    tally = ChunkTally()
    for number, chunk in enumerate(chunks):
        outcome = validate_batch(chunk, context, interval, run_name(number), contract=contract,
                                 build_docs=False, max_rejected_share=1.0, batch_checks=False)
        tally.add(chunk, outcome)
        on_valid(outcome.valid)
        on_quarantine(outcome.quarantined)
        del chunk, outcome
    tally.check(what, contract, interval, max_rejected_share)
    return tally


def day_contract(paths: list[Path]) -> Contract:
    """The one contract of a day's landing files, for the Airflow ingest task.

    The active dataset profile (``FLOWGUARD_DATASET``, :mod:`flowguard.profiles`) names the
    datasets its model reads: for ``cicids2017`` (the CICFlowMeter feature block) a day may
    be original CICIDS2017, improved CICIDS2017 or CSE-CIC-IDS2018 files; for ``unsw_nb15``
    UNSW-NB15 raw parts or set files. One dataset per day (their feature values differ for
    the same traffic); files of another profile's dataset are refused with the setting that
    reads them.
    """
    from flowguard.profiles import ProfileError, active, for_dataset

    profile = active()
    datasets = {p.name: sniff(p)[0].dataset for p in paths}
    found = sorted(set(datasets.values()))
    if len(found) > 1:
        raise BatchRejected(f"the day's landing files mix datasets {datasets}: land one "
                            "dataset per day (their feature values are not comparable)")
    if found[0] not in profile.datasets:
        try:
            other = f"set FLOWGUARD_DATASET={for_dataset(found[0]).name} to ingest them"
        except ProfileError:
            other = "no dataset profile reads them; validate them with `flowguard validate`"
        raise BatchRejected(f"{sorted(datasets)} are {found[0]} files, but the active dataset "
                            f"profile {profile.name} reads {', '.join(profile.datasets)}: "
                            f"{other}")
    return CONTRACTS[found[0]]


def validate_file(path: Path, file_index: int, out_dir: Path, context: AbstractDataContext,
                  interval: tuple[datetime, datetime] | None = None,
                  chunk_rows: int = CHUNK_ROWS, name: str | None = None) -> FileResult:
    """Ingest and validate one file chunk by chunk; write its valid rows and quarantine.

    ``name``: the outputs' name under ``valid/<dataset>/`` and ``quarantine/<dataset>/``
    without suffix (default the file's stem; a folder run passes the path below the folder,
    so ``MachineLearningCVE/Monday...`` and ``TrafficLabelling/Monday...`` do not collide).
    """
    started = time.perf_counter()
    result = FileResult(file=str(path))
    layout, _ = sniff(path)
    result.layout = layout.name
    name = name or path.stem
    valid = ParquetSink(out_dir / "valid" / layout.dataset / f"{name}.parquet")
    quarantine = ParquetSink(out_dir / "quarantine" / layout.dataset / f"{name}.parquet")
    try:
        tally = validate_chunks(
            iter_landing_chunks(path, file_index=file_index, chunk_rows=chunk_rows), context,
            interval, CONTRACTS[layout.dataset], lambda n: f"{path.stem}-chunk{n}",
            valid.write, quarantine.write, str(path))
        check_accounting(tally.rows_in, valid.rows, quarantine.rows, f"{path} (written)")
    except BaseException:
        valid.abort()
        quarantine.abort()
        raise
    result.rows_in, result.rows_valid = tally.rows_in, tally.rows_valid
    result.rows_quarantined, result.chunks = tally.rows_quarantined, tally.chunks
    result.valid_path = valid.commit()
    result.quarantine_path = quarantine.commit()
    result.quarantine_reasons = dict(tally.reasons.most_common(20))
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _refused(source: Path, error: str, internal: bool = False) -> FileResult:
    """A file none of whose rows were used, its data lines counted as refused."""
    try:
        lines = count_data_lines(source)
    except OSError:
        lines = 0  # unreadable: no line can be counted
    return FileResult(file=str(source), rows_in=lines, rows_refused=lines, error=error,
                      internal_error=internal)


def validate_path(path: Path, out_dir: Path, gx_dir: Path,
                  interval: tuple[datetime, datetime] | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """Validate a file, or every data CSV of a folder and its sub-folders; a file that fails
    does not stop the rest.

    Returns the row accounting per file and in total (``rows_in = rows_valid +
    rows_quarantined + rows_refused``, a refused file's data lines all refused), where the
    valid rows, the quarantine and the data docs went, the errors of the files that could not
    be used, and every file skipped with the reason.
    """
    started = time.perf_counter()
    sources, skipped = landing_inventory(path)
    for source, reason in skipped:
        log.warning("skipped %s: %s", source, reason)
    context = get_context(gx_dir)
    files: list[FileResult] = []
    per_day: Counter[Any] = Counter()
    for source in sources:
        day = cicids_day_from_name(source)
        index = per_day[day]
        per_day[day] += 1
        name = str(source.relative_to(path).with_suffix("")) if path.is_dir() else None
        try:
            files.append(validate_file(source, index, out_dir, context, interval, chunk_rows,
                                       name))
        except (LandingError, BatchRejected) as exc:
            log.error("%s", exc)
            files.append(_refused(source, str(exc)))
        except OSError as exc:  # unreadable, vanished or changed under us: the file's problem
            log.error("%s", unreadable(source, exc))
            files.append(_refused(source, unreadable(source, exc)))
        except Exception as exc:  # noqa: BLE001 - one file's crash must not stop the folder
            log.exception("internal error on %s", source)
            files.append(_refused(source, f"{source}: internal error ({type(exc).__name__}: "
                                  f"{str(exc)[:300]}); this is a flowguard bug: report it with "
                                  "the file; the other files were validated", internal=True))
    build_data_docs(context)
    totals = {k: sum(getattr(f, k) for f in files)
              for k in ("rows_in", "rows_valid", "rows_quarantined", "rows_refused")}
    check_accounting(totals["rows_in"] - totals["rows_refused"], totals["rows_valid"],
                     totals["rows_quarantined"], str(path))
    return {
        "input": str(path), **totals,
        "files_ok": sum(f.error is None for f in files),
        "files_failed": sum(f.error is not None for f in files),
        "files_skipped": len(skipped),
        "files_crashed": sum(f.internal_error for f in files),
        "valid_dir": str(out_dir / "valid"), "quarantine_dir": str(out_dir / "quarantine"),
        "data_docs": str(gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"),
        "seconds": round(time.perf_counter() - started, 2),
        "files": [asdict(f) for f in files],
        "skipped": [{"file": str(p), "reason": r} for p, r in skipped],
    }
