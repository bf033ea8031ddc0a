"""Real CICIDS2017 flows committed under ``data/real/``: the pool the synthetic week draws from,
and the held-out rows it is measured on.

The samples are public copies of the dataset (``data/real/PROVENANCE.md``), read unmodified
through the project's own loader (:func:`flowguard.ingest.iter_landing_chunks`); only rows
that parse and carry a known label are used. Only the original extractor's layouts feed the
pool (TrafficLabelling and MachineLearningCVE, re-saved copies included): the improved
CICIDS2017 re-extracted the flows with a fixed CICFlowMeter, so its values differ for the
same traffic, and mixing it in would blur the classes the model learns.

Split (:func:`split_rows`): the rows of each class are divided between ``pool`` (the
generator may draw them) and ``eval`` (it never does) **by source repository** where the
class comes from two or more repositories, else by source file, else (one file only) by line
order within the file: its newest ``eval_share`` lines are held out. Every class with enough
rows ends up on both sides; the method used is recorded per class in :func:`split_summary`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flowguard.config import PROJECT_ROOT
from flowguard.schema import FEATURE_COLUMNS, LABELS

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ORIGINAL_LAYOUTS = ("cicids2017_traffic_labelling", "cicids2017_machine_learning_cve")
EVAL_SHARE = 0.35
MIN_SPLIT_ROWS = 4  # a class with fewer real rows goes to the pool only
KEEP = ["label", "src_ip", "dst_ip", "src_port", "protocol", "event_timestamp",
        "source_layout", "source_line"]


def real_dir() -> Path:
    """Folder of the real rows: the committed samples (``data/real``, listed in its
    ``provenance.json``), or ``FLOWGUARD_REAL_DIR``: such a folder, or a copy of the dataset
    (every CSV below it is read; files of other datasets or layouts are skipped)."""
    return Path(os.environ.get("FLOWGUARD_REAL_DIR", PROJECT_ROOT / "data" / "real"))


def manifest(root: Path | None = None) -> list[dict]:
    """The provenance entries (``provenance.json``): one per committed sample file."""
    root = root or real_dir()
    path = root / "provenance.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text())


def _read_one(path: Path) -> pd.DataFrame | None:
    import pandas as pd

    from flowguard.ingest import LandingError, iter_landing_chunks

    try:
        chunks = list(iter_landing_chunks(path))
    except LandingError as exc:
        log.warning("real sample %s not read: %s", path, exc)
        return None
    frame = pd.concat(chunks, ignore_index=True)
    if frame.empty or frame["source_layout"].iloc[0] not in ORIGINAL_LAYOUTS:
        return None
    good = (frame["parse_error"] == "") & frame["label"].isin(LABELS)
    good &= np.isfinite(frame[FEATURE_COLUMNS].to_numpy(dtype="float64")).all(axis=1)
    return frame.loc[good, [*KEEP, *FEATURE_COLUMNS]].reset_index(drop=True)


@lru_cache(maxsize=4)
def _load(root: str) -> pd.DataFrame:
    import pandas as pd

    base = Path(root)
    if (base / "provenance.json").is_file():
        entries = [e for e in manifest(base) if e.get("dataset") == "cicids2017"]
    else:  # a user's own copy of the dataset: every CSV below it, its folder as the source
        entries = [{"file": str(p.relative_to(base)), "source_repo": str(p.parent.relative_to(base))}
                   for p in sorted(base.rglob("*")) if p.is_file() and p.suffix.lower() == ".csv"]
    frames = []
    for entry in entries:
        frame = _read_one(base / entry["file"])
        if frame is None or frame.empty:
            continue
        frame["sample_file"] = entry["file"]
        frame["source_repo"] = entry.get("source_repo", entry["file"])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*KEEP, *FEATURE_COLUMNS, "sample_file", "source_repo",
                                     "real_split"])
    rows = pd.concat(frames, ignore_index=True)
    rows["real_split"] = split_rows(rows)
    return rows


def load_real(split: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Canonical real CICIDS2017 rows (valid, known label, finite features) with their
    ``sample_file``, ``source_repo`` and ``real_split`` (``pool`` or ``eval``).

    ``split``: only that side. Cached per folder: callers must not modify the frame.
    """
    rows = _load(str((root or real_dir()).resolve()))
    return rows if split is None else rows[rows["real_split"] == split]


def _stable(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _hold_out(units: pd.Series, share: float) -> set[str]:
    """Units (repositories or files) to hold out: in a fixed, name-derived order, until they
    carry at least ``share`` of the rows, never all of them."""
    counts = units.value_counts()
    order = sorted(counts.index, key=lambda u: (_stable(str(u)), str(u)))
    held, rows = set(), 0
    for unit in order[:-1] if len(order) > 1 else []:
        if rows >= share * counts.sum():
            break
        held.add(unit)
        rows += counts[unit]
    if held and rows >= counts.sum():  # everything held out: give the pool the largest back
        held.discard(counts.index[0])
    return held


def split_rows(rows: pd.DataFrame, share: float = EVAL_SHARE) -> np.ndarray:
    """``pool`` or ``eval`` for every row (see the module docstring)."""
    out = np.full(len(rows), "pool", dtype=object)
    for _, group in rows.groupby("label", sort=True):
        if len(group) < MIN_SPLIT_ROWS:
            continue
        for unit_col in ("source_repo", "sample_file"):
            if group[unit_col].nunique() > 1:
                held = _hold_out(group[unit_col], share)
                mask = group[unit_col].isin(held).to_numpy()
                if 0 < mask.sum() < len(group):
                    out[group.index[mask]] = "eval"
                    break
        else:
            # One file: its newest lines are held out.
            order = group.sort_values(["sample_file", "source_line"]).index
            out[order[len(order) - max(1, int(round(share * len(order)))):]] = "eval"
    return out


def split_summary(rows: pd.DataFrame | None = None) -> dict[str, dict]:
    """Per class: pool and eval rows, and whether the split is by repository, file or line."""
    rows = load_real() if rows is None else rows
    out = {}
    for label, group in rows.groupby("label", sort=True):
        pool, held = group[group["real_split"] == "pool"], group[group["real_split"] == "eval"]
        if held.empty:
            how = "pool only (too few rows)"
        elif not set(pool["source_repo"]) & set(held["source_repo"]):
            how = "by repository"
        elif not set(pool["sample_file"]) & set(held["sample_file"]):
            how = "by file"
        else:
            how = "by line within a file"
        out[str(label)] = {"pool": len(pool), "eval": len(held), "split": how,
                           "pool_files": sorted(set(pool["sample_file"])),
                           "eval_files": sorted(set(held["sample_file"]))}
    return out
