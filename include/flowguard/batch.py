"""Validate published files or folders outside Airflow, in bounded memory.

Each file is read chunk by chunk (:func:`flowguard.ingest.iter_landing_chunks`), every chunk
runs through its dataset's Great Expectations contract, and the valid rows and the quarantine
are appended to one parquet file each per source file. Peak memory follows the chunk size,
not the file size. The outputs of a file appear only when the whole file is done (written
to a temporary name, then renamed), so a rerun replaces them and a failed file leaves none.
Row accounting is checked per chunk and per file; data docs are rebuilt once at the end.
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
    iter_landing_chunks,
    landing_files,
    sniff,
)
from flowguard.validation import (
    CONTRACTS,
    MAX_REJECTED_SHARE,
    BatchRejected,
    build_data_docs,
    check_accounting,
    get_context,
    validate_batch,
)

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    import pandas as pd
    import pyarrow as pa
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """Row accounting and output locations of one source file."""

    file: str
    layout: str = ""
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    chunks: int = 0
    valid_path: str | None = None
    quarantine_path: str | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


class _ParquetSink:
    """Append frames to one parquet file under a temporary name; commit renames it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.writer: Any = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame.empty:
            return
        frame = frame.copy()
        for col in frame.select_dtypes(include="object").columns:
            frame[col] = frame[col].astype("string")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        else:
            table = table.select(self.schema.names).cast(self.schema)
        self.writer.write_table(table)
        self.rows += len(frame)

    def commit(self) -> str | None:
        if self.writer is None:
            self.path.unlink(missing_ok=True)
            return None
        self.writer.close()
        self.tmp.replace(self.path)
        return str(self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


def validate_file(path: Path, file_index: int, out_dir: Path, context: AbstractDataContext,
                  interval: tuple[datetime, datetime] | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> FileResult:
    """Ingest and validate one file chunk by chunk; write its valid rows and quarantine."""
    started = time.perf_counter()
    result = FileResult(file=str(path))
    layout, _ = sniff(path)
    result.layout = layout.name
    contract = CONTRACTS[layout.dataset]
    valid = _ParquetSink(out_dir / "valid" / layout.dataset / f"{path.stem}.parquet")
    quarantine = _ParquetSink(out_dir / "quarantine" / layout.dataset / f"{path.stem}.parquet")
    reasons: Counter[str] = Counter()
    try:
        for number, chunk in enumerate(iter_landing_chunks(path, file_index=file_index,
                                                           chunk_rows=chunk_rows)):
            outcome = validate_batch(chunk, context, interval, f"{path.stem}-chunk{number}",
                                     contract=contract, build_docs=False,
                                     max_rejected_share=1.0)
            result.rows_in += len(chunk)
            result.rows_valid += len(outcome.valid)
            result.rows_quarantined += len(outcome.quarantined)
            result.chunks += 1
            for text in outcome.quarantined["quarantine_reasons"]:
                reasons.update(r.strip() for r in text.replace("parse: ", "; ").split(";")
                               if r.strip())
            valid.write(outcome.valid)
            quarantine.write(outcome.quarantined)
            del chunk, outcome
        check_accounting(result.rows_in, valid.rows, quarantine.rows, str(path))
        share = result.rows_quarantined / max(result.rows_in, 1)
        if share > MAX_REJECTED_SHARE:
            raise BatchRejected(
                f"{path}: {share:.0%} of {result.rows_in} rows failed validation (limit "
                f"{MAX_REJECTED_SHARE:.0%}); most common reasons: {reasons.most_common(5)}")
    except BaseException:
        valid.abort()
        quarantine.abort()
        raise
    result.valid_path = valid.commit()
    result.quarantine_path = quarantine.commit()
    result.quarantine_reasons = dict(reasons.most_common(20))
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def validate_path(path: Path, out_dir: Path, gx_dir: Path,
                  interval: tuple[datetime, datetime] | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """Validate a file or every data CSV of a folder; a file that fails does not stop the rest.

    Returns the row accounting per file and in total, where the valid rows, the quarantine and
    the data docs went, and the errors of the files that could not be used.
    """
    started = time.perf_counter()
    context = get_context(gx_dir)
    files: list[FileResult] = []
    per_day: Counter[Any] = Counter()
    for source in landing_files(path):
        day = cicids_day_from_name(source)
        index = per_day[day]
        per_day[day] += 1
        try:
            files.append(validate_file(source, index, out_dir, context, interval, chunk_rows))
        except (LandingError, BatchRejected) as exc:
            log.error("%s", exc)
            files.append(FileResult(file=str(source), error=str(exc)))
    build_data_docs(context)
    totals = {k: sum(getattr(f, k) for f in files)
              for k in ("rows_in", "rows_valid", "rows_quarantined")}
    check_accounting(totals["rows_in"], totals["rows_valid"], totals["rows_quarantined"],
                     str(path))
    return {
        "input": str(path), **totals,
        "files_ok": sum(f.error is None for f in files),
        "files_failed": sum(f.error is not None for f in files),
        "valid_dir": str(out_dir / "valid"), "quarantine_dir": str(out_dir / "quarantine"),
        "data_docs": str(gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"),
        "seconds": round(time.perf_counter() - started, 2),
        "files": [asdict(f) for f in files],
    }
