"""Read published flow files (CICIDS2017, UNSW-NB15) into the canonical schema, in chunks.

The layout of a file is recognised from its first line (:func:`sniff`); the mapping of its
columns onto canonical names is the layout's table in :mod:`flowguard.schema`. Files are read
in bounded memory: a pass over the raw lines checks each line's field count (and NUL bytes,
blank rows, exact repeats), and blocks of ``chunk_rows`` good lines are parsed by pyarrow as
text, then converted column by column.

Two kinds of problem, two outcomes:

* the file as a whole is unreadable (empty, header only, wrong delimiter, binary, unknown or
  incomplete header): :class:`LandingError` naming the file and the line;
* one line is bad (truncated, extra or missing fields, text in a numeric field, a NUL byte,
  empty but for commas, an exact repeat of an earlier line): the row is kept with a
  ``parse_error`` naming the field or the problem, which validation turns into quarantine
  with the file and line. Nothing is dropped.

CICIDS2017 quirks handled here: header whitespace, the duplicated ``Fwd Header Length``,
``Infinity``/NaN/empty rates (repaired from totals and duration when the duration is
positive), label spellings and the Windows-1252 en dash, timestamps with and without seconds
on a 12-hour clock without AM/PM, Latin-1 bytes anywhere. UNSW-NB15: headerless raw parts
named by the features file, hexadecimal and ``-`` ports, epoch times, attack categories with
stray spaces and plural spellings.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowguard.schema import (
    ADDRESS_COLUMNS,
    BYTE_COLUMNS,
    CICIDS2017_IMPROVED_EXTRA,
    COUNT_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_FAMILIES,
    LAYOUTS,
    MAX_FLOW_BYTES,
    MAX_FLOW_PACKETS,
    PORT_COLUMNS,
    PORT_RANGE,
    PROTOCOL_RANGE,
    RATE_COLUMNS,
    UNSW_NB15_CATEGORICAL,
    UNSW_NB15_FEATURES,
    UNSW_NB15_RAW_COLUMNS,
    UNSW_PROTOCOL_NUMBERS,
    Layout,
    canonical_ids2018_label,
    canonical_improved_label,
    canonical_label,
    canonical_unsw_category,
    header_key,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

log = logging.getLogger(__name__)

CAPTURE_TZ = "America/Halifax"  # CICIDS2017 testbed clock (ADT, UTC-3 in July)
WORKDAY_START_HOUR = 8  # the capture ran 08:00-17:00; an hour below 8 is a PM hour
CICIDS_WEEK_START = date(2017, 7, 3)
CHUNK_ROWS = 200_000
MAX_LINES_PER_FILE = 10_000_000  # flow_uid reserves 7 digits for the line number
UNSW_FEATURES_FILE = "NUSW-NB15_features.csv"
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# Timestamp formats seen in the published files: (format, 12-hour clock without AM/PM).
TIMESTAMP_FORMATS = [
    ("%d/%m/%Y %H:%M:%S", True),
    ("%d/%m/%Y %H:%M", True),
    ("%d/%m/%Y %I:%M:%S %p", False),
    ("%d/%m/%Y %I:%M %p", False),
    ("%Y-%m-%d %H:%M:%S", False),
]
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark: stripped from line 1 in every layout
# A leading column pandas writes for its index (``to_csv`` without ``index=False``): ignored.
PANDAS_INDEX = "_pandas_index"
_PANDAS_INDEX_NAMES = {"", "unnamed0"}  # header_key of "" and "Unnamed: 0"
# Columns a layout may lack and still be read: the duplicate CICIDS2017 `Fwd Header Length`
# (checked, then dropped) and the improved release's `id` (its pandas index).
OPTIONAL_COLUMNS = {"fwd_header_len_dup", "record_id"}
# Datasets read by the CICFlowMeter path (77-statistic feature block) and their label mapping.
CIC_LABELS = {"cicids2017": canonical_label, "cicids2017_improved": canonical_improved_label,
              "cse_cic_ids2018": canonical_ids2018_label}
CICIDS2018_WORKDAY_START_HOUR = 7  # CNS2022_Code: hours below 7 in the 2018 files are PM hours
SKIPPED_NAMES = {
    UNSW_FEATURES_FILE.lower(): "UNSW-NB15 features list (names of the raw parts' columns; "
                                "read beside them, not as data)",
    "unsw-nb15_list_events.csv": "UNSW-NB15 list of attack events (ground truth, not flows)",
}
_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:inf|infinity|nan))$"
_IP = re.compile(rb"^\s*\d{1,3}(\.\d{1,3}){3}\s*$|^\s*[0-9a-fA-F:]+:[0-9a-fA-F:]*\s*$")


class LandingError(ValueError):
    """A landing file cannot be read as any supported layout (message names file and line)."""


def unreadable(path: Path, exc: OSError) -> str:
    """Why a path cannot be opened, and the fix (permissions, a symlink loop, a folder)."""
    import errno

    if exc.errno == errno.ELOOP:
        return f"{path}: symbolic link loop (the link points back at itself); fix or remove it"
    if isinstance(exc, PermissionError):
        return (f"{path}: permission denied for user {os.getuid()} ({exc.strerror}); make it "
                "readable (chmod o+r, or run as its owner)")
    if path.is_symlink() and not path.exists():
        return f"{path}: dangling symbolic link to {os.readlink(path)}; fix or remove it"
    return f"{path}: cannot be read ({exc.strerror or exc}); check the file and rerun"


def files_for_day(landing_dir: Path, day: date) -> list[Path]:
    """Landing CSVs whose published name starts with the day's weekday (any case)."""
    prefix = _WEEKDAYS[day.weekday()]
    return sorted(p for p in landing_dir.glob("*.csv") if p.name.lower().startswith(prefix))


def cicids_day_from_name(path: Path) -> date | None:
    """The capture day of a published CICIDS2017 file name (``Tuesday-...`` -> 2017-07-04)."""
    name = path.name.lower()
    for offset, weekday in enumerate(_WEEKDAYS[:5]):
        if name.startswith(weekday):
            return CICIDS_WEEK_START + timedelta(days=offset)
    return None


def _map_onto(layout: Layout, fields: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Canonical names of ``fields`` under ``layout`` (matched on :func:`header_key`), the
    fields it does not know (raw), and the canonical columns it lacks. A name published twice
    (CICIDS2017 ``Fwd Header Length``) takes its canonical names in file order."""
    table: dict[str, list[str]] = {}
    for published, canonical in layout.columns:
        table.setdefault(header_key(published), []).append(canonical)
    names, unknown = [], []
    for raw in fields:
        left = table.get(header_key(raw))
        if left:
            names.append(left.pop(0))
        else:
            unknown.append(f"{raw!r} (a second copy)" if header_key(raw) in table else repr(raw))
            names.append("")
    missing = [c for left in table.values() for c in left if c not in OPTIONAL_COLUMNS]
    order = layout.canonical
    return names, unknown, sorted(missing, key=order.index)


def _first(items: list[str], n: int = 5) -> str:
    more = f" (first {n} of {len(items)})" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def match_header(fields: list[str], path: Path,
                 layouts: list[Layout] | None = None) -> tuple[Layout, list[str]]:
    """The layout whose header ``fields`` are (any case, spacing, punctuation, pandas ``.1``
    suffix, a leading pandas index column), and the canonical name of every field.

    Raises :class:`LandingError` naming what is missing or unexpected against the nearest
    layout, and what to do about it.
    """
    candidates = layouts or [lay for lay in LAYOUTS.values() if lay.header]
    index = len(fields) > 1 and header_key(fields[0]) in _PANDAS_INDEX_NAMES
    body = fields[1:] if index else fields
    scored = []
    for layout in candidates:
        names, unknown, missing = _map_onto(layout, body)
        if not unknown and not missing:
            return layout, [PANDAS_INDEX] * index + names
        matched = sum(bool(n) and n not in OPTIONAL_COLUMNS for n in names)
        scored.append((matched, -len(missing), layout, unknown, missing))
    matched, _, layout, unknown, missing = max(scored, key=lambda t: t[:2])
    raise LandingError(_header_problem(path, body, layout, matched, unknown, missing))


def _header_problem(path: Path, fields: list[str], layout: Layout, matched: int,
                    unknown: list[str], missing: list[str]) -> str:
    """Why a header is refused, against its nearest layout, and the fix."""
    supported = ", ".join(name for name, lay in LAYOUTS.items() if lay.header)
    if not matched:
        return (f"{path}:1: header not recognised (first fields {[f.strip() for f in fields[:4]]}):"
                f" no supported layout shares a column with it (supported: {supported}; "
                "UNSW-NB15 raw parts have no header). Use the published CSV files of "
                "CICIDS2017, its improved release, CSE-CIC-IDS2018 or UNSW-NB15")
    published = dict((c, h) for h, c in reversed(layout.columns))
    required = len([c for c in layout.canonical if c not in OPTIONAL_COLUMNS])
    where = f"nearest layout {layout.name}: {matched} of {required} columns match"
    if "dst_port" in missing and len(missing) <= required // 2:
        others = [published[c] for c in missing if c != "dst_port"]
        also = f"; also missing {_first(others)}" if others else ""
        extra = f"; unknown {_first(unknown)}" if unknown else ""
        return (f"{path}:1: no `{published['dst_port']}` column: this looks like a pre-processed "
                f"copy (features selected or scaled); the model needs it: use the published CSV "
                f"files ({where}{also}{extra})")
    parts = []
    if unknown:
        parts.append(f"unknown column{'s' if len(unknown) > 1 else ''} {_first(unknown)}")
    if missing:
        shown = [published[c] for c in missing]
        parts.append(f"missing columns {missing[:5]} (published as {_first(shown)})")
    if unknown and missing:
        fix = ("not a supported layout as published: use the published CSV files, or map the "
               "new names in a layout table in flowguard.schema")
    elif unknown:
        fix = ("remove or rename those columns (the published names are listed in "
               "docs/data.md), or use the published CSV files")
    else:
        fix = ("the file looks cut down (columns dropped, e.g. by feature selection); the model "
               "needs every column: use the published CSV files")
    return f"{path}:1: {' and '.join(parts)}; {where}. Fix: {fix}"


def canonical_columns(headers: list[str], path: Path) -> list[str]:
    """Map published CICIDS2017 headers (either layout, any spacing) to canonical names."""
    return match_header(headers, path, [LAYOUTS["cicids2017_traffic_labelling"],
                                        LAYOUTS["cicids2017_machine_learning_cve"]])[1]


def unsw_names_from_features_file(path: Path) -> list[str]:
    """The raw parts' 49 column names, in order, from ``NUSW-NB15_features.csv``."""
    frame = pd.read_csv(path, encoding="latin-1", dtype=str)
    frame.columns = [c.strip().lower().rstrip(".") for c in frame.columns]
    if not {"no", "name"} <= set(frame.columns):
        raise LandingError(f"{path}:1: expected columns 'No.' and 'Name', got {list(frame.columns)}")
    frame = frame.dropna(subset=["no", "name"])
    return frame.sort_values("no", key=lambda s: s.astype(int))["name"].tolist()


def _unsw_raw_layout(path: Path) -> Layout:
    """The raw-part layout, checked against the features file when it lies beside the data."""
    layout = LAYOUTS["unsw_nb15_raw"]
    features = next((p for p in path.parent.iterdir()
                     if p.name.lower() == UNSW_FEATURES_FILE.lower()), None)
    if features is None:
        log.info("%s: no %s beside it; using the published names", path, UNSW_FEATURES_FILE)
        return layout
    names = unsw_names_from_features_file(features)

    def key(name: str) -> str:
        return re.sub(r"\s+", "", name).lower()

    published = [key(h) for h, _ in UNSW_NB15_RAW_COLUMNS]
    if [key(n) for n in names] != published:
        diff = [(i + 1, a, b) for i, (a, b) in enumerate(zip(names, published, strict=False))
                if key(a) != b][:5]
        raise LandingError(f"{features}: its {len(names)} names differ from the UNSW-NB15 raw "
                           f"layout (49 names); first differences (No., file, expected): {diff}")
    return layout


def sniff(path: Path) -> tuple[Layout, list[str]]:
    """Recognise a file's layout from its first line; return it and the column names to use."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise LandingError(unreadable(path, exc)) from None
    if size == 0:
        raise LandingError(f"{path}: empty file (0 bytes)")
    if head[:2] == b"\x1f\x8b":
        raise LandingError(f"{path}: gzip-compressed; decompress it before ingesting")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise LandingError(f"{path}:1: UTF-16 text (byte-order mark {head[:2].hex(' ')}); "
                           "re-save it as UTF-8 or Latin-1 and ingest that")
    head = head.removeprefix(BOM)
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\r" in first:
        raise LandingError(f"{path}:1: lines end in a bare carriage return (CR, old Mac "
                           "style); convert the line ends to LF or CRLF (e.g. `tr '\\r' "
                           "'\\n'`) and ingest that")
    # A NUL in the first line, or control bytes in more than 1 % of the first 64 KiB: not text.
    # (A NUL further down is one bad line, quarantined as such.)
    nul = first.find(b"\x00")
    controls = sum(head.count(bytes([b])) for b in range(0, 32) if b not in (9, 10, 13))
    if nul >= 0 or controls > len(head) // 100:
        line = head[: nul if nul >= 0 else len(head)].count(b"\n") + 1
        raise LandingError(f"{path}:{line}: binary data, not a text CSV"
                           f"{f' (NUL byte at offset {nul})' if nul >= 0 else ''}")
    text = first.decode("latin-1")
    fields = next(csv.reader([text])) if text else []
    if len(fields) <= 1:
        delim = next((d for d in (";", "\t", "|") if d in text), None)
        hint = f"it seems delimited by {delim!r}" if delim else "it has a single field"
        raise LandingError(f"{path}:1: cannot split the first line on ','; {hint}. "
                           "Supported layouts are comma-separated: re-save it with ',' "
                           "as the delimiter")
    if _IP.match(fields[0].encode("latin-1")):
        layout = _unsw_raw_layout(path)
        return layout, layout.canonical
    return match_header(fields, path)


def _line_problem(line: bytes, raw: bytes, ncols: int) -> str | None:
    """Why a raw line cannot be a row of ``ncols`` fields, or ``None`` if it can."""
    if b"\x00" in line:
        return "binary data (NUL byte) in the line"
    count = line.count(b",") + 1
    if line.count(b'"') % 2:
        return ("unbalanced quote: a quoted field does not close on this line (line breaks "
                "inside quotes are not supported); remove the stray quote")
    if b'"' in line:
        count = len(next(csv.reader([line.decode("latin-1")])))
    if count == ncols:
        return None
    if count < ncols and not raw.endswith(b"\n"):
        return f"truncated line: {count} of {ncols} fields (the file ends mid-row)"
    if count < ncols:
        return f"missing fields: {count} of {ncols}"
    return f"extra fields: {count}, expected {ncols}"


class _Block:
    """Raw lines of one chunk: good lines (to parse) and bad ones (with a reason).

    The good lines are appended to one buffer, newline-terminated: a list of 200 k bytes
    objects would cost twice their text, and joining them a third copy.
    """

    def __init__(self) -> None:
        self.good = bytearray()
        self.good_lines: list[int] = []
        self.dup_of: list[int] = []
        self.bad: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.good_lines) + len(self.bad)


def _blocks(path: Path, ncols: int, header: bool, dedupe: bool,
            chunk_rows: int) -> Iterator[_Block]:
    seen: dict[int, int] = {}
    block = _Block()
    header_line = header_norm = None
    with path.open("rb") as fh:
        started = os.fstat(fh.fileno())
        lineno = 0
        if header:
            header_line = fh.readline().removeprefix(BOM).rstrip(b"\r\n")
            header_norm = _header_norm(header_line)
            lineno = 1
        for raw in fh:
            lineno += 1
            if lineno >= MAX_LINES_PER_FILE:
                raise LandingError(f"{path}:{lineno}: split files above "
                                   f"{MAX_LINES_PER_FILE} lines")
            line = raw.rstrip(b"\r\n")
            if lineno == 1:
                line = line.removeprefix(BOM)
                raw = raw.removeprefix(BOM)
            if not line.strip(b", \t"):
                block.bad.append((lineno, "empty row"))
            elif line == header_line or (header_norm is not None and line[:1].isalpha()
                                         and _header_norm(line) == header_norm):
                block.bad.append((lineno, "repeated header line"))
            elif (line.count(b",") + 1 != ncols or b"\x00" in line or b'"' in line) and (
                    problem := _line_problem(line, raw, ncols)) is not None:
                block.bad.append((lineno, problem))
            else:
                block.good += line
                block.good += b"\n"
                block.good_lines.append(lineno)
                first = 0
                if dedupe:
                    digest = hash(line)
                    first = seen.setdefault(digest, lineno)
                    first = 0 if first == lineno else first
                block.dup_of.append(first)
            if len(block) >= chunk_rows:
                yield block
                block = _Block()
        ended = os.fstat(fh.fileno())
        if (ended.st_size, ended.st_mtime_ns) != (started.st_size, started.st_mtime_ns) \
                or fh.tell() != ended.st_size:
            raise LandingError(
                f"{path}:{lineno}: the file changed while it was read ({started.st_size} bytes "
                f"at the start, {ended.st_size} at the end): it is still being written. Land "
                "it complete (write under another name, then rename) and rerun")
    if lineno <= (1 if header else 0):
        raise LandingError(f"{path}: header only (line 1), no data rows")
    if len(block):
        yield block


def _header_norm(line: bytes) -> bytes:
    """A header line without case, spaces and punctuation: a repeat of it mid-file, re-spaced
    or re-cased, is still the header."""
    return re.sub(rb"[^a-z0-9,]", b"", line.removeprefix(BOM).lower())


def _parse_text(lines: bytearray, names: list[str]) -> pa.Table:
    """Parse good lines (Latin-1, comma-separated, newline-terminated) as all-text columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Latin-1 to UTF-8 only when a byte needs it (the published files are nearly all ASCII).
    data = lines if lines.isascii() else lines.decode("latin-1").encode("utf-8")
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=True),
    )


def _parse_lines(block: _Block, names: list[str], path: Path) -> pa.Table:
    """:func:`_parse_text` of a block's good lines, one row per line or a clear error."""
    import pyarrow as pa

    where = f"{path}:{block.good_lines[0]}-{block.good_lines[-1]}"
    try:
        table = _parse_text(block.good, names)
    except pa.ArrowInvalid as exc:
        raise LandingError(f"{where}: the lines could not be parsed as CSV ({exc}); check the "
                           "quoting of these lines") from None
    if table.num_rows != len(block.good_lines):
        raise LandingError(f"{where}: {len(block.good_lines)} lines parsed to {table.num_rows} "
                           "rows (a quoted field spans lines?); remove the stray quotes")
    return table


def contract_errors(frame: pd.DataFrame, present: set[str],
                    numeric: list[str]) -> pd.Series:
    """Per row, the bounds of :mod:`flowguard.schema` it breaks (``;``-separated, empty if none).

    ``present``: canonical columns the layout publishes (an address a layout does not carry is
    not checked; one it carries must be a valid IPv4/IPv6 address). ``numeric``: the feature
    columns, non-finite values in which are invalid except the repairable rates.
    """
    errors = pd.Series("", index=frame.index, dtype=object)
    for col in numeric:
        if col in RATE_COLUMNS or col not in frame:
            continue
        values = frame[col].to_numpy(dtype="float64")
        errors = _errors_add(errors, np.isinf(values), f"non-finite {col} (Infinity)")
    checks = [(c, PORT_RANGE, "port") for c in PORT_COLUMNS] + [
        ("protocol", PROTOCOL_RANGE, "protocol number")]
    for col, (low, high), what in checks:
        if col not in frame:
            continue
        values = frame[col].to_numpy(dtype="float64")
        known = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            outside = known & ((values < low) | (values > high))
            fraction = known & ~outside & (values != np.floor(values))
        errors = _errors_add(errors, outside, f"{col} outside {low}..{high} ({what})")
        errors = _errors_add(errors, fraction, f"{col} not a whole number")
    for col in COUNT_COLUMNS:
        if col not in frame:
            continue
        values = frame[col].to_numpy(dtype="float64")
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore"):
            fraction = finite & (values != np.floor(values))
            limit = MAX_FLOW_BYTES if col in BYTE_COLUMNS else MAX_FLOW_PACKETS
            huge = finite & (np.abs(values) > limit)
        errors = _errors_add(errors, fraction, f"{col} not a whole number")
        errors = _errors_add(errors, huge, f"{col} above {limit:.0e} (not one flow)")
    for col in ADDRESS_COLUMNS:
        if col not in present or col not in frame:
            continue
        text = frame[col]
        uniques = {v: _is_address(v) for v in pd.unique(text.dropna())}
        bad = text.map(uniques).fillna(False).astype(bool).to_numpy()
        errors = _errors_add(errors, ~bad, f"{col} not an IP address")
    return errors


def _is_address(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value).strip())
    except ValueError:
        return False
    return True


def _numeric(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Float values (NaN for empty) and a mask of text that is not a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(column)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        values = pc.cast(text, pa.float64())
        bad = np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(text, _NUMBER)
        bad = pc.fill_null(pc.invert(ok), False).to_numpy(zero_copy_only=False)
        values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    return values.to_numpy(zero_copy_only=False).astype("float64"), bad


def _text(column: pa.ChunkedArray) -> pd.Series:
    return pd.Series(column.to_pandas(), dtype=object)


def parse_timestamps(raw: pd.Series, day: date | None = None,
                     workday_start_hour: int = WORKDAY_START_HOUR) -> pd.Series:
    """Parse published CICIDS2017 timestamps to UTC (see :data:`TIMESTAMP_FORMATS`).

    The day-first formats without AM/PM are a 12-hour clock over the 08:00-17:00 capture:
    an hour below ``workday_start_hour`` (8; 7 for CSE-CIC-IDS2018) is a PM hour. Local testbed
    time (America/Halifax: ADT in July 2017, AST in February 2018) is converted to UTC.
    """
    text = raw.astype("string").str.strip()
    stamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    for fmt, twelve_hour in TIMESTAMP_FORMATS:
        todo = stamps.isna() & text.notna()
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        if twelve_hour:
            parsed = parsed.where(parsed.dt.hour >= workday_start_hour,
                                  parsed + pd.Timedelta(hours=12))
        stamps[todo] = parsed
    return stamps.dt.tz_localize(CAPTURE_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _count_data_lines(path: Path, header: bool) -> int:
    count, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            count += block.count(b"\n")
            last = block[-1:]
    count += last != b"\n"
    return count - (1 if header else 0)


def _errors_add(errors: pd.Series, mask: np.ndarray | pd.Series, text: str) -> pd.Series:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        errors = errors.copy()
        errors[mask] = errors[mask] + text + ";"
    return errors


def _timestamps(text: pd.Series, layout: Layout, day: date | None) -> pd.Series:
    """UTC flow start times of a CICFlowMeter layout's ``Timestamp`` text.

    CICIDS2017: :func:`parse_timestamps`. Improved CICIDS2017: ISO times already in UTC (the
    release's labelling notebook says so), fractions of a second kept. CSE-CIC-IDS2018:
    ``dd/mm/yyyy HH:MM:SS`` on the testbed's 12-hour clock without AM/PM (CNS2022_Code), AST.
    """
    if layout.dataset == "cicids2017_improved":
        stamps = pd.to_datetime(text.astype("string").str.strip(), format="ISO8601",
                                errors="coerce", utc=True)
        return stamps.astype("datetime64[ns, UTC]")
    if layout.dataset == "cse_cic_ids2018":
        return parse_timestamps(text, day, CICIDS2018_WORKDAY_START_HOUR)
    return parse_timestamps(text, day)


def _cicids_frame(table: pa.Table, layout: Layout, day: date | None, total_rows: int,
                  lines: np.ndarray) -> pd.DataFrame:
    """Canonical rows of a CICFlowMeter layout (CICIDS2017, improved, CSE-CIC-IDS2018) from
    parsed text (good lines only)."""
    n = table.num_rows
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    errors = pd.Series("", index=frame.index, dtype=object)
    extra = [c for c in ("record_id", *CICIDS2017_IMPROVED_EXTRA, "attempted_category")
             if c in table.column_names]
    for col in [*FEATURE_COLUMNS, *extra]:
        values, bad = _numeric(table[col])
        errors = _errors_add(errors, bad, f"unparseable {col}")
        frame[col] = values
    # Repair rule for the rates: recompute from totals and duration when duration > 0.
    seconds = frame["flow_duration"] / 1e6
    pkts = frame["tot_fwd_pkts"] + frame["tot_bwd_pkts"]
    byts = frame["totlen_fwd_pkts"] + frame["totlen_bwd_pkts"]
    for col, numerator in (("flow_byts_s", byts), ("flow_pkts_s", pkts)):
        bad = ~np.isfinite(frame[col])
        fix = bad & (seconds > 0)
        frame.loc[fix, col] = (numerator / seconds)[fix]
        frame.loc[bad & ~fix, col] = np.nan
    if "fwd_header_len_dup" in table.column_names:
        dup, _ = _numeric(table["fwd_header_len_dup"])
        mismatch = (dup != frame["fwd_header_len"].to_numpy()) & ~np.isnan(dup)
        errors = _errors_add(errors, mismatch, "fwd_header_len mismatch")
    raw_label = _text(table["label"])
    to_canonical = CIC_LABELS[layout.dataset]
    uniques = {v: to_canonical(v) for v in raw_label.dropna().unique()}
    frame["label"] = raw_label.map(uniques).astype(object)
    frame["raw_label"] = raw_label
    for col in ("flow_id", "src_ip", "dst_ip"):
        frame[col] = (_text(table[col]).str.strip() if col in table.column_names
                      else pd.Series(None, index=frame.index, dtype=object))
    for col in ("src_port", "protocol"):
        if col in table.column_names:
            frame[col], bad = _numeric(table[col])
            errors = _errors_add(errors, bad, f"unparseable {col}")
        else:
            frame[col] = np.nan
    if "timestamp" in table.column_names:
        frame["event_timestamp"] = _timestamps(_text(table["timestamp"]), layout, day)
        errors = _errors_add(errors, frame["event_timestamp"].isna(), "unparseable timestamp")
        if day is not None and layout.dataset == "cicids2017" and day.day != day.month:
            # The published files are day-first; a date that is the file's capture day with
            # day and month swapped (7/3/2017 in a Monday 3 July file) was written month-first.
            local = frame["event_timestamp"].dt.tz_convert(CAPTURE_TZ)
            swapped = ((local.dt.month == day.day) & (local.dt.day == day.month)
                       & (local.dt.year == day.year)).fillna(False).to_numpy(dtype=bool)
            errors = _errors_add(errors, swapped, f"month-first timestamp (the file's capture "
                                 f"day is {day:%d/%m/%Y}, day first); re-export it day-first")
    elif day is not None:
        # 79-column layout: no timestamps were published. Spread the rows over the working
        # day in file order (the files are in capture order) and say so.
        start = pd.Timestamp(datetime.combine(day, datetime.min.time()) + timedelta(hours=8),
                             tz=CAPTURE_TZ)
        position = (lines - (2 if layout.header else 1)) / max(total_rows, 1)
        frame["event_timestamp"] = (start + pd.to_timedelta(position * 9 * 3600, unit="s")
                                    ).tz_convert("UTC")
    else:
        frame["event_timestamp"] = pd.Series(pd.NaT, index=frame.index,
                                             dtype="datetime64[ns, UTC]")
    present = set(table.column_names)
    errors = errors + contract_errors(frame, present, [*FEATURE_COLUMNS, *extra])
    frame["parse_error"] = errors
    return frame


def _ports(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """UNSW ports: decimal, hexadecimal (``0x000b``) or ``-`` (none, e.g. ICMP)."""
    text = _text(column).str.strip()
    hexa = text.str.startswith("0x", na=False)
    values = pd.to_numeric(text.where(~hexa & (text != "-")), errors="coerce")
    if hexa.any():
        values[hexa] = text[hexa].map(lambda v: int(v, 16) if re.fullmatch(
            r"0x[0-9a-fA-F]+", v) else np.nan)
    bad = values.isna() & text.notna() & (text != "-") & (text != "")
    return values.to_numpy(dtype="float64"), bad.to_numpy()


def _unsw_frame(table: pa.Table, layout: Layout, day: date | None = None, total_rows: int = 0,
                lines: np.ndarray | None = None) -> pd.DataFrame:
    """Canonical UNSW-NB15 rows from parsed text (good lines only).

    The set files publish no times: with a ``day`` (the ingest task's), their rows are spread
    over 08:00-17:00 UTC of it in file order, as the timestamp-less CICIDS2017 layout's are;
    without one (``flowguard validate``) their event times stay empty."""
    n = table.num_rows
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    errors = pd.Series("", index=frame.index, dtype=object)
    names = set(table.column_names)
    for col in [*UNSW_NB15_FEATURES, *(c for c in ("rate", "record_id") if c in names)]:
        values, bad = _numeric(table[col])
        errors = _errors_add(errors, bad, f"unparseable {col}")
        frame[col] = values
    for col in UNSW_NB15_CATEGORICAL:
        frame[col] = _text(table[col]).str.strip()
    for col in ("src_ip", "dst_ip"):
        frame[col] = (_text(table[col]).str.strip() if col in names
                      else pd.Series(None, index=frame.index, dtype=object))
    for col in ("src_port", "dst_port"):
        if col in names:
            values, bad = _ports(table[col])
            errors = _errors_add(errors, bad, f"unparseable {col}")
            frame[col] = values
        else:
            frame[col] = np.nan
    frame["protocol"] = frame["proto"].str.lower().map(UNSW_PROTOCOL_NUMBERS).astype("float64")
    raw_label = _text(table["label"])
    uniques = {v: canonical_unsw_category(v) for v in raw_label.dropna().unique()}
    frame["label"] = raw_label.map(uniques).where(raw_label.notna(), "Normal").astype(object)
    frame["raw_label"] = raw_label
    is_attack, bad = _numeric(table["is_attack"])
    frame["is_attack"] = is_attack
    errors = _errors_add(errors, bad | ~np.isin(is_attack, (0.0, 1.0)), "unparseable is_attack")
    known = frame["label"].notna().to_numpy()
    inconsistent = known & ((frame["label"] == "Normal").to_numpy() != (is_attack == 0))
    errors = _errors_add(errors, inconsistent & ~bad, "is_attack disagrees with attack_cat")
    if "stime" in names:
        for col in ("stime", "ltime"):
            values, bad = _numeric(table[col])
            errors = _errors_add(errors, bad, f"unparseable {col}")
            frame[col] = values
        frame["event_timestamp"] = pd.to_datetime(frame["stime"], unit="s", utc=True)
        errors = _errors_add(errors, frame["event_timestamp"].isna(), "no start time (stime)")
    elif day is not None and lines is not None:
        start = pd.Timestamp(datetime.combine(day, datetime.min.time()) + timedelta(hours=8),
                             tz="UTC")
        position = (lines - (2 if layout.header else 1)) / max(total_rows, 1)
        frame["event_timestamp"] = (start + pd.to_timedelta(position * 9 * 3600, unit="s")
                                    ).astype("datetime64[ns, UTC]")
    else:
        frame["event_timestamp"] = pd.Series(pd.NaT, index=frame.index,
                                             dtype="datetime64[ns, UTC]")
    errors = errors + contract_errors(frame, names, list(UNSW_NB15_FEATURES))
    frame["parse_error"] = errors
    return frame


def uid_base(day: date | None, file_index: int) -> int:
    """First ``flow_uid`` of a file: day, file index, then 7 digits of line number."""
    if day is not None and not 0 <= file_index < 10:
        raise LandingError(f"file index {file_index} for {day}: at most 10 files of one capture "
                           "day fit the flow_uid scheme; validate the folders one at a time")
    return (int(day.strftime("%Y%m%d")) * 100_000_000 if day else 0) + file_index * 10_000_000


def iter_landing_chunks(path: Path, day: date | None = None, file_index: int = 0,
                        chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Canonical chunks of one published file, in line order, with provenance.

    Every data line of the file appears in exactly one chunk, as a row with ``flow_uid``
    (stable across reruns: day, file index, line), ``source_layout``, ``source_file``,
    ``source_line``, ``event_timestamp`` (UTC), ``label``, ``label_family``, ``raw_label`` and
    ``parse_error`` (empty when fine), plus the source's feature block.
    ``day`` dates the ``flow_uid`` and the imputed times of the timestamp-less layout
    (default: the CICIDS2017 day its name implies).
    """
    layout, names = sniff(path)
    if day is None and layout.dataset in ("cicids2017", "cicids2017_improved"):
        day = cicids_day_from_name(path)
    total = (_count_data_lines(path, layout.header)
             if layout.name == "cicids2017_machine_learning_cve"
             or (layout.name == "unsw_nb15_set" and day is not None) else 0)
    if total and day is None:
        log.warning("%s has no timestamps and no weekday in its name: event times left empty",
                    path)
    elif total:
        log.warning("%s has no timestamps: event times imputed over 08:00-17:00", path)
    base = uid_base(day, file_index)
    for block in _blocks(path, len(names), layout.header, layout.identity, chunk_rows):
        lines = np.asarray(block.good_lines, dtype=np.int64)
        if block.good:
            table = _parse_lines(block, names, path)
            frame = (_cicids_frame(table, layout, day, total, lines)
                     if layout.dataset in CIC_LABELS
                     else _unsw_frame(table, layout, day, total, lines))
            dup = np.asarray(block.dup_of, dtype=np.int64)
            if dup.any():
                frame.loc[dup > 0, "parse_error"] += (
                    "exact duplicate of line " + pd.Series(dup[dup > 0]).astype(str) + ";"
                ).to_numpy()
            frame["source_line"] = lines
        else:
            frame = pd.DataFrame({"source_line": np.empty(0, dtype=np.int64)})
        if block.bad:
            bad = pd.DataFrame({"source_line": [b[0] for b in block.bad],
                                "parse_error": [b[1] for b in block.bad]})
            frame = pd.concat([frame, bad], ignore_index=True) if len(frame) else bad
            frame = frame.sort_values("source_line", kind="stable").reset_index(drop=True)
        del block  # the raw lines and the parsed text are not kept while the chunk is used
        table = None
        yield _finish(frame, layout, path, base)


def _finish(frame: pd.DataFrame, layout: Layout, path: Path, base: int) -> pd.DataFrame:
    """Shared columns, dtypes and provenance on a chunk that may mix good and bad lines."""
    lines = frame["source_line"].to_numpy(dtype=np.int64)
    frame["source_line"] = lines
    frame.insert(0, "flow_uid", (base + lines).astype(np.int64))
    frame.insert(1, "source_layout", layout.name)
    frame.insert(2, "source_file", path.name)
    for col in layout.features:
        if col not in frame:
            frame[col] = np.nan
    for col in ("label", "raw_label", "src_ip", "dst_ip"):
        if col not in frame:
            frame[col] = None
    for col in ("src_port", "dst_port", "protocol"):
        if col not in frame:
            frame[col] = np.nan
    if "event_timestamp" not in frame:
        frame["event_timestamp"] = pd.NaT
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
    frame["label_family"] = frame["label"].map(LABEL_FAMILIES).astype(object)
    frame["parse_error"] = frame["parse_error"].fillna("").astype(str).str.rstrip(";")
    return frame


def read_landing_file(path: Path, day: date | None = None, file_index: int = 0,
                      chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """One published file as a single canonical frame (see :func:`iter_landing_chunks`)."""
    chunks = list(iter_landing_chunks(path, day, file_index, chunk_rows))
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def day_files(landing_dir: Path, day: date) -> list[Path]:
    """The day's landing files (:func:`files_for_day`); raises if there are none."""
    paths = files_for_day(landing_dir, day)
    if not paths:
        raise LandingError(f"no landing file for {day:%A %Y-%m-%d} in {landing_dir}")
    return paths


def iter_day_chunks(landing_dir: Path, day: date,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The day's rows, chunk by chunk: each file's chunks in turn, file index in name order."""
    for index, path in enumerate(day_files(landing_dir, day)):
        yield from iter_landing_chunks(path, day, index, chunk_rows)


def read_day(landing_dir: Path, day: date) -> pd.DataFrame:
    """All landing rows of one day in one frame (the chunks of :func:`iter_day_chunks`).

    Memory grows with the day: the ingest task streams the chunks instead.
    """
    paths = day_files(landing_dir, day)
    frame = pd.concat(list(iter_day_chunks(landing_dir, day)), ignore_index=True)
    log.info("read %d rows for %s from %s", len(frame), day, [p.name for p in paths])
    return frame


def landing_inventory(path: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The data CSVs of a file or a folder and its sub-folders (any depth, name order), and
    every other file met on the way with the reason it is skipped."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise LandingError(f"{path}: no such file or folder")
    files, skipped = [], []
    for p in sorted(q for q in path.rglob("*") if q.is_file() or q.is_symlink()):
        if not p.is_file():  # a link that resolves to nothing (dangling, or a loop)
            try:
                p.stat()
                reason = "not a regular file"
            except OSError as exc:
                reason = unreadable(p, exc).removeprefix(f"{p}: ")
            if not p.is_dir():
                skipped.append((p, reason))
            continue
        reason = SKIPPED_NAMES.get(p.name.lower())
        if reason is None and p.suffix.lower() != ".csv":
            reason = f"not a CSV ({p.suffix or 'no extension'})"
        if reason is None:
            files.append(p)
        else:
            skipped.append((p, reason))
    if not files:
        seen = f"; skipped: {[f'{p.name}: {r}' for p, r in skipped[:5]]}" if skipped else ""
        raise LandingError(f"{path}: no .csv file in the folder or its sub-folders{seen}")
    return files, skipped


def landing_files(path: Path) -> list[Path]:
    """The data files of a file or folder (CSV, any case, sub-folders included), without the
    UNSW features list and events list (:func:`landing_inventory`)."""
    return landing_inventory(path)[0]


def count_data_lines(path: Path) -> int:
    """The data lines of a file that could not be read: every line after the first (the
    header, or what was refused as one; all lines of a headerless UNSW raw part). 0 for an
    empty file; a last line without a newline counts."""
    if path.stat().st_size == 0:
        return 0
    with path.open("rb") as fh:
        first = fh.readline(4096).removeprefix(BOM).split(b",", 1)[0]
    return max(_count_data_lines(path, header=not _IP.match(first)), 0)
