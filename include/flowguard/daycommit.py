"""Day-level commit of the ingest task's writes.

A day is three partition writes (validated flows, host windows, quarantine), each atomic on
its own. Before the first of them replaces anything, the ingest task puts an
``_INCOMPLETE`` marker in the day's flows partition folder, and removes it after the last:
a crash in between leaves the marker, and readers (the training window, entity rows) treat
the day as not ingested until a rerun completes it. Partitions without a marker (written
before the marker existed, or by hand) are complete.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path

log = logging.getLogger(__name__)

INCOMPLETE = "_INCOMPLETE"


def _marker(flows_root: Path, day: date) -> Path:
    return flows_root / f"date={day:%Y-%m-%d}" / INCOMPLETE


def begin_day(flows_root: Path, day: date, run_name: str) -> Path:
    """Mark the day incomplete (durably) before its partitions are replaced."""
    marker = _marker(flows_root, day)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{INCOMPLETE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"run": run_name, "since": datetime.now(UTC).isoformat()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(marker)
    return marker


def commit_day(flows_root: Path, day: date) -> None:
    """All of the day's partitions are written: readers may use it."""
    _marker(flows_root, day).unlink(missing_ok=True)


def is_complete(flows_root: Path, day: date) -> bool:
    """Whether the day's partitions were all written (no ``_INCOMPLETE`` marker)."""
    marker = _marker(flows_root, day)
    if marker.exists():
        log.warning("%s: an ingest of %s did not finish (%s); the day is left out until a "
                    "rerun of its ingest completes it", marker.parent, day,
                    marker.read_text(encoding="utf-8", errors="replace")[:200])
        return False
    return True
