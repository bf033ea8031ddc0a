"""The feature store side: partitions of validated flows, Feast apply, materialize, retrieve.

Writes are partitioned by the run's day and idempotent (a rerun replaces its own partition).
Training and monitoring read through the versioned FeatureService, point-in-time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES, as_utc

if TYPE_CHECKING:
    from datetime import date, datetime

    from feast import FeatureStore

log = logging.getLogger(__name__)

FEATURE_SERVICE = "flow_classifier_v1"
HOST_VIEW = "src_host_activity_1h"
ENTITY_KEY = "flow_uid"
HOST_KEY = "src_ip"
UNKNOWN_HOST = "unknown"
PROVENANCE = ["flow_uid", "event_timestamp", "ingested_at", "label", "source_file",
              "source_line", "src_ip", "dst_ip", "src_port", "protocol", "flow_id"]


class TrainingSetIncomplete(RuntimeError):
    """Point-in-time retrieval returned fewer rows than entity rows asked for."""


def partition_path(root: Path, day: date) -> Path:
    return root / f"date={day:%Y-%m-%d}" / "part-0.parquet"


def write_partition(frame: pd.DataFrame, root: Path, day: date) -> Path:
    """Atomically replace one day's parquet partition."""
    path = partition_path(root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_valid_flows(valid: pd.DataFrame, root: Path, day: date, ingested_at: datetime) -> Path:
    """Write validated flows in the Feast source layout (timestamps ``datetime64[ns, UTC]``)."""
    columns = [c for c in PROVENANCE if c in valid.columns and c != "ingested_at"]
    frame = valid[columns + FEATURE_COLUMNS].copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]")
    frame["ingested_at"] = as_utc(ingested_at)
    frame["ingested_at"] = frame["ingested_at"].astype("datetime64[ns, UTC]")
    for col in ("src_ip", "dst_ip", "flow_id", "label", "source_file"):
        if col in frame:
            frame[col] = frame[col].astype("string")
    return write_partition(frame, root, day)


def host_activity(valid: pd.DataFrame) -> pd.DataFrame:
    """Per source host and clock hour: activity aggregates, stamped at the hour's *end*.

    Stamping at the end means a flow at 10:30 joins the 09:00-10:00 window (complete and in
    its past), never the window it is part of.
    """
    flows = valid[valid["src_ip"].notna() & valid["event_timestamp"].notna()].copy()
    if flows.empty:
        return pd.DataFrame(columns=[HOST_KEY, "event_timestamp", *HOST_FEATURES])
    flows["window_end"] = flows["event_timestamp"].dt.floor("1h") + pd.Timedelta(hours=1)
    flows["syn_only"] = (flows["syn_flag_cnt"] > 0) & (flows["ack_flag_cnt"] == 0)
    flows["rst"] = flows["rst_flag_cnt"] > 0
    flows["bytes"] = flows["totlen_fwd_pkts"] + flows["totlen_bwd_pkts"]
    grouped = flows.groupby(["src_ip", "window_end"], sort=True)
    frame = pd.DataFrame({
        "host_flows_1h": grouped.size(),
        "host_distinct_dst_ports_1h": grouped["dst_port"].nunique(),
        "host_syn_only_share_1h": grouped["syn_only"].mean(),
        "host_rst_share_1h": grouped["rst"].mean(),
        "host_bytes_1h": grouped["bytes"].sum(),
        "host_mean_duration_1h": grouped["flow_duration"].mean(),
    }).astype("float64").reset_index().rename(columns={"window_end": "event_timestamp"})
    frame["src_ip"] = frame["src_ip"].astype("string")
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    return frame


def write_host_activity(valid: pd.DataFrame, root: Path, day: date, ingested_at: datetime
                        ) -> Path:
    frame = host_activity(valid)
    frame["ingested_at"] = as_utc(ingested_at)
    frame["ingested_at"] = frame["ingested_at"].astype("datetime64[ns, UTC]")
    return write_partition(frame, root, day)


def get_store(repo_path: Path, home: Path) -> FeatureStore:
    """A FeatureStore on ``repo_path``; ``FLOWGUARD_HOME`` fills the yaml's placeholders."""
    from feast import FeatureStore

    from flowguard.config import feast_yaml

    os.environ["FLOWGUARD_HOME"] = str(home)  # the yaml's ${FLOWGUARD_HOME} placeholders
    (home / "feast").mkdir(parents=True, exist_ok=True)
    # The profile's yaml (FLOWGUARD_FEAST_YAML): SQLite files by default, PostgreSQL + Redis
    # in production (feature_store.production.yaml).
    return FeatureStore(repo_path=str(repo_path.resolve()), fs_yaml_file=feast_yaml(repo_path))


def apply_definitions(repo_path: Path, home: Path) -> list[str]:
    """``feast apply`` in-process: register the repo's objects (idempotent)."""
    from feast.repo_operations import apply_total

    repo_path = repo_path.resolve()  # apply_total changes the working directory
    if str(repo_path) not in sys.path:  # feast imports definitions.py as a top-level module
        sys.path.insert(0, str(repo_path))
    sys.modules.pop("definitions", None)  # its source paths follow FLOWGUARD_HOME: re-read
    store = get_store(repo_path, home)
    cwd = Path.cwd()
    try:
        apply_total(store.config, repo_path, skip_source_validation=True)
    finally:
        os.chdir(cwd)
    names = [fv.name for fv in store.list_feature_views(allow_cache=False)]
    log.info("feast apply: feature views %s", names)
    return names


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the interval's host activity into the online store (rerun-safe).

    Only the host view is online: per-flow statistics arrive with a scoring request.
    """
    store.materialize(start_date=start, end_date=end, feature_views=[HOST_VIEW])


def entity_rows(root: Path, days: list[date]) -> pd.DataFrame:
    """Entity rows (flow_uid, src_ip, event_timestamp, label) of the given days' partitions."""
    frames = []
    for day in days:
        path = partition_path(root, day)
        if path.exists():
            frames.append(pd.read_parquet(
                path, columns=["flow_uid", "event_timestamp", "label", HOST_KEY]))
    if not frames:
        raise FileNotFoundError(f"no validated partitions under {root} for {days}")
    entities = pd.concat(frames, ignore_index=True)
    entities[HOST_KEY] = entities[HOST_KEY].fillna(UNKNOWN_HOST).astype("string")
    return entities


def historical_features(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features for ``entities`` through the feature service, in input order.

    Raises :class:`TrainingSetIncomplete` if any entity row comes back without its features,
    so a training set can never lose rows silently.
    """
    service = store.get_feature_service(FEATURE_SERVICE)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame = frame.set_index(ENTITY_KEY).reindex(entities[ENTITY_KEY]).reset_index()
    lost = frame[FEATURE_COLUMNS].isna().all(axis=1).sum()
    if len(frame) != len(entities) or lost:
        raise TrainingSetIncomplete(
            f"{FEATURE_SERVICE}: {lost} of {len(entities)} entity rows came back without features")
    return frame
