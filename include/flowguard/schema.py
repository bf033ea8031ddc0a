"""The canonical flow schema and the mapping of every supported source layout onto it.

One place documents names, dtypes and the label taxonomy (prose in ``docs/data.md``). The
mapping from published headers to canonical names is data, one table per layout
(:data:`LAYOUTS`), not code spread over the loaders. A canonical batch is the shared identity
and label fields (:data:`SHARED_COLUMNS`) plus the source's feature block: CICFlowMeter's 77
statistics for CICIDS2017 (:data:`FEATURE_COLUMNS`), Argus/Bro features for UNSW-NB15
(:data:`UNSW_NB15_FEATURES`).
Units follow CICFlowMeter: durations and inter-arrival times in microseconds, lengths in
bytes, rates per second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


# ---------------------------------------------------------------- UNSW-NB15
# The four raw parts (UNSW-NB15_1.csv ... _4.csv) have no header; their 49 names come from
# NUSW-NB15_features.csv (published with a typo, "ct_src_ ltm"). The training and testing set
# CSVs have a 45-column header of their own. Canonical names for the UNSW feature block are the
# set files' lower-case names; the raw parts' spellings map onto them.
# (published name, canonical name) in the raw parts' column order.
UNSW_NB15_RAW_COLUMNS: list[tuple[str, str]] = [
    ("srcip", "src_ip"), ("sport", "src_port"), ("dstip", "dst_ip"), ("dsport", "dst_port"),
    ("proto", "proto"), ("state", "state"), ("dur", "dur"), ("sbytes", "sbytes"),
    ("dbytes", "dbytes"), ("sttl", "sttl"), ("dttl", "dttl"), ("sloss", "sloss"),
    ("dloss", "dloss"), ("service", "service"), ("Sload", "sload"), ("Dload", "dload"),
    ("Spkts", "spkts"), ("Dpkts", "dpkts"), ("swin", "swin"), ("dwin", "dwin"),
    ("stcpb", "stcpb"), ("dtcpb", "dtcpb"), ("smeansz", "smean"), ("dmeansz", "dmean"),
    ("trans_depth", "trans_depth"), ("res_bdy_len", "response_body_len"), ("Sjit", "sjit"),
    ("Djit", "djit"), ("Stime", "stime"), ("Ltime", "ltime"), ("Sintpkt", "sinpkt"),
    ("Dintpkt", "dinpkt"), ("tcprtt", "tcprtt"), ("synack", "synack"), ("ackdat", "ackdat"),
    ("is_sm_ips_ports", "is_sm_ips_ports"), ("ct_state_ttl", "ct_state_ttl"),
    ("ct_flw_http_mthd", "ct_flw_http_mthd"), ("is_ftp_login", "is_ftp_login"),
    ("ct_ftp_cmd", "ct_ftp_cmd"), ("ct_srv_src", "ct_srv_src"), ("ct_srv_dst", "ct_srv_dst"),
    ("ct_dst_ltm", "ct_dst_ltm"), ("ct_src_ ltm", "ct_src_ltm"),
    ("ct_src_dport_ltm", "ct_src_dport_ltm"), ("ct_dst_sport_ltm", "ct_dst_sport_ltm"),
    ("ct_dst_src_ltm", "ct_dst_src_ltm"), ("attack_cat", "label"), ("Label", "is_attack"),
]
# The training/testing set files: (published header, canonical name), in their order.
UNSW_NB15_SET_COLUMNS: list[tuple[str, str]] = [
    (h, {"id": "record_id", "attack_cat": "label", "label": "is_attack"}.get(h, h)) for h in (
        "id,dur,proto,service,state,spkts,dpkts,sbytes,dbytes,rate,sttl,dttl,sload,dload,sloss,"
        "dloss,sinpkt,dinpkt,sjit,djit,swin,stcpb,dtcpb,dwin,tcprtt,synack,ackdat,smean,dmean,"
        "trans_depth,response_body_len,ct_srv_src,ct_state_ttl,ct_dst_ltm,ct_src_dport_ltm,"
        "ct_dst_sport_ltm,ct_dst_src_ltm,is_ftp_login,ct_ftp_cmd,ct_flw_http_mthd,ct_src_ltm,"
        "ct_srv_dst,is_sm_ips_ports,attack_cat,label").split(",")
]
# UNSW feature block: numeric columns both UNSW layouts carry (units as published: dur and
# the jitter/inter-packet times in seconds and milliseconds, loads in bits per second).
UNSW_NB15_FEATURES: list[str] = [
    c for _, c in UNSW_NB15_SET_COLUMNS
    if c not in {"record_id", "proto", "service", "state", "rate", "label", "is_attack"}
]
UNSW_NB15_CATEGORICAL = ["proto", "service", "state"]
# Blank (empty or " ") in the raw parts where the feature does not apply (no HTTP, no FTP):
# nullable rather than guessed as 0.
UNSW_NB15_NULLABLE = ["ct_flw_http_mthd", "is_ftp_login", "ct_ftp_cmd"]
# Every UNSW-NB15 feature is a count, size, time, rate or TCP value: none may be negative.
UNSW_NB15_NON_NEGATIVE: list[str] = list(UNSW_NB15_FEATURES)
UNSW_NB15_LABELS: list[str] = [
    "Normal", "Fuzzers", "Analysis", "Backdoor", "DoS", "Exploits", "Generic",
    "Reconnaissance", "Shellcode", "Worms",
]
_UNSW_KEYS = {re.sub(r"[^a-z0-9]", "", label.lower()): label for label in UNSW_NB15_LABELS}
_UNSW_KEYS.update({"backdoors": "Backdoor", "": "Normal"})  # published spellings
# IANA numbers of the UNSW protocol names that have one (the canonical `protocol` is numeric).
UNSW_PROTOCOL_NUMBERS = {"icmp": 1, "igmp": 2, "ggp": 3, "ipnip": 4, "tcp": 6, "egp": 8,
                         "igp": 9, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50, "ospf": 89,
                         "sctp": 132}

# ---------------------------------------------------------------- shared label taxonomy
# Each source keeps its own class names in `label`; `label_family` is shared across sources.
LABEL_FAMILIES: dict[str, str] = {
    "BENIGN": "benign", "FTP-Patator": "brute_force", "SSH-Patator": "brute_force",
    "DoS Hulk": "dos", "DoS GoldenEye": "dos", "DoS slowloris": "dos",
    "DoS Slowhttptest": "dos", "Heartbleed": "exploit", "Web Attack - Brute Force": "web_attack",
    "Web Attack - XSS": "web_attack", "Web Attack - Sql Injection": "web_attack",
    "Infiltration": "infiltration", "Bot": "botnet", "PortScan": "reconnaissance",
    "DDoS": "ddos",
    "Normal": "benign", "Fuzzers": "fuzzing", "Analysis": "reconnaissance",
    "Backdoor": "backdoor", "DoS": "dos", "Exploits": "exploit", "Generic": "generic",
    "Reconnaissance": "reconnaissance", "Shellcode": "shellcode", "Worms": "worm",
}
# Identity and label fields every canonical batch has, whatever the source (null where a
# layout does not publish them). The per-source feature block follows.
SHARED_COLUMNS = ["flow_uid", "source_layout", "source_file", "source_line", "event_timestamp",
                  "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "label",
                  "label_family", "raw_label", "parse_error"]


def canonical_unsw_category(raw: object) -> str | None:
    """Map a published UNSW-NB15 ``attack_cat`` (stray spaces, plurals, case) to canonical."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return "Normal"
    key = re.sub(r"[^a-z0-9]", "", str(raw).lower())
    if key in _UNSW_KEYS:
        return _UNSW_KEYS[key]
    if key.endswith("s") and key[:-1] in _UNSW_KEYS:
        return _UNSW_KEYS[key[:-1]]
    return _UNSW_KEYS.get(key + "s")


# ---------------------------------------------------------------- layouts as data
@dataclass(frozen=True)
class Layout:
    """One published file layout and its mapping onto the canonical schema.

    ``columns`` is the (published name, canonical name) table in file order; ``header`` says
    whether the file starts with it. ``identity`` layouts carry flow identifiers (addresses,
    ports, times), so an exact repeat of a line is a duplicated record and goes to quarantine;
    in layouts without them identical rows are legitimately distinct flows and are kept.
    """

    name: str
    dataset: str
    columns: tuple[tuple[str, str], ...]
    header: bool
    identity: bool
    features: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def published(self) -> list[str]:
        return [h for h, _ in self.columns]

    @property
    def canonical(self) -> list[str]:
        return [c for _, c in self.columns]


LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (
        Layout("cicids2017_traffic_labelling", "cicids2017", tuple(CICIDS2017_COLUMNS), True,
               True, tuple(FEATURE_COLUMNS), tuple(LABELS)),
        Layout("cicids2017_machine_learning_cve", "cicids2017",
               tuple(CICIDS2017_COLUMNS[4:5] + CICIDS2017_COLUMNS[7:]), True, False,
               tuple(FEATURE_COLUMNS), tuple(LABELS)),
        Layout("unsw_nb15_raw", "unsw_nb15", tuple(UNSW_NB15_RAW_COLUMNS), False, True,
               tuple(UNSW_NB15_FEATURES), tuple(UNSW_NB15_LABELS)),
        Layout("unsw_nb15_set", "unsw_nb15", tuple(UNSW_NB15_SET_COLUMNS), True, False,
               tuple(UNSW_NB15_FEATURES), tuple(UNSW_NB15_LABELS)),
    )
}


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
