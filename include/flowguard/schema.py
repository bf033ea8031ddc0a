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

# ---------------------------------------------------------------- improved CICIDS2017
# Engelen et al. (WTMC 2021; CNS 2022 release, intrusion-detection.distrinet-research.be):
# the week's PCAPs re-extracted with a fixed CICFlowMeter and relabelled. One file per day
# (monday.csv ... friday.csv), 91 columns: the pandas index written as `id`, the identifiers
# under CICFlowMeter 4's short names, the 77 statistics (some renamed, `CWR Flag Count` for the
# original's misspelt `CWE Flag Count`), five new ones, `Label` and `Attempted Category`.
# Header as written by the release's labelling notebook (GintsEngelen/CNS2022_Code).
CICIDS2017_IMPROVED_COLUMNS: list[tuple[str, str]] = [
    ("id", "record_id"), ("Flow ID", "flow_id"), ("Src IP", "src_ip"), ("Src Port", "src_port"),
    ("Dst IP", "dst_ip"), ("Dst Port", "dst_port"), ("Protocol", "protocol"),
    ("Timestamp", "timestamp"), ("Flow Duration", "flow_duration"),
    ("Total Fwd Packet", "tot_fwd_pkts"), ("Total Bwd packets", "tot_bwd_pkts"),
    ("Total Length of Fwd Packet", "totlen_fwd_pkts"),
    ("Total Length of Bwd Packet", "totlen_bwd_pkts"),
    ("Fwd Packet Length Max", "fwd_pkt_len_max"), ("Fwd Packet Length Min", "fwd_pkt_len_min"),
    ("Fwd Packet Length Mean", "fwd_pkt_len_mean"), ("Fwd Packet Length Std", "fwd_pkt_len_std"),
    ("Bwd Packet Length Max", "bwd_pkt_len_max"), ("Bwd Packet Length Min", "bwd_pkt_len_min"),
    ("Bwd Packet Length Mean", "bwd_pkt_len_mean"), ("Bwd Packet Length Std", "bwd_pkt_len_std"),
    ("Flow Bytes/s", "flow_byts_s"), ("Flow Packets/s", "flow_pkts_s"),
    ("Flow IAT Mean", "flow_iat_mean"), ("Flow IAT Std", "flow_iat_std"),
    ("Flow IAT Max", "flow_iat_max"), ("Flow IAT Min", "flow_iat_min"),
    ("Fwd IAT Total", "fwd_iat_tot"), ("Fwd IAT Mean", "fwd_iat_mean"),
    ("Fwd IAT Std", "fwd_iat_std"), ("Fwd IAT Max", "fwd_iat_max"), ("Fwd IAT Min", "fwd_iat_min"),
    ("Bwd IAT Total", "bwd_iat_tot"), ("Bwd IAT Mean", "bwd_iat_mean"),
    ("Bwd IAT Std", "bwd_iat_std"), ("Bwd IAT Max", "bwd_iat_max"), ("Bwd IAT Min", "bwd_iat_min"),
    ("Fwd PSH Flags", "fwd_psh_flags"), ("Bwd PSH Flags", "bwd_psh_flags"),
    ("Fwd URG Flags", "fwd_urg_flags"), ("Bwd URG Flags", "bwd_urg_flags"),
    ("Fwd RST Flags", "fwd_rst_flags"), ("Bwd RST Flags", "bwd_rst_flags"),
    ("Fwd Header Length", "fwd_header_len"), ("Bwd Header Length", "bwd_header_len"),
    ("Fwd Packets/s", "fwd_pkts_s"), ("Bwd Packets/s", "bwd_pkts_s"),
    ("Packet Length Min", "pkt_len_min"), ("Packet Length Max", "pkt_len_max"),
    ("Packet Length Mean", "pkt_len_mean"), ("Packet Length Std", "pkt_len_std"),
    ("Packet Length Variance", "pkt_len_var"), ("FIN Flag Count", "fin_flag_cnt"),
    ("SYN Flag Count", "syn_flag_cnt"), ("RST Flag Count", "rst_flag_cnt"),
    ("PSH Flag Count", "psh_flag_cnt"), ("ACK Flag Count", "ack_flag_cnt"),
    ("URG Flag Count", "urg_flag_cnt"), ("CWR Flag Count", "cwe_flag_cnt"),
    ("ECE Flag Count", "ece_flag_cnt"), ("Down/Up Ratio", "down_up_ratio"),
    ("Average Packet Size", "pkt_size_avg"), ("Fwd Segment Size Avg", "fwd_seg_size_avg"),
    ("Bwd Segment Size Avg", "bwd_seg_size_avg"), ("Fwd Bytes/Bulk Avg", "fwd_byts_b_avg"),
    ("Fwd Packet/Bulk Avg", "fwd_pkts_b_avg"), ("Fwd Bulk Rate Avg", "fwd_blk_rate_avg"),
    ("Bwd Bytes/Bulk Avg", "bwd_byts_b_avg"), ("Bwd Packet/Bulk Avg", "bwd_pkts_b_avg"),
    ("Bwd Bulk Rate Avg", "bwd_blk_rate_avg"), ("Subflow Fwd Packets", "subflow_fwd_pkts"),
    ("Subflow Fwd Bytes", "subflow_fwd_byts"), ("Subflow Bwd Packets", "subflow_bwd_pkts"),
    ("Subflow Bwd Bytes", "subflow_bwd_byts"), ("FWD Init Win Bytes", "init_fwd_win_byts"),
    ("Bwd Init Win Bytes", "init_bwd_win_byts"), ("Fwd Act Data Pkts", "fwd_act_data_pkts"),
    ("Fwd Seg Size Min", "fwd_seg_size_min"), ("Active Mean", "active_mean"),
    ("Active Std", "active_std"), ("Active Max", "active_max"), ("Active Min", "active_min"),
    ("Idle Mean", "idle_mean"), ("Idle Std", "idle_std"), ("Idle Max", "idle_max"),
    ("Idle Min", "idle_min"), ("ICMP Code", "icmp_code"), ("ICMP Type", "icmp_type"),
    ("Total TCP Flow Time", "total_tcp_flow_time"), ("Label", "label"),
    ("Attempted Category", "attempted_category"),
]
# Published by the improved extractor only: kept as extra numeric columns of the canonical
# batch, not model features (the CICIDS2017 feature block stays the 77 shared statistics).
CICIDS2017_IMPROVED_EXTRA = ["fwd_rst_flags", "bwd_rst_flags", "icmp_code", "icmp_type",
                             "total_tcp_flow_time"]

# ---------------------------------------------------------------- CSE-CIC-IDS2018
# The same CICFlowMeter a year later on AWS, with CICFlowMeter-V3's short names:
# "Processed Traffic Data for ML Algorithms/*_TrafficForML_CICFlowMeter.csv", 80 columns
# from `Dst Port`; Tuesday-20-02-2018 has 84, with `Flow ID`, `Src IP`, `Src Port`, `Dst IP`
# first. No duplicated column. Some files repeat the header line mid-file.
CSE_CIC_IDS2018_IDENTIFIERS: list[tuple[str, str]] = [
    ("Flow ID", "flow_id"), ("Src IP", "src_ip"), ("Src Port", "src_port"), ("Dst IP", "dst_ip"),
]
CSE_CIC_IDS2018_COLUMNS: list[tuple[str, str]] = [
    ("Dst Port", "dst_port"), ("Protocol", "protocol"), ("Timestamp", "timestamp"),
    ("Flow Duration", "flow_duration"), ("Tot Fwd Pkts", "tot_fwd_pkts"),
    ("Tot Bwd Pkts", "tot_bwd_pkts"), ("TotLen Fwd Pkts", "totlen_fwd_pkts"),
    ("TotLen Bwd Pkts", "totlen_bwd_pkts"), ("Fwd Pkt Len Max", "fwd_pkt_len_max"),
    ("Fwd Pkt Len Min", "fwd_pkt_len_min"), ("Fwd Pkt Len Mean", "fwd_pkt_len_mean"),
    ("Fwd Pkt Len Std", "fwd_pkt_len_std"), ("Bwd Pkt Len Max", "bwd_pkt_len_max"),
    ("Bwd Pkt Len Min", "bwd_pkt_len_min"), ("Bwd Pkt Len Mean", "bwd_pkt_len_mean"),
    ("Bwd Pkt Len Std", "bwd_pkt_len_std"), ("Flow Byts/s", "flow_byts_s"),
    ("Flow Pkts/s", "flow_pkts_s"), ("Flow IAT Mean", "flow_iat_mean"),
    ("Flow IAT Std", "flow_iat_std"), ("Flow IAT Max", "flow_iat_max"),
    ("Flow IAT Min", "flow_iat_min"), ("Fwd IAT Tot", "fwd_iat_tot"),
    ("Fwd IAT Mean", "fwd_iat_mean"), ("Fwd IAT Std", "fwd_iat_std"),
    ("Fwd IAT Max", "fwd_iat_max"), ("Fwd IAT Min", "fwd_iat_min"), ("Bwd IAT Tot", "bwd_iat_tot"),
    ("Bwd IAT Mean", "bwd_iat_mean"), ("Bwd IAT Std", "bwd_iat_std"),
    ("Bwd IAT Max", "bwd_iat_max"), ("Bwd IAT Min", "bwd_iat_min"),
    ("Fwd PSH Flags", "fwd_psh_flags"), ("Bwd PSH Flags", "bwd_psh_flags"),
    ("Fwd URG Flags", "fwd_urg_flags"), ("Bwd URG Flags", "bwd_urg_flags"),
    ("Fwd Header Len", "fwd_header_len"), ("Bwd Header Len", "bwd_header_len"),
    ("Fwd Pkts/s", "fwd_pkts_s"), ("Bwd Pkts/s", "bwd_pkts_s"), ("Pkt Len Min", "pkt_len_min"),
    ("Pkt Len Max", "pkt_len_max"), ("Pkt Len Mean", "pkt_len_mean"),
    ("Pkt Len Std", "pkt_len_std"), ("Pkt Len Var", "pkt_len_var"),
    ("FIN Flag Cnt", "fin_flag_cnt"), ("SYN Flag Cnt", "syn_flag_cnt"),
    ("RST Flag Cnt", "rst_flag_cnt"), ("PSH Flag Cnt", "psh_flag_cnt"),
    ("ACK Flag Cnt", "ack_flag_cnt"), ("URG Flag Cnt", "urg_flag_cnt"),
    ("CWE Flag Count", "cwe_flag_cnt"), ("ECE Flag Cnt", "ece_flag_cnt"),
    ("Down/Up Ratio", "down_up_ratio"), ("Pkt Size Avg", "pkt_size_avg"),
    ("Fwd Seg Size Avg", "fwd_seg_size_avg"), ("Bwd Seg Size Avg", "bwd_seg_size_avg"),
    ("Fwd Byts/b Avg", "fwd_byts_b_avg"), ("Fwd Pkts/b Avg", "fwd_pkts_b_avg"),
    ("Fwd Blk Rate Avg", "fwd_blk_rate_avg"), ("Bwd Byts/b Avg", "bwd_byts_b_avg"),
    ("Bwd Pkts/b Avg", "bwd_pkts_b_avg"), ("Bwd Blk Rate Avg", "bwd_blk_rate_avg"),
    ("Subflow Fwd Pkts", "subflow_fwd_pkts"), ("Subflow Fwd Byts", "subflow_fwd_byts"),
    ("Subflow Bwd Pkts", "subflow_bwd_pkts"), ("Subflow Bwd Byts", "subflow_bwd_byts"),
    ("Init Fwd Win Byts", "init_fwd_win_byts"), ("Init Bwd Win Byts", "init_bwd_win_byts"),
    ("Fwd Act Data Pkts", "fwd_act_data_pkts"), ("Fwd Seg Size Min", "fwd_seg_size_min"),
    ("Active Mean", "active_mean"), ("Active Std", "active_std"), ("Active Max", "active_max"),
    ("Active Min", "active_min"), ("Idle Mean", "idle_mean"), ("Idle Std", "idle_std"),
    ("Idle Max", "idle_max"), ("Idle Min", "idle_min"), ("Label", "label"),
]

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

# Improved CICIDS2017: the same classes under the CICIDS2017 spellings (published there as
# `DoS Slowloris`, `Web Attack - SQL Injection`, `Botnet`, `Portscan`), one new class and
# "X - Attempted": flows of an attack that carried no payload or reached an unresponsive
# target (the release's `Attempted Category` says why, -1 for the others). Attempted rows are
# kept under their own label, `<canonical class> - Attempted`, and left out of training by
# default (`FLOWGUARD_TRAIN_ON_ATTEMPTED`, docs/data.md).
ATTEMPTED_SUFFIX = " - Attempted"
IMPROVED_ONLY_LABELS = ["Infiltration - Portscan"]
# Classes the release's labelling marks attempted (CNS2022_Code, CICIDS2017 notebook).
ATTEMPTED_BASES = ["FTP-Patator", "SSH-Patator", "DoS Hulk", "DoS GoldenEye", "DoS slowloris",
                   "DoS Slowhttptest", "Web Attack - Brute Force", "Web Attack - XSS",
                   "Web Attack - Sql Injection", "Infiltration", "Bot", "DDoS"]
CICIDS2017_IMPROVED_LABELS: list[str] = [
    *LABELS, *IMPROVED_ONLY_LABELS, *(f"{b}{ATTEMPTED_SUFFIX}" for b in ATTEMPTED_BASES)]
_IMPROVED_KEYS = {**_LABEL_KEYS, "botnet": "Bot", "infiltrationportscan": "Infiltration - Portscan"}

# CSE-CIC-IDS2018 classes as published (one spelling each, `Infilteration` misspelt there).
CSE_CIC_IDS2018_LABELS: list[str] = [
    "Benign", "FTP-BruteForce", "SSH-Bruteforce", "DoS attacks-GoldenEye",
    "DoS attacks-Slowloris", "DoS attacks-SlowHTTPTest", "DoS attacks-Hulk",
    "DDoS attacks-LOIC-HTTP", "DDOS attack-LOIC-UDP", "DDOS attack-HOIC", "Brute Force -Web",
    "Brute Force -XSS", "SQL Injection", "Infilteration", "Bot",
]
_IDS2018_KEYS = {re.sub(r"[^a-z0-9]", "", label.lower()): label
                 for label in CSE_CIC_IDS2018_LABELS}


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

# The feature blocks a dataset profile names (flowguard.profiles, ``feature_block``).
FEATURE_BLOCKS: dict[str, list[str]] = {"cicflowmeter": FEATURE_COLUMNS,
                                        "unsw_nb15": UNSW_NB15_FEATURES}

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
    # improved CICIDS2017: the scan the infiltrated host ran is a port scan (reconnaissance);
    # an attempted attack keeps its class's family (the label says it was only attempted)
    "Infiltration - Portscan": "reconnaissance",
    "Benign": "benign", "FTP-BruteForce": "brute_force", "SSH-Bruteforce": "brute_force",
    "DoS attacks-GoldenEye": "dos", "DoS attacks-Slowloris": "dos",
    "DoS attacks-SlowHTTPTest": "dos", "DoS attacks-Hulk": "dos",
    "DDoS attacks-LOIC-HTTP": "ddos", "DDOS attack-LOIC-UDP": "ddos", "DDOS attack-HOIC": "ddos",
    "Brute Force -Web": "web_attack", "Brute Force -XSS": "web_attack",
    "SQL Injection": "web_attack", "Infilteration": "infiltration",
}
LABEL_FAMILIES.update({f"{b}{ATTEMPTED_SUFFIX}": LABEL_FAMILIES[b] for b in ATTEMPTED_BASES})
# Identity and label fields every canonical batch has, whatever the source (null where a
# layout does not publish them). The per-source feature block follows.
SHARED_COLUMNS = ["flow_uid", "source_layout", "source_file", "source_line", "event_timestamp",
                  "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "label",
                  "label_family", "raw_label", "parse_error"]


def is_attempted(label: object) -> bool:
    """Whether a canonical label is an attempted attack (improved CICIDS2017 taxonomy)."""
    return isinstance(label, str) and label.endswith(ATTEMPTED_SUFFIX)


def canonical_improved_label(raw: object) -> str | None:
    """Map an improved-CICIDS2017 label (``Botnet``, ``DoS Hulk - Attempted``) to canonical."""
    text = str(raw).strip()
    attempted = re.search(r"\s*-\s*attempted$", text, flags=re.IGNORECASE)
    base = text[: attempted.start()] if attempted else text
    label = _IMPROVED_KEYS.get(re.sub(r"[^a-z0-9]", "", base.lower()))
    if label is None or not attempted:
        return label
    return f"{label}{ATTEMPTED_SUFFIX}" if label in ATTEMPTED_BASES else None


def canonical_ids2018_label(raw: object) -> str | None:
    """Map a CSE-CIC-IDS2018 label (case, spaces, punctuation aside) to its published form."""
    return _IDS2018_KEYS.get(re.sub(r"[^a-z0-9]", "", str(raw).lower()))


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
        Layout("cicids2017_improved", "cicids2017_improved", tuple(CICIDS2017_IMPROVED_COLUMNS),
               True, True, tuple(FEATURE_COLUMNS), tuple(CICIDS2017_IMPROVED_LABELS)),
        Layout("cse_cic_ids2018", "cse_cic_ids2018", tuple(CSE_CIC_IDS2018_COLUMNS), True, False,
               tuple(FEATURE_COLUMNS), tuple(CSE_CIC_IDS2018_LABELS)),
        Layout("cse_cic_ids2018_flow_id", "cse_cic_ids2018",
               tuple(CSE_CIC_IDS2018_IDENTIFIERS + CSE_CIC_IDS2018_COLUMNS), True, True,
               tuple(FEATURE_COLUMNS), tuple(CSE_CIC_IDS2018_LABELS)),
        Layout("unsw_nb15_raw", "unsw_nb15", tuple(UNSW_NB15_RAW_COLUMNS), False, True,
               tuple(UNSW_NB15_FEATURES), tuple(UNSW_NB15_LABELS)),
        Layout("unsw_nb15_set", "unsw_nb15", tuple(UNSW_NB15_SET_COLUMNS), True, False,
               tuple(UNSW_NB15_FEATURES), tuple(UNSW_NB15_LABELS)),
    )
}


def header_key(name: str) -> str:
    """The key a published header is matched on: no BOM, no pandas ``.1`` suffix, case,
    whitespace and punctuation ignored (``Fwd Header Length.1``, `` fwd_header_length``
    and ``Fwd Header Length`` share one key). No two names of one layout share a key, except
    the duplicated CICIDS2017 ``Fwd Header Length`` (told apart by position); ``tests`` check it.
    """
    text = re.sub(r"\.\d+$", "", name.replace("\ufeff", "").strip())
    return re.sub(r"[^a-z0-9]", "", text.lower())


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

# ---------------------------------------------------------------- value bounds (the contract)
# Checked at ingest for every layout (flowguard.ingest.contract_errors); a row breaking one is
# quarantined with the field, the value and the rule. Non-finite values (Infinity, -inf,
# 1e400) are invalid in every numeric field except the two rates, which the ingest repairs
# from totals and duration (RATE_COLUMNS) or leaves empty (then quarantined as missing).
PORT_COLUMNS = ["src_port", "dst_port"]
PORT_RANGE = (0, 65535)
PROTOCOL_RANGE = (0, 255)  # IANA protocol numbers
ADDRESS_COLUMNS = ["src_ip", "dst_ip"]
# Whole numbers: packet counts and byte totals (CICFlowMeter and UNSW-NB15 names).
COUNT_COLUMNS: list[str] = [
    "tot_fwd_pkts", "tot_bwd_pkts", "totlen_fwd_pkts", "totlen_bwd_pkts", "subflow_fwd_pkts",
    "subflow_bwd_pkts", "subflow_fwd_byts", "subflow_bwd_byts", "fwd_act_data_pkts",
    "spkts", "dpkts", "sbytes", "dbytes",
]
BYTE_COLUMNS: list[str] = ["totlen_fwd_pkts", "totlen_bwd_pkts", "subflow_fwd_byts",
                           "subflow_bwd_byts", "sbytes", "dbytes"]
# One flow never carries a petabyte (CICIDS2017's largest is ~2.9e9 bytes, UNSW-NB15's ~1.4e7):
# above it the value is a unit or parsing error, not traffic.
MAX_FLOW_BYTES = 10**15
MAX_FLOW_PACKETS = 10**12
