"""Read landing CSVs of one day into the canonical schema.

Handles the CICIDS2017 quirks the walking skeleton needs (header whitespace, the duplicated
``Fwd Header Length``, ``Infinity``/NaN rates, label spellings and the Windows-1252 en dash,
the 12-hour clock without AM/PM, empty trailing rows). Nothing is dropped here: rows that
cannot be made canonical keep a ``parse_error`` that validation turns into quarantine.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowguard.schema import FEATURE_COLUMNS, PUBLISHED_TO_CANONICAL, canonical_label

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

CAPTURE_TZ = "America/Halifax"  # CICIDS2017 testbed clock (ADT, UTC-3 in July)
WORKDAY_START_HOUR = 8  # the capture ran 08:00-17:00; an hour below 8 is a PM hour
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class LandingError(ValueError):
    """A landing file cannot be read as any supported layout."""


def files_for_day(landing_dir: Path, day: date) -> list[Path]:
    """Landing CSVs whose published name starts with the day's weekday (any case)."""
    prefix = _WEEKDAYS[day.weekday()]
    return sorted(p for p in landing_dir.glob("*.csv") if p.name.lower().startswith(prefix))


def canonical_columns(headers: list[str], path: Path) -> list[str]:
    """Map published headers (any whitespace, duplicate included) to canonical names."""
    names, seen = [], set()
    for raw in headers:
        header = raw.strip()
        name = PUBLISHED_TO_CANONICAL.get(header)
        if name is None:
            raise LandingError(f"{path}: unknown column {raw!r}; expected a CICIDS2017 layout")
        if name in seen:
            if name != "fwd_header_len":
                raise LandingError(f"{path}: column {header!r} appears twice")
            name = "fwd_header_len_dup"
        seen.add(name)
        names.append(name)
    missing = [c for c in FEATURE_COLUMNS + ["label"] if c not in seen]
    if missing:
        raise LandingError(f"{path}: missing columns {missing}")
    return names


def parse_timestamps(raw: pd.Series, day: date) -> pd.Series:
    """Parse published timestamps (d/m/Y H:M[:S], 12-hour clock without AM/PM) to UTC."""
    text = raw.astype("string").str.strip()
    stamps = pd.to_datetime(text, format="%d/%m/%Y %H:%M:%S", errors="coerce")
    short = stamps.isna()
    stamps[short] = pd.to_datetime(text[short], format="%d/%m/%Y %H:%M", errors="coerce")
    pm = stamps.dt.hour < WORKDAY_START_HOUR
    stamps = stamps.where(~pm, stamps + pd.Timedelta(hours=12))
    return stamps.dt.tz_localize(CAPTURE_TZ).dt.tz_convert("UTC")


def read_landing_file(path: Path, day: date, file_index: int) -> pd.DataFrame:
    """Read one published CSV into canonical columns plus provenance.

    Adds ``flow_uid`` (stable across reruns: day, file index, line), ``source_file``,
    ``source_line``, ``event_timestamp`` (UTC) and ``parse_error`` (empty when fine).
    """
    raw = pd.read_csv(path, dtype=str, encoding="latin-1", header=None, skiprows=1,
                      keep_default_na=False, na_values=[""])
    with path.open(encoding="latin-1") as fh:
        headers = next(iter(fh)).rstrip("\r\n").split(",")
    if raw.shape[1] != len(headers):
        raise LandingError(f"{path}: header has {len(headers)} fields, rows have {raw.shape[1]}")
    raw.columns = canonical_columns(headers, path)
    frame = pd.DataFrame(index=raw.index)
    lines = raw.index.to_numpy() + 2  # 1-based, after the header line
    frame["flow_uid"] = (int(day.strftime("%Y%m%d")) * 100_000_000 + file_index * 10_000_000
                         + lines).astype(np.int64)
    frame["source_file"] = path.name
    frame["source_line"] = lines.astype(np.int64)
    errors = pd.Series("", index=raw.index, dtype=object)

    empty = raw.isna().all(axis=1)
    errors[empty] = "empty row"
    for col in FEATURE_COLUMNS:
        text = raw[col].str.strip()
        values = pd.to_numeric(text.replace({"Infinity": "inf", "-Infinity": "-inf"}),
                               errors="coerce")
        bad = values.isna() & text.notna() & ~text.isin(["NaN", "nan"])
        errors[bad & ~empty] += f"unparseable {col};"
        frame[col] = values.astype("float64")
    # Repair rule for the rates: recompute from totals and duration when duration > 0.
    seconds = frame["flow_duration"] / 1e6
    pkts = frame["tot_fwd_pkts"] + frame["tot_bwd_pkts"]
    byts = frame["totlen_fwd_pkts"] + frame["totlen_bwd_pkts"]
    for col, numerator in (("flow_byts_s", byts), ("flow_pkts_s", pkts)):
        bad = ~np.isfinite(frame[col])
        fix = bad & (seconds > 0)
        frame.loc[fix, col] = (numerator / seconds)[fix]
        frame.loc[bad & ~fix, col] = np.nan
    if "fwd_header_len_dup" in raw.columns:
        dup = pd.to_numeric(raw["fwd_header_len_dup"], errors="coerce")
        errors[(dup != frame["fwd_header_len"]) & dup.notna() & ~empty] += "fwd_header_len mismatch;"

    labels = raw["label"].map(lambda v: canonical_label(v) if isinstance(v, str) else None)
    frame["label"] = labels.astype(object)
    frame["raw_label"] = raw["label"]
    for col in ("flow_id", "src_ip", "dst_ip"):
        frame[col] = raw[col].str.strip() if col in raw.columns else None
    for col in ("src_port", "protocol"):
        frame[col] = pd.to_numeric(raw[col], errors="coerce") if col in raw.columns else np.nan
    if "timestamp" in raw.columns:
        frame["event_timestamp"] = parse_timestamps(raw["timestamp"], day)
        errors[frame["event_timestamp"].isna() & ~empty] += "unparseable timestamp;"
    else:
        # 79-column layout: no timestamps were published. Spread the rows over the working
        # day in file order (the files are in capture order) and say so.
        start = pd.Timestamp(datetime.combine(day, datetime.min.time()) + timedelta(hours=8),
                             tz=CAPTURE_TZ)
        offsets = pd.to_timedelta(np.linspace(0, 9 * 3600, len(raw), endpoint=False), unit="s")
        frame["event_timestamp"] = (start + offsets).tz_convert("UTC")
        log.warning("%s has no timestamps: event times imputed over 08:00-17:00", path)
    frame["parse_error"] = errors.str.rstrip(";")
    return frame


def read_day(landing_dir: Path, day: date) -> pd.DataFrame:
    """All landing rows of one day, canonical, with provenance. Raises if there are none."""
    paths = files_for_day(landing_dir, day)
    if not paths:
        raise LandingError(f"no landing file for {day:%A %Y-%m-%d} in {landing_dir}")
    frames = [read_landing_file(p, day, i) for i, p in enumerate(paths)]
    frame = pd.concat(frames, ignore_index=True)
    log.info("read %d rows for %s from %s", len(frame), day, [p.name for p in paths])
    return frame
