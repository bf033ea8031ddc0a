"""Where a model came from: validation results of its days, trigger, code version, digests.

Everything here reads files other stages already wrote; nothing writes outside MLflow.

Validation results: the ingest DAG validates one day per run and then atomically writes that
day's partition, stamping every row with ``ingested_at``. The Great Expectations file
context stores each validation result as JSON under ``gx/uncommitted/validations/``. The
result behind a partition is therefore the newest stored result validated at or before the
partition's ``ingested_at`` whose run covered that day (ingest runs one day at a time,
``max_active_runs=1``). Results are matched by time, not parsed from run names, so manual,
scheduled and backfill runs are all found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from datetime import date

log = logging.getLogger(__name__)

_P_VALUE = re.compile(r"([A-Za-z_]+) p=([0-9.eE+-]+)")


def frame_digest(frame: pd.DataFrame) -> str:
    """A content digest of every row and column (MLflow's own digest samples 10 k rows)."""
    digest = FrameDigest()
    digest.update(frame)
    return digest.hexdigest()


def _dtype_header(frame: pd.DataFrame) -> str:
    return ",".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items())


class FrameDigest:
    """:func:`frame_digest` of a frame that arrives in consecutive row chunks.

    The digest is sha256 over the dtype header and each row's ``hash_pandas_object`` value, a
    row-wise hash (a categorical hashes by its values, not its codes), so the chunks in row
    order give the digest of the whole frame. Every chunk must have the first one's columns
    and dtypes: a different header would mean a different frame, and raises.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._header: str | None = None

    def update(self, frame: pd.DataFrame) -> None:
        header = _dtype_header(frame)
        if self._header is None:
            self._header = header
            self._sha.update(header.encode())
        elif header != self._header:
            raise ValueError(f"a chunk's columns or dtypes differ from the first chunk's: "
                             f"{header!r} != {self._header!r}")
        self._sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        if self._header is None:
            raise ValueError("no chunk was digested")
        return self._sha.hexdigest()[:16]


def code_version() -> str:
    """``<package version>+g<git sha>[.dirty]``, or the package version outside a checkout."""
    from flowguard import __version__

    try:
        cwd = Path(__file__).parent
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return __version__


def _parse_time(value: str) -> datetime | None:
    for fmt in ("%Y%m%dT%H%M%S.%fZ", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            stamp = datetime.strptime(value, fmt)
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
    return None


def stored_validation_results(gx_dir: Path) -> list[dict[str, Any]]:
    """Every validation result the GX file context stored, oldest first.

    Each entry: ``id`` (suite/run name/run time/batch, the store's key), ``success``, the
    validation time and the statistics.
    """
    root = gx_dir / "gx" / "uncommitted" / "validations"
    results = []
    for path in root.rglob("*.json"):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("unreadable validation result %s: %s", path, exc)
            continue
        meta = payload.get("meta") or {}
        stamp = _parse_time(meta.get("validation_time", "")) or _parse_time(
            (meta.get("run_id") or {}).get("run_time", ""))
        if stamp is None:
            continue
        results.append({
            "id": str(path.relative_to(root).with_suffix("")),
            "success": bool(payload.get("success")),
            "validated_at": stamp.isoformat(),
            "run_name": (meta.get("run_id") or {}).get("run_name"),
            "statistics": payload.get("statistics") or {},
        })
    return sorted(results, key=lambda r: r["validated_at"])


def _sum_statistics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """GX statistics of several chunk results as one: counts added, success rate recomputed."""
    keys = ("evaluated_expectations", "successful_expectations", "unsuccessful_expectations")
    total = {k: sum(int(p.get(k) or 0) for p in parts) for k in keys}
    evaluated = total["evaluated_expectations"]
    total["success_percent"] = (100.0 * total["successful_expectations"] / evaluated
                                if evaluated else None)
    return total


def validation_results_for_days(gx_dir: Path, flows_source: Path, days: list[date]
                                ) -> list[dict[str, Any]]:
    """The validation result behind each day's partition (``id`` None if none is found)."""
    from flowguard.features import partition_path

    stored = stored_validation_results(gx_dir)
    out = []
    for day in days:
        path = partition_path(flows_source, day)
        ingested = pd.read_parquet(path, columns=["ingested_at"])["ingested_at"].max()
        match = None
        if pd.notna(ingested):
            before = [r for r in stored
                      if pd.Timestamp(r["validated_at"]) <= pd.Timestamp(ingested)]
            match = before[-1] if before else None
        if match is not None and match.get("run_name"):
            # The ingest task validates a day chunk by chunk, one stored result per chunk under
            # the run's name: the partition is backed by the run's last block of results.
            chunks = []
            for result in reversed(before):
                if result.get("run_name") != match["run_name"]:
                    break
                chunks.append(result)
            chunks.reverse()
            match = {**match, "chunk_ids": [r["id"] for r in chunks], "chunks": len(chunks),
                     "success": all(r["success"] for r in chunks),
                     "statistics": _sum_statistics([r["statistics"] for r in chunks])}
        out.append({"day": day.isoformat(), "partition": str(path),
                    "ingested_at": None if pd.isna(ingested) else pd.Timestamp(ingested).isoformat(),
                    **(match or {"id": None})})
        if match is None:
            log.warning("no stored validation result for %s (partition %s)", day, path)
    return out


def trigger_info(reason: str, run_type: str | None = None, conf: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Trigger kind (schedule, manual, drift, backfill...) and drift p-values of a run.

    The monitor DAG puts ``reason`` (``drift: drift (all of mmd p=0.001, ...)``) in ``conf``;
    p-values also arrive as ``*_p_value`` keys of ``conf`` when the trigger sends them.
    """
    conf = conf or {}
    text = str(reason or "")
    if text.startswith("drift"):
        kind = "drift"
    elif run_type in ("scheduled", "backfill", "asset_triggered"):
        kind = "schedule" if run_type == "scheduled" else run_type
    else:
        kind = text.split(":", 1)[0].strip() or (run_type or "manual")
    p_values = {k.removesuffix("_p_value"): float(v) for k, v in conf.items()
                if k.endswith("_p_value") and isinstance(v, int | float)}
    for name, value in _P_VALUE.findall(text):
        try:
            p_values.setdefault(name, float(value))
        except ValueError:
            continue
    return {"kind": kind, "reason": text, "run_type": run_type or "", "p_values": p_values}
