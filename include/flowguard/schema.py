"""The canonical flow schema and the mapping of the CICIDS2017 layouts onto it.

One place documents names, dtypes and the label taxonomy. The mapping from published headers
to canonical names is data (:data:`CICIDS2017_COLUMNS`), not code spread over the loaders.
Units follow CICFlowMeter: durations and inter-arrival times in microseconds, lengths in
bytes, rates per second.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# (published header, canonical name) in the order of the 85-column "TrafficLabelling" files.
# The 79-column "MachineLearningCVE" files are the same without the first six identifiers
# (Flow ID, addresses, source port, protocol, timestamp) and with Destination Port first.
CICIDS2017_COLUMNS: list[tuple[str, str]] = [
    ("Flow ID", "flow_id"),
    ("Source IP", "src_ip"),
    ("Source Port", "src_port"),
    ("Destination IP", "dst_ip"),
    ("Destination Port", "dst_port"),
    ("Protocol", "protocol"),
    ("Timestamp", "timestamp"),
    ("Flow Duration", "flow_duration"),
    ("Total Fwd Packets", "tot_fwd_pkts"),
    ("Total Backward Packets", "tot_bwd_pkts"),
    ("Total Length of Fwd Packets", "totlen_fwd_pkts"),
    ("Total Length of Bwd Packets", "totlen_bwd_pkts"),
    ("Fwd Packet Length Max", "fwd_pkt_len_max"),
    ("Fwd Packet Length Min", "fwd_pkt_len_min"),
    ("Fwd Packet Length Mean", "fwd_pkt_len_mean"),
    ("Fwd Packet Length Std", "fwd_pkt_len_std"),
    ("Bwd Packet Length Max", "bwd_pkt_len_max"),
    ("Bwd Packet Length Min", "bwd_pkt_len_min"),
    ("Bwd Packet Length Mean", "bwd_pkt_len_mean"),
    ("Bwd Packet Length Std", "bwd_pkt_len_std"),
    ("Flow Bytes/s", "flow_byts_s"),
    ("Flow Packets/s", "flow_pkts_s"),
    ("Flow IAT Mean", "flow_iat_mean"),
    ("Flow IAT Std", "flow_iat_std"),
    ("Flow IAT Max", "flow_iat_max"),
    ("Flow IAT Min", "flow_iat_min"),
    ("Fwd IAT Total", "fwd_iat_tot"),
    ("Fwd IAT Mean", "fwd_iat_mean"),
    ("Fwd IAT Std", "fwd_iat_std"),
    ("Fwd IAT Max", "fwd_iat_max"),
    ("Fwd IAT Min", "fwd_iat_min"),
    ("Bwd IAT Total", "bwd_iat_tot"),
    ("Bwd IAT Mean", "bwd_iat_mean"),
    ("Bwd IAT Std", "bwd_iat_std"),
    ("Bwd IAT Max", "bwd_iat_max"),
    ("Bwd IAT Min", "bwd_iat_min"),
    ("Fwd PSH Flags", "fwd_psh_flags"),
    ("Bwd PSH Flags", "bwd_psh_flags"),
    ("Fwd URG Flags", "fwd_urg_flags"),
    ("Bwd URG Flags", "bwd_urg_flags"),
    ("Fwd Header Length", "fwd_header_len"),
    ("Bwd Header Length", "bwd_header_len"),
    ("Fwd Packets/s", "fwd_pkts_s"),
    ("Bwd Packets/s", "bwd_pkts_s"),
    ("Min Packet Length", "pkt_len_min"),
    ("Max Packet Length", "pkt_len_max"),
    ("Packet Length Mean", "pkt_len_mean"),
    ("Packet Length Std", "pkt_len_std"),
    ("Packet Length Variance", "pkt_len_var"),
    ("FIN Flag Count", "fin_flag_cnt"),
    ("SYN Flag Count", "syn_flag_cnt"),
    ("RST Flag Count", "rst_flag_cnt"),
    ("PSH Flag Count", "psh_flag_cnt"),
    ("ACK Flag Count", "ack_flag_cnt"),
    ("URG Flag Count", "urg_flag_cnt"),
    ("CWE Flag Count", "cwe_flag_cnt"),
    ("ECE Flag Count", "ece_flag_cnt"),
    ("Down/Up Ratio", "down_up_ratio"),
    ("Average Packet Size", "pkt_size_avg"),
    ("Avg Fwd Segment Size", "fwd_seg_size_avg"),
    ("Avg Bwd Segment Size", "bwd_seg_size_avg"),
    ("Fwd Header Length", "fwd_header_len_dup"),  # published twice; must equal the first
    ("Fwd Avg Bytes/Bulk", "fwd_byts_b_avg"),
    ("Fwd Avg Packets/Bulk", "fwd_pkts_b_avg"),
    ("Fwd Avg Bulk Rate", "fwd_blk_rate_avg"),
    ("Bwd Avg Bytes/Bulk", "bwd_byts_b_avg"),
    ("Bwd Avg Packets/Bulk", "bwd_pkts_b_avg"),
    ("Bwd Avg Bulk Rate", "bwd_blk_rate_avg"),
    ("Subflow Fwd Packets", "subflow_fwd_pkts"),
    ("Subflow Fwd Bytes", "subflow_fwd_byts"),
    ("Subflow Bwd Packets", "subflow_bwd_pkts"),
    ("Subflow Bwd Bytes", "subflow_bwd_byts"),
    ("Init_Win_bytes_forward", "init_fwd_win_byts"),
    ("Init_Win_bytes_backward", "init_bwd_win_byts"),
    ("act_data_pkt_fwd", "fwd_act_data_pkts"),
    ("min_seg_size_forward", "fwd_seg_size_min"),
    ("Active Mean", "active_mean"),
    ("Active Std", "active_std"),
    ("Active Max", "active_max"),
    ("Active Min", "active_min"),
    ("Idle Mean", "idle_mean"),
    ("Idle Std", "idle_std"),
    ("Idle Max", "idle_max"),
    ("Idle Min", "idle_min"),
    ("Label", "label"),
]

TRAFFIC_LABELLING_HEADERS = [h for h, _ in CICIDS2017_COLUMNS]
# Header -> canonical name; the second "Fwd Header Length" is told apart by position.
PUBLISHED_TO_CANONICAL = {h: c for h, c in CICIDS2017_COLUMNS if c != "fwd_header_len_dup"}
MACHINE_LEARNING_CVE_HEADERS = TRAFFIC_LABELLING_HEADERS[4:5] + TRAFFIC_LABELLING_HEADERS[7:]

IDENTIFIER_COLUMNS = ["flow_id", "src_ip", "src_port", "dst_ip", "protocol", "timestamp"]
# Model inputs: the destination port and the CICFlowMeter statistics, without the duplicate.
FEATURE_COLUMNS: list[str] = [
    c
    for _, c in CICIDS2017_COLUMNS
    if c not in {*IDENTIFIER_COLUMNS, "fwd_header_len_dup", "label"}
]
# Rates are the only columns the published files leave non-finite (Infinity, NaN, empty).
RATE_COLUMNS = ["flow_byts_s", "flow_pkts_s"]
# Counters and sizes must never be negative. CICFlowMeter does emit negative durations,
# inter-arrival times and initial windows (-1 = not seen): those are not in this list.
NON_NEGATIVE_COLUMNS: list[str] = [
    c
    for c in FEATURE_COLUMNS
    if c.startswith(("tot", "fwd_pkt_len", "bwd_pkt_len", "pkt_len", "subflow"))
    or c.endswith(("_flag_cnt", "_flags"))
]

# Canonical label taxonomy: one spelling per class, upper-cased family names kept as published.
LABELS: list[str] = [
    "BENIGN",
    "FTP-Patator",
    "SSH-Patator",
    "DoS Hulk",
    "DoS GoldenEye",
    "DoS slowloris",
    "DoS Slowhttptest",
    "Heartbleed",
    "Web Attack - Brute Force",
    "Web Attack - XSS",
    "Web Attack - Sql Injection",
    "Infiltration",
    "Bot",
    "PortScan",
    "DDoS",
]
_LABEL_KEYS = {re.sub(r"[^a-z0-9]", "", label.lower()): label for label in LABELS}


def as_utc(ts: object) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is taken to be UTC already."""
    import pandas as pd

    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def canonical_label(raw: str) -> str | None:
    """Map a published label spelling to the canonical one, or ``None`` if unknown.

    Handles case, stray spaces and the web-attack separator, which the published files carry
    as a Windows-1252 en dash (byte 0x96), as its UTF-8 replacement character, or as '-'.
    """
    key = re.sub(r"[^a-z0-9]", "", str(raw).lower())
    return _LABEL_KEYS.get(key)

# Per-source-host activity in the completed hour before a flow (computed at ingest from the
# flows' addresses and timestamps, served online by Feast). These separate scans and floods
# from normal traffic; they are NaN where a layout has no addresses or the host was idle.
HOST_FEATURES: list[str] = [
    "host_flows_1h",
    "host_distinct_dst_ports_1h",
    "host_syn_only_share_1h",
    "host_rst_share_1h",
    "host_bytes_1h",
    "host_mean_duration_1h",
]
MODEL_FEATURES: list[str] = FEATURE_COLUMNS + HOST_FEATURES
