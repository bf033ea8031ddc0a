"""A seeded synthetic CICIDS2017 week written in the published "TrafficLabelling" layout,
built from real flows.

The files carry the real names, the 85 published headers (leading spaces and the duplicated
``Fwd Header Length`` included) and the 12-hour clock without AM/PM of the real timestamps,
so the generated week exercises exactly the loader path that real files take. Class counts
follow the published per-file counts times ``scale``, with a floor so that rare classes
(Heartbleed: 11 flows) still appear at small scales, inside each attack's published window.

Rows come from real flows (``source="real"``, the default): each class's rows are drawn with
replacement from real CICIDS2017 rows (the samples committed under ``data/real/``, or a copy
of the dataset named by ``FLOWGUARD_REAL_DIR``; the ``pool``
side of :mod:`flowguard.realflows`; its ``eval`` side is never drawn, so figures measured on
it are not resubstitution scores), re-stamped into the schedule, with a seeded jitter of
the flow's clock: every duration, inter-arrival and active/idle time is scaled by one factor
per flow (log-normal, sigma :data:`TIME_JITTER`) and every per-second rate by its inverse.
Counts and sizes stay as measured, so each row stays internally consistent (totals, means,
min/max, rates over duration). Addresses and protocol are the real row's where its layout
publishes them; otherwise the testbed's (benign from the internal hosts, attacks from the
attacker to the victim). A class with fewer than :data:`MIN_POOL_ROWS` real rows in the pool
keeps the parametric model
below (``source="parametric"`` uses it for every class): its rows are internally consistent
and class-conditional (ports, packet counts and sizes, durations and flags drawn from
heavy-tailed distributions) but not real, and :func:`week_sources` says which classes came
from where.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowguard.realflows import load_real, real_dir
from flowguard.schema import (
    CICIDS2017_COLUMNS,
    FEATURE_COLUMNS,
    TRAFFIC_LABELLING_HEADERS,
    canonical_label,
)

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

WEEK_START = date(2017, 7, 3)  # Monday of the CICIDS2017 capture week

# file name -> (day offset from Monday, {label: published flow count})
PUBLISHED_FILES: dict[str, tuple[int, dict[str, int]]] = {
    "Monday-WorkingHours.pcap_ISCX.csv": (0, {"BENIGN": 529_918}),
    "Tuesday-WorkingHours.pcap_ISCX.csv": (
        1,
        {"BENIGN": 432_074, "FTP-Patator": 7_938, "SSH-Patator": 5_897},
    ),
    "Wednesday-workingHours.pcap_ISCX.csv": (
        2,
        {
            "BENIGN": 440_031,
            "DoS Hulk": 231_073,
            "DoS GoldenEye": 10_293,
            "DoS slowloris": 5_796,
            "DoS Slowhttptest": 5_499,
            "Heartbleed": 11,
        },
    ),
    "Thursday-WorkingHours-Morning-WebAttacks.pcap_ISCX.csv": (
        3,
        {
            "BENIGN": 168_186,
            "Web Attack \u2013 Brute Force": 1_507,
            "Web Attack \u2013 XSS": 652,
            "Web Attack \u2013 Sql Injection": 21,
        },
    ),
    "Thursday-WorkingHours-Afternoon-Infilteration.pcap_ISCX.csv": (
        3,
        {"BENIGN": 288_566, "Infiltration": 36},
    ),
    "Friday-WorkingHours-Morning.pcap_ISCX.csv": (4, {"BENIGN": 189_067, "Bot": 1_966}),
    "Friday-WorkingHours-Afternoon-PortScan.pcap_ISCX.csv": (
        4,
        {"BENIGN": 127_537, "PortScan": 158_930},
    ),
    "Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv": (4, {"BENIGN": 97_718, "DDoS": 128_027}),
}


@dataclass(frozen=True)
class Profile:
    """Class-conditional generating parameters (medians and log-scale spreads)."""

    ports: tuple[int, ...]
    window: tuple[str, str]  # local time of day, HH:MM
    fwd_pkts: tuple[float, float]  # lognormal median, sigma of (count - 1)
    bwd_pkts: tuple[float, float]
    fwd_size: tuple[float, float]  # median payload bytes per forward packet, sigma
    bwd_size: tuple[float, float]
    duration: tuple[float, float]  # median microseconds, sigma
    syn_only: float = 0.0  # share of SYN-only flows (scans)
    udp: float = 0.0  # share of UDP flows
    init_win: tuple[int, ...] = (8192, 29200, 65535)


PROFILES: dict[str, Profile] = {
    "BENIGN": Profile((443, 80, 53, 123, 137, 22, 8080, 445, 389, 0), ("08:00", "17:00"),
                      (3, 1.2), (3, 1.3), (60, 1.1), (300, 1.4), (1.5e5, 2.6), udp=0.3),
    "FTP-Patator": Profile((21,), ("09:20", "10:20"), (8, 0.2), (12, 0.2), (9, 0.3),
                           (28, 0.3), (5e6, 0.6), init_win=(29200,)),
    "SSH-Patator": Profile((22,), ("14:00", "15:00"), (20, 0.3), (30, 0.3), (60, 0.2),
                           (80, 0.2), (1.1e7, 0.5), init_win=(29200,)),
    "DoS Hulk": Profile((80,), ("10:43", "11:00"), (4, 0.4), (3, 0.9), (90, 0.5),
                        (1600, 0.8), (9e4, 2.0), init_win=(29200, 251)),
    "DoS GoldenEye": Profile((80,), ("11:10", "11:23"), (6, 0.3), (5, 0.3), (70, 0.4),
                             (1700, 0.4), (1.1e7, 0.6), init_win=(29200,)),
    "DoS slowloris": Profile((80,), ("09:47", "10:10"), (7, 0.4), (2, 0.6), (28, 0.3),
                             (5, 1.0), (9e7, 0.4), init_win=(29200,)),
    "DoS Slowhttptest": Profile((80,), ("10:14", "10:35"), (4, 0.4), (1, 0.8), (20, 0.4),
                                (3, 1.0), (8e7, 0.6), init_win=(29200,)),
    "Heartbleed": Profile((444,), ("15:12", "15:32"), (2000, 0.3), (3000, 0.3), (30, 0.2),
                          (2900, 0.1), (1.1e8, 0.1), init_win=(29200,)),
    "Web Attack \u2013 Brute Force": Profile((80,), ("09:20", "10:00"), (3, 0.3), (2, 0.4),
                                           (140, 0.3), (380, 0.3), (5.5e6, 0.4),
                                           init_win=(29200,)),
    "Web Attack \u2013 XSS": Profile((80,), ("10:15", "10:35"), (4, 0.3), (2, 0.4), (330, 0.3),
                                   (360, 0.3), (5.3e6, 0.4), init_win=(29200,)),
    "Web Attack \u2013 Sql Injection": Profile((80,), ("10:40", "10:42"), (4, 0.2), (3, 0.3),
                                             (190, 0.3), (480, 0.3), (5e6, 0.3),
                                             init_win=(29200,)),
    "Infiltration": Profile((444, 139, 445), ("14:19", "15:45"), (40, 1.0), (60, 1.0),
                            (110, 0.6), (600, 0.8), (3e7, 1.0), init_win=(8192,)),
    "Bot": Profile((8080,), ("10:02", "11:02"), (3, 0.3), (2, 0.3), (200, 0.3), (130, 0.3),
                   (1.1e5, 1.2), init_win=(8192,)),
    "PortScan": Profile((0,), ("13:55", "14:35"), (0.5, 0.3), (0.5, 0.3), (0.5, 0.5),
                        (0.5, 0.5), (45, 0.7), syn_only=0.95, init_win=(1024, 29200)),
    "DDoS": Profile((80,), ("15:56", "16:16"), (4, 0.3), (5, 0.4), (8, 0.5), (1400, 0.4),
                    (1.3e6, 1.2), init_win=(8192, 256)),
}

INTERNAL_HOSTS = [f"192.168.10.{i}" for i in (3, 5, 8, 9, 12, 14, 15, 16, 17, 19, 25, 51)]
VICTIM = "192.168.10.50"
ATTACKER = "172.16.0.1"


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _parametric_flows(rng: np.random.Generator, label: str, n: int, day: date) -> pd.DataFrame:
    """Draw ``n`` internally consistent flows of one class on one day from its profile."""
    p = PROFILES[label]
    fwd = 1 + np.floor(_lognormal(rng, *p.fwd_pkts, n)).astype(np.int64)
    bwd = np.floor(_lognormal(rng, *p.bwd_pkts, n)).astype(np.int64)
    syn_only = rng.random(n) < p.syn_only
    bwd[syn_only] = np.minimum(bwd[syn_only], 1)  # RST answer at most
    fwd_mean = np.where(syn_only, 0.0, _lognormal(rng, *p.fwd_size, n).clip(0, 1460))
    bwd_mean = np.where(bwd > 0, _lognormal(rng, *p.bwd_size, n).clip(0, 1460), 0.0)
    fwd_mean = np.round(fwd_mean, 0)
    bwd_mean = np.round(bwd_mean, 0)
    totlen_fwd = fwd * fwd_mean
    totlen_bwd = bwd * bwd_mean

    def _spread(count: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, ...]:
        single = count <= 1
        lo = np.where(single, mean, np.floor(mean * rng.uniform(0.0, 1.0, n)))
        hi = np.where(single, mean, np.minimum(np.ceil(mean * rng.uniform(1.0, 3.0, n)), 1460))
        hi = np.maximum(hi, mean)
        std = np.where(single, 0.0, (hi - lo) / 4.0)
        return lo, hi, std

    fwd_min, fwd_max, fwd_std = _spread(fwd, fwd_mean)
    bwd_min, bwd_max, bwd_std = _spread(bwd, bwd_mean)
    total_pkts = fwd + bwd
    duration = np.maximum(np.round(_lognormal(rng, *p.duration, n)), 1).astype(np.int64)
    seconds = duration / 1e6
    iat_mean = duration / np.maximum(total_pkts - 1, 1)
    iat_max = np.minimum(iat_mean * rng.uniform(1.0, 4.0, n), duration)
    iat_min = iat_mean * rng.uniform(0.0, 0.5, n)
    iat_std = (iat_max - iat_min) / 4.0
    fwd_iat_tot = np.where(fwd > 1, duration * rng.uniform(0.5, 1.0, n), 0)
    fwd_iat_mean = fwd_iat_tot / np.maximum(fwd - 1, 1)
    bwd_iat_tot = np.where(bwd > 1, duration * rng.uniform(0.3, 1.0, n), 0)
    bwd_iat_mean = bwd_iat_tot / np.maximum(bwd - 1, 1)
    pkt_lo = np.minimum(fwd_min, np.where(bwd > 0, bwd_min, fwd_min))
    pkt_hi = np.maximum(fwd_max, bwd_max)
    pkt_mean = (totlen_fwd + totlen_bwd) / total_pkts
    pkt_std = np.sqrt((fwd * fwd_std**2 + bwd * bwd_std**2) / total_pkts)
    hdr = np.where(rng.random(n) < 0.5, 20, 32)
    udp = rng.random(n) < p.udp
    ports = np.array(p.ports)
    if label == "PortScan":
        dst_port = np.minimum(np.floor(_lognormal(rng, 900, 1.6, n)), 65535).astype(np.int64)
    else:
        dst_port = ports[rng.integers(0, len(ports), n)]
        dst_port = np.where(dst_port == 0, rng.integers(1024, 65536, n), dst_port)
    if label == "BENIGN":
        udp = np.isin(dst_port, (53, 123, 137)) | (udp & (dst_port >= 1024))
    protocol = np.where(udp, 17, 6)
    tcp = protocol == 6
    long_flow = seconds > 5
    active = np.where(long_flow, duration * rng.uniform(0.01, 0.2, n), 0)
    idle = np.where(long_flow, duration * rng.uniform(0.5, 0.9, n), 0)

    stamps = _stamps(rng, p.window, n, day)

    if label == "BENIGN":
        src = np.array(INTERNAL_HOSTS)[rng.integers(0, len(INTERNAL_HOSTS), n)]
        dst = np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (n, 4))])
    else:
        src = np.full(n, ATTACKER)
        dst = np.full(n, VICTIM)
    src_port = rng.integers(1024, 65536, n)
    win = np.array(p.init_win)

    cols = {
        "Flow ID": [f"{d}-{s}-{dp}-{sp}-{pr}" for s, d, sp, dp, pr in
                    zip(src, dst, src_port, dst_port, protocol, strict=True)],
        "Source IP": src,
        "Source Port": src_port,
        "Destination IP": dst,
        "Destination Port": dst_port,
        "Protocol": protocol,
        "Timestamp": stamps,
        "Flow Duration": duration,
        "Total Fwd Packets": fwd,
        "Total Backward Packets": bwd,
        "Total Length of Fwd Packets": totlen_fwd,
        "Total Length of Bwd Packets": totlen_bwd,
        "Fwd Packet Length Max": fwd_max,
        "Fwd Packet Length Min": fwd_min,
        "Fwd Packet Length Mean": fwd_mean,
        "Fwd Packet Length Std": fwd_std,
        "Bwd Packet Length Max": bwd_max,
        "Bwd Packet Length Min": bwd_min,
        "Bwd Packet Length Mean": bwd_mean,
        "Bwd Packet Length Std": bwd_std,
        "Flow Bytes/s": (totlen_fwd + totlen_bwd) / seconds,
        "Flow Packets/s": total_pkts / seconds,
        "Flow IAT Mean": iat_mean,
        "Flow IAT Std": iat_std,
        "Flow IAT Max": iat_max,
        "Flow IAT Min": iat_min,
        "Fwd IAT Total": fwd_iat_tot,
        "Fwd IAT Mean": fwd_iat_mean,
        "Fwd IAT Std": fwd_iat_mean * 0.5,
        "Fwd IAT Max": np.minimum(fwd_iat_mean * 2, fwd_iat_tot),
        "Fwd IAT Min": fwd_iat_mean * 0.2,
        "Bwd IAT Total": bwd_iat_tot,
        "Bwd IAT Mean": bwd_iat_mean,
        "Bwd IAT Std": bwd_iat_mean * 0.5,
        "Bwd IAT Max": np.minimum(bwd_iat_mean * 2, bwd_iat_tot),
        "Bwd IAT Min": bwd_iat_mean * 0.2,
        "Fwd PSH Flags": (tcp & (totlen_fwd > 0) & (rng.random(n) < 0.3)).astype(int),
        "Bwd PSH Flags": 0,
        "Fwd URG Flags": 0,
        "Bwd URG Flags": 0,
        "Fwd Header Length": fwd * hdr,
        "Bwd Header Length": bwd * hdr,
        "Fwd Packets/s": fwd / seconds,
        "Bwd Packets/s": bwd / seconds,
        "Min Packet Length": pkt_lo,
        "Max Packet Length": pkt_hi,
        "Packet Length Mean": pkt_mean,
        "Packet Length Std": pkt_std,
        "Packet Length Variance": pkt_std**2,
        "FIN Flag Count": (tcp & ~syn_only & (total_pkts > 3)).astype(int),
        "SYN Flag Count": (tcp & syn_only).astype(int),
        "RST Flag Count": (tcp & syn_only & (bwd > 0)).astype(int),
        "PSH Flag Count": (tcp & (totlen_fwd + totlen_bwd > 0)).astype(int),
        "ACK Flag Count": (tcp & ~syn_only & (rng.random(n) < 0.4)).astype(int),
        "URG Flag Count": (tcp & (rng.random(n) < 0.05)).astype(int),
        "CWE Flag Count": 0,
        "ECE Flag Count": 0,
        "Down/Up Ratio": np.floor(bwd / fwd),
        "Average Packet Size": pkt_mean * total_pkts / np.maximum(total_pkts - 1, 1),
        "Avg Fwd Segment Size": fwd_mean,
        "Avg Bwd Segment Size": bwd_mean,
        "Fwd Header Length.dup": fwd * hdr,
        "Fwd Avg Bytes/Bulk": 0,
        "Fwd Avg Packets/Bulk": 0,
        "Fwd Avg Bulk Rate": 0,
        "Bwd Avg Bytes/Bulk": 0,
        "Bwd Avg Packets/Bulk": 0,
        "Bwd Avg Bulk Rate": 0,
        "Subflow Fwd Packets": fwd,
        "Subflow Fwd Bytes": totlen_fwd,
        "Subflow Bwd Packets": bwd,
        "Subflow Bwd Bytes": totlen_bwd,
        "Init_Win_bytes_forward": np.where(tcp, win[rng.integers(0, len(win), n)], -1),
        "Init_Win_bytes_backward": np.where(tcp & (bwd > 0), rng.choice([-1, 235, 28960, 65160], n), -1),
        "act_data_pkt_fwd": np.where(totlen_fwd > 0, np.maximum(fwd - 2, 1), 0),
        "min_seg_size_forward": hdr,
        "Active Mean": active,
        "Active Std": 0.0,
        "Active Max": active,
        "Active Min": active,
        "Idle Mean": idle,
        "Idle Std": 0.0,
        "Idle Max": idle,
        "Idle Min": idle,
        "Label": label,
    }
    return pd.DataFrame(cols)


# Canonical time columns (microseconds) and per-second rates: the jitter scales the first by a
# per-flow factor and the second by its inverse. The published files write these as integers.
TIME_COLUMNS = [c for c in FEATURE_COLUMNS
                if c == "flow_duration" or "_iat_" in c or c.startswith(("active_", "idle_"))]
RATE_COLUMNS = ["flow_byts_s", "flow_pkts_s", "fwd_pkts_s", "bwd_pkts_s", "fwd_blk_rate_avg",
                "bwd_blk_rate_avg"]
INTEGER_TIME_COLUMNS = [c for c in TIME_COLUMNS
                        if c == "flow_duration" or c.endswith(("_max", "_min", "_tot"))]
TIME_JITTER = 0.1  # sigma of the log of the per-flow clock factor
# A class is drawn from real rows only when the pool holds at least this many of them: a week
# of one class resampled from a few dozen flows is less like that class's real traffic than
# the parametric profile (measured: benchmarks/bench_real.py, docs/data.md).
MIN_POOL_ROWS = 200
# Frame keys in the published column order (the duplicated header told apart, as above).
_PUBLISHED_KEYS = [("Fwd Header Length.dup" if c == "fwd_header_len_dup" else h, c)
                   for h, c in CICIDS2017_COLUMNS]
SOURCES = ("real", "parametric")


def _stamps(rng: np.random.Generator, window: tuple[str, str], n: int, day: date) -> list[str]:
    """``n`` sorted times in the local window, written as the published files write them:
    a 12-hour clock without AM/PM and no leading zeros."""
    start, end = (datetime.combine(day, datetime.strptime(t, "%H:%M").time()) for t in window)
    offsets = np.sort(rng.uniform(0, (end - start).total_seconds(), n))
    stamps = [start + timedelta(seconds=float(s)) for s in offsets]
    return [f"{t.day}/{t.month}/{t.year} {(t.hour - 1) % 12 + 1}:{t.minute:02d}:{t.second:02d}"
            for t in stamps]


def _protocol_from_features(rows: pd.DataFrame) -> np.ndarray:
    """IANA protocol of rows whose layout does not publish it (MachineLearningCVE), from the
    minimum forward segment size CICFlowMeter reports: 8 bytes of header is UDP, 20 or more TCP,
    anything else 0 (as CICFlowMeter writes other protocols)."""
    seg = rows["fwd_seg_size_min"].to_numpy()
    return np.where(seg == 8, 17, np.where(seg >= 20, 6, 0))


def _real_flows(rng: np.random.Generator, label: str, n: int, day: date,
                pool: pd.DataFrame) -> pd.DataFrame:
    """``n`` flows of one class drawn (with replacement) from real ``pool`` rows, re-stamped
    into the class's window on ``day``, each with its own clock jitter (module docstring)."""
    rows = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
    values = {c: rows[c].to_numpy(dtype="float64") for c in FEATURE_COLUMNS}
    duration = values["flow_duration"]
    factor = np.exp(TIME_JITTER * rng.standard_normal(n))
    new_duration = np.round(duration * factor)
    # The factor actually applied: the rounded duration over the measured one.
    factor = np.where(duration > 0, new_duration / np.where(duration > 0, duration, 1), 1.0)
    for col in TIME_COLUMNS:
        scaled = values[col] * factor
        values[col] = np.round(scaled) if col in INTEGER_TIME_COLUMNS else scaled
    for col in RATE_COLUMNS:
        values[col] = values[col] / factor
    profile = PROFILES.get(next((k for k in PROFILES if canonical_label(k) == label), ""))
    window = profile.window if profile else ("08:00", "17:00")
    benign = label == "BENIGN"
    src = rows["src_ip"].astype(object).to_numpy()
    dst = rows["dst_ip"].astype(object).to_numpy()
    no_src = pd.isna(src)
    if no_src.any():
        src[no_src] = (np.array(INTERNAL_HOSTS)[rng.integers(0, len(INTERNAL_HOSTS), no_src.sum())]
                       if benign else ATTACKER)
    no_dst = pd.isna(dst)
    if no_dst.any():
        dst[no_dst] = ([f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (no_dst.sum(), 4))]
                       if benign else VICTIM)
    protocol = rows["protocol"].to_numpy(dtype="float64")
    protocol = np.where(np.isnan(protocol), _protocol_from_features(rows), protocol).astype(np.int64)
    dst_port = values["dst_port"].astype(np.int64)
    src_port = rng.integers(1024, 65536, n)
    cols: dict[str, object] = {
        "Flow ID": [f"{d}-{s}-{dp}-{sp}-{pr}" for s, d, sp, dp, pr in
                    zip(src, dst, src_port, dst_port, protocol, strict=True)],
        "Source IP": src, "Source Port": src_port, "Destination IP": dst,
        "Protocol": protocol, "Timestamp": _stamps(rng, window, n, day),
    }
    for key, col in _PUBLISHED_KEYS:
        if key in cols or col in ("flow_id", "src_ip", "src_port", "dst_ip", "protocol",
                                  "timestamp", "label"):
            continue
        source = values["fwd_header_len" if col == "fwd_header_len_dup" else col]
        integral = np.all(source == np.round(source))
        cols[key] = source.astype(np.int64) if integral else source
    frame = pd.DataFrame({key: cols[key] for key, _ in _PUBLISHED_KEYS if key != "Label"})
    frame["Label"] = next((k for k in PROFILES if canonical_label(k) == label), label)
    return frame


@lru_cache(maxsize=4)
def _pool_by_class(source: str, min_rows: int = MIN_POOL_ROWS) -> dict[str, pd.DataFrame]:
    if source == "parametric":
        return {}
    if source != "real":
        raise ValueError(f"source {source!r}: expected one of {SOURCES}")
    pool = load_real("pool")
    return {str(k): g.reset_index(drop=True) for k, g in pool.groupby("label", sort=True)
            if len(g) >= min_rows}


def _flows_for_class(rng: np.random.Generator, label: str, n: int, day: date,
                     source: str = "real", min_pool_rows: int = MIN_POOL_ROWS) -> pd.DataFrame:
    """``n`` flows of one class (published spelling) on ``day``: real-flow based where the
    pool has the class, from the parametric profile otherwise."""
    pool = _pool_by_class(source, min_pool_rows).get(canonical_label(label) or label)
    if pool is not None:
        return _real_flows(rng, canonical_label(label), n, day, pool)
    return _parametric_flows(rng, label, n, day)


def week_sources(source: str = "real", min_pool_rows: int = MIN_POOL_ROWS) -> dict[str, str]:
    """Per class (canonical name): where its synthetic rows come from."""
    pools = _pool_by_class(source, min_pool_rows)
    counts = load_real("pool")["label"].value_counts() if source == "real" else {}
    out = {}
    for raw in PROFILES:
        label = canonical_label(raw)
        pool = pools.get(label)
        out[label] = (f"real: {len(pool)} pool rows from {pool['sample_file'].nunique()} files"
                      if pool is not None else
                      f"parametric: {counts.get(label, 0)} real pool rows, fewer than "
                      f"{min_pool_rows}" if source == "real" else "parametric")
    return out


TEXT_QUIRK_COLUMNS = ("Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean")


def inject_quirks(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> pd.DataFrame:
    """Reproduce the published files' defects on a share ``rate`` of rows (for each kind).

    Repairable: ``Infinity`` rates with a positive duration. Not repairable (quarantine):
    ``Infinity`` rates on zero-duration flows, negative packet counts, unknown labels,
    unparseable numbers, exact repeats of a row (inserted right after it); plus timestamps
    without seconds (valid) and one trailing row of commas, as in the real files.

    Only the columns that receive text become object columns: a whole-frame ``astype(object)``
    cost 4 GB and most of the generator's time at full scale. The trailing row of commas is
    not part of the frame: :func:`generate_week` writes it (a row of nulls would turn every
    integer column into floats).
    """
    frame = frame.astype({c: object for c in TEXT_QUIRK_COLUMNS})
    n = len(frame)
    k = max(1, int(n * rate))
    picks = [rng.choice(n, k, replace=False) for _ in range(5)]
    frame.loc[frame.index[picks[0]], "Flow Bytes/s"] = "Infinity"
    zero = frame.index[picks[1]]
    frame.loc[zero, "Flow Duration"] = 0
    frame.loc[zero, ["Flow Bytes/s", "Flow Packets/s"]] = "Infinity"
    frame.loc[frame.index[picks[2]], "Total Fwd Packets"] = -1
    frame.loc[frame.index[picks[3]], "Label"] = "UNKNOWN-ATTACK"
    frame.loc[frame.index[picks[4]], "Flow IAT Mean"] = "n/a"
    # Drawn after the other quirks so that adding it left their rows unchanged.
    repeats = np.sort(rng.choice(n, k, replace=False))
    order = np.sort(np.concatenate([np.arange(n), repeats]), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    # Some published files write minutes only ("4/7/2017 8:54"): valid, coarser times.
    short = frame.index[rng.choice(len(frame), k, replace=False)]
    frame.loc[short, "Timestamp"] = frame.loc[short, "Timestamp"].str.rsplit(":", n=1).str[0]
    return frame


def generate_week(
    out_dir: Path, scale: float = 0.01, seed: int = 7, min_per_class: int = 40,
    days: list[int] | None = None, quirk_rate: float = 0.0, source: str = "real",
    min_pool_rows: int = MIN_POOL_ROWS,
) -> list[Path]:
    """Write the synthetic week's CSV files (published names and layout) into ``out_dir``.

    ``scale`` multiplies the published per-file class counts (1.0 gives the full 2.8 M rows);
    ``min_per_class`` keeps rare attacks present at small scales. The same seed, scale and
    samples give byte-identical files. ``days`` (0 = Monday) restricts the output;
    ``quirk_rate`` injects the published files' defects (:func:`inject_quirks`); ``source``
    is ``real`` (rows from the real pool, the default, for every class with at least
    ``min_pool_rows`` of them) or ``parametric``. Beside the CSVs,
    ``synthetic-week.json`` records the settings and where each class's rows came from
    (:func:`week_sources`).
    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: expected one of {SOURCES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, (offset, counts)) in enumerate(PUBLISHED_FILES.items()):
        if days is not None and offset not in days:
            continue
        rng = np.random.default_rng([seed, index])
        day = WEEK_START + timedelta(days=offset)
        parts = []
        for label, count in counts.items():
            n = max(int(round(count * scale)), min_per_class if label != "BENIGN" else 1)
            parts.append(_flows_for_class(rng, label, n, day, source, min_pool_rows))
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        if quirk_rate > 0:
            frame = inject_quirks(frame, rng, quirk_rate)
        # The published header: leading spaces on all but a few names, Fwd Header Length twice.
        frame.columns = [h if h in {"Flow ID", "Label"} else f" {h}" for h in TRAFFIC_LABELLING_HEADERS]
        path = out_dir / name
        tmp = path.with_suffix(".tmp")
        # With quirks, floats keep every digit (as the published files do); without, 10.
        frame.to_csv(tmp, index=False, encoding="cp1252",
                     float_format=None if quirk_rate > 0 else "%.10g")
        if quirk_rate > 0:  # the published files end with a row of commas
            with tmp.open("ab") as fh:
                fh.write(b"," * (frame.shape[1] - 1) + b"\n")
        tmp.replace(path)
        log.info("wrote %s: %d flows", path, len(frame))
        written.append(path)
    sources = week_sources(source, min_pool_rows)
    (out_dir / "synthetic-week.json").write_text(json.dumps(
        {"generator": "flowguard.synth.generate_week", "scale": scale, "seed": seed,
         "min_per_class": min_per_class, "quirk_rate": quirk_rate, "source": source,
         "min_pool_rows": min_pool_rows, "real_dir": str(real_dir()),
         "classes": sources}, indent=2) + "\n")
    parametric = [k for k, v in sources.items() if v.startswith("parametric")]
    if source == "real" and parametric:
        log.warning("fewer than %d real pool rows for %s: those classes come from the "
                    "parametric profiles (see %s)", min_pool_rows, parametric,
                    out_dir / "synthetic-week.json")
    return written
