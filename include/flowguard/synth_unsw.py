"""A seeded synthetic UNSW-NB15 week in the raw parts' layout, built from real rows.

The same method as the CICIDS2017 week (:mod:`flowguard.synth`): each class's rows are drawn
with replacement from the ``pool`` side of the real UNSW-NB15 rows committed under
``data/real/`` (split by :func:`flowguard.realflows.split_rows`; the ``eval`` side is never
drawn), re-stamped into the class's window of the day, with a seeded jitter of the flow's
clock: ``dur`` and every inter-packet, jitter and TCP set-up time are scaled by one
log-normal factor per flow (sigma :data:`TIME_JITTER`) and the two loads (bits per second)
by its inverse. Counts, sizes, TTLs, window sizes and the ``ct_*`` connection counters stay
as measured, so each row keeps Argus's arithmetic (``smean`` = bytes / packets, ``sinpkt`` =
``dur`` / (packets - 1)).

The committed rows come from the published *testing set*, which has no addresses, ports or
times; those are the testbed's, as in the published raw parts: normal traffic between the
59.166.0.0/24 and 149.171.126.0/24 hosts, attacks from 175.45.176.0-3 to the victims
149.171.126.10-19, the destination port the row's ``service`` implies (a random one where it
is ``-``), ``Stime``/``Ltime`` in the day's window. Files are headerless raw parts
(``Monday-UNSW-NB15.csv`` ... ``Friday-UNSW-NB15.csv``, 49 columns, with
``NUSW-NB15_features.csv`` beside them), so the week goes through exactly the loader path of
the published ``UNSW-NB15_1.csv`` ... ``_4.csv``.

Classes: only those with real rows in the pool (the sample holds no Generic, Backdoor or
Worms flow, so the synthetic week has none: :func:`week_sources` says so per class). Weekly
counts are the published raw-part totals (Moustafa & Slay 2015) times ``scale``, spread over
the days the class appears (:data:`SCHEDULE`); Analysis and Shellcode appear only on Thursday
and Friday, after the Monday-Wednesday training window, as new attacks would.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from flowguard.realflows import manifest, real_dir, split_rows
from flowguard.schema import UNSW_NB15_FEATURES, UNSW_NB15_RAW_COLUMNS

log = logging.getLogger(__name__)

WEEK_START = date(2015, 1, 19)  # a Monday; the published capture's first day is 2015-01-22
TIME_JITTER = 0.25
MIN_POOL_ROWS = 2  # a class is drawn from real rows when the pool holds at least this many
# Published flow counts of the four raw parts per class (Moustafa & Slay, MilCIS 2015).
PUBLISHED_TOTALS: dict[str, int] = {
    "Normal": 2_218_761, "Fuzzers": 24_246, "Analysis": 2_677, "Backdoor": 2_329,
    "DoS": 16_353, "Exploits": 44_525, "Generic": 215_481, "Reconnaissance": 13_987,
    "Shellcode": 1_511, "Worms": 174,
}
# class -> (weekdays it appears on, 0 = Monday; UTC window HH:MM-HH:MM)
SCHEDULE: dict[str, tuple[tuple[int, ...], tuple[str, str]]] = {
    "Normal": ((0, 1, 2, 3, 4), ("07:00", "21:00")),
    "Exploits": ((0, 1, 2, 4), ("09:00", "12:00")),
    "DoS": ((0, 2, 4), ("13:00", "14:00")),
    "Reconnaissance": ((1, 2, 3, 4), ("10:00", "11:30")),
    "Fuzzers": ((0, 1, 2, 3, 4), ("14:00", "17:00")),
    "Analysis": ((3, 4), ("15:00", "16:00")),
    "Shellcode": ((3, 4), ("16:00", "17:00")),
    "Generic": ((0, 1, 2, 3, 4), ("08:00", "20:00")),
    "Backdoor": ((2, 3), ("11:00", "12:00")),
    "Worms": ((4,), ("12:00", "12:30")),
}
TIME_COLUMNS = ["dur", "sinpkt", "dinpkt", "sjit", "djit", "tcprtt", "synack", "ackdat"]
LOAD_COLUMNS = ["sload", "dload"]
NORMAL_SOURCES = [f"59.166.0.{i}" for i in range(10)]
SERVERS = [f"149.171.126.{i}" for i in range(10)]
ATTACKERS = [f"175.45.176.{i}" for i in range(4)]
VICTIMS = [f"149.171.126.{i}" for i in range(10, 20)]
SERVICE_PORTS = {"http": 80, "dns": 53, "smtp": 25, "ftp": 21, "ftp-data": 20, "ssh": 22,
                 "pop3": 110, "dhcp": 67, "snmp": 161, "ssl": 443, "irc": 6667, "radius": 1812}
FILE_NAME = "{weekday}-UNSW-NB15.csv"
FEATURES_FILE = "NUSW-NB15_features.csv"


@lru_cache(maxsize=4)
def _load(root: str) -> pd.DataFrame:
    from flowguard.ingest import LandingError, iter_landing_chunks

    base = Path(root)
    frames = []
    for entry in (e for e in manifest(base) if e.get("dataset") == "unsw_nb15"):
        try:
            frame = pd.concat(list(iter_landing_chunks(base / entry["file"])), ignore_index=True)
        except LandingError as exc:
            log.warning("real sample %s not read: %s", entry["file"], exc)
            continue
        frame = frame[(frame["parse_error"] == "") & frame["label"].notna()]
        frame = frame.assign(sample_file=entry["file"],
                             source_repo=entry.get("source_repo", entry["file"]))
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    rows["real_split"] = split_rows(rows)
    return rows


def load_real_unsw(split: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Canonical real UNSW-NB15 rows (valid, labelled) with ``sample_file``, ``source_repo``
    and ``real_split``; ``split`` keeps one side. Cached: callers must not modify it."""
    rows = _load(str((root or real_dir()).resolve()))
    return rows if split is None or rows.empty else rows[rows["real_split"] == split]


def _pools(min_rows: int = MIN_POOL_ROWS) -> dict[str, pd.DataFrame]:
    pool = load_real_unsw("pool")
    if pool.empty:
        return {}
    return {str(k): g.reset_index(drop=True) for k, g in pool.groupby("label", sort=True)
            if len(g) >= min_rows}


def week_sources(min_pool_rows: int = MIN_POOL_ROWS) -> dict[str, str]:
    """Per class: how many real pool rows its synthetic rows are drawn from, or why it is
    left out of the week."""
    pools = _pools(min_pool_rows)
    return {label: (f"real: {len(pools[label])} pool rows" if label in pools else
                    "left out: no real pool rows" if label not in _counts() else
                    f"left out: {_counts()[label]} real pool rows, fewer than {min_pool_rows}")
            for label in PUBLISHED_TOTALS}


def _counts() -> dict[str, int]:
    pool = load_real_unsw("pool")
    return {} if pool.empty else pool["label"].value_counts().to_dict()


def _epochs(rng: np.random.Generator, window: tuple[str, str], n: int, day: date) -> np.ndarray:
    start, end = (datetime.combine(day, datetime.strptime(t, "%H:%M").time(), tzinfo=UTC)
                  for t in window)
    return np.sort(rng.integers(int(start.timestamp()), int(end.timestamp()), n))


def _class_rows(rng: np.random.Generator, label: str, n: int, day: date,
                pool: pd.DataFrame) -> pd.DataFrame:
    """``n`` raw-part rows of one class on ``day`` (module docstring)."""
    rows = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
    out = {c: rows[c].to_numpy(dtype="float64") for c in UNSW_NB15_FEATURES}
    factor = np.exp(TIME_JITTER * rng.standard_normal(n))
    for col in TIME_COLUMNS:
        out[col] = out[col] * factor
    for col in LOAD_COLUMNS:
        out[col] = out[col] / factor
    normal = label == "Normal"
    sources, targets = (NORMAL_SOURCES, SERVERS) if normal else (ATTACKERS, VICTIMS)
    service = rows["service"].astype(str).to_numpy()
    proto = rows["proto"].astype(str).to_numpy()
    ported = np.isin(proto, ("tcp", "udp"))
    dst_port = np.array([SERVICE_PORTS.get(s, 0) for s in service])
    free = ported & (dst_port == 0)
    dst_port[free] = (rng.integers(1, 1024, free.sum()) if label == "Reconnaissance"
                      else rng.integers(1024, 65536, free.sum()))
    stime = _epochs(rng, SCHEDULE[label][1], n, day)
    text = {
        "src_ip": np.array(sources)[rng.integers(0, len(sources), n)],
        "src_port": np.where(ported, rng.integers(1024, 65536, n), 0),
        "dst_ip": np.array(targets)[rng.integers(0, len(targets), n)],
        "dst_port": np.where(ported, dst_port, 0), "proto": proto,
        "state": rows["state"].astype(str).to_numpy(), "service": service,
        "stime": stime, "ltime": stime + np.floor(out["dur"]).astype(np.int64),
        "label": "" if normal else label, "is_attack": 0 if normal else 1,
    }
    frame = pd.DataFrame({canonical: (text[canonical] if canonical in text else out[canonical])
                          for _, canonical in UNSW_NB15_RAW_COLUMNS})
    for col in frame.columns:  # whole numbers as integers, as the raw parts write them
        values = frame[col]
        if values.dtype.kind == "f" and np.all(values == np.round(values)):
            frame[col] = values.astype(np.int64)
    return frame


def inject_quirks(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> pd.DataFrame:
    """Defects on a share ``rate`` of rows each (all quarantined, never repaired): a negative
    byte count, an unparseable duration, an unknown attack category and exact repeats of a
    line (the raw parts carry addresses and times, so a repeat is a duplicated record)."""
    frame = frame.astype({"dur": object, "label": object})
    n = len(frame)
    k = max(1, int(n * rate))
    picks = [rng.choice(n, k, replace=False) for _ in range(3)]
    frame.loc[frame.index[picks[0]], "sbytes"] = -1
    frame.loc[frame.index[picks[1]], "dur"] = "n/a"
    frame.loc[frame.index[picks[2]], "label"] = "UNKNOWN-ATTACK"
    repeats = np.sort(rng.choice(n, k, replace=False))
    order = np.sort(np.concatenate([np.arange(n), repeats]), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _features_file() -> str:
    """``NUSW-NB15_features.csv`` as published: number, name, type, description."""
    lines = ["No.,Name,Type ,Description"]
    lines += [f"{i},{name},,{canonical}" for i, (name, canonical)
              in enumerate(UNSW_NB15_RAW_COLUMNS, start=1)]
    return "\n".join(lines) + "\n"


def generate_week(out_dir: Path, scale: float = 0.01, seed: int = 7, min_per_class: int = 40,
                  days: list[int] | None = None, quirk_rate: float = 0.0,
                  min_pool_rows: int = MIN_POOL_ROWS) -> list[Path]:
    """Write the synthetic week's raw parts (one per weekday) into ``out_dir``.

    ``scale`` multiplies the published per-class totals (spread over the class's days);
    ``min_per_class`` keeps every scheduled attack present on each of its days. The same
    seed, scale and samples give byte-identical files. ``days`` (0 = Monday) restricts the
    output; ``quirk_rate`` injects defects (:func:`inject_quirks`). Beside the CSVs,
    ``synthetic-week.json`` records the settings and where each class came from.
    """
    pools = _pools(min_pool_rows)
    if "Normal" not in pools:
        raise FileNotFoundError(f"no real UNSW-NB15 Normal rows under {real_dir()}: the week is "
                                "built from them (data/real/provenance.json)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FEATURES_FILE).write_text(_features_file())
    written = []
    for offset in range(5):
        if days is not None and offset not in days:
            continue
        rng = np.random.default_rng([seed, offset])
        day = WEEK_START + timedelta(days=offset)
        parts = []
        for label, (weekdays, _) in SCHEDULE.items():
            if offset not in weekdays or label not in pools:
                continue
            n = int(round(PUBLISHED_TOTALS[label] * scale / len(weekdays)))
            parts.append(_class_rows(rng, label, max(n, 1 if label == "Normal" else
                                                     min_per_class), day, pools[label]))
        frame = pd.concat(parts, ignore_index=True).sort_values("stime", kind="stable")
        frame = frame.reset_index(drop=True)
        if quirk_rate > 0:
            frame = inject_quirks(frame, rng, quirk_rate)
        path = out_dir / FILE_NAME.format(weekday=f"{day:%A}")
        tmp = path.with_suffix(".tmp")
        frame.to_csv(tmp, index=False, header=False, float_format="%.10g")
        tmp.replace(path)
        log.info("wrote %s: %d flows", path, len(frame))
        written.append(path)
    (out_dir / "synthetic-week.json").write_text(json.dumps(
        {"generator": "flowguard.synth_unsw.generate_week", "scale": scale, "seed": seed,
         "min_per_class": min_per_class, "quirk_rate": quirk_rate,
         "min_pool_rows": min_pool_rows, "real_dir": str(real_dir()),
         "week_start": WEEK_START.isoformat(), "classes": week_sources(min_pool_rows)},
        indent=2) + "\n")
    return written
