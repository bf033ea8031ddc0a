"""The feature store side: partitions of validated flows, Feast apply, materialize, retrieve.

Writes are partitioned by the run's day and idempotent (a rerun replaces its own partition).
Training and monitoring read through the versioned FeatureService, point-in-time; the online
store follows each run's data interval and ends up the same whatever order runs happen in.

What is dataset-specific (the flow features, what a host aggregate is made of, the view and
service names) comes from the active dataset profile (:mod:`flowguard.profiles`); the
module-level names below are the CICIDS2017 profile's, kept for the code that names them.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowguard.config import TRAINING_CHUNK_ROWS
from flowguard.profiles import active
from flowguard.schema import HOST_FEATURES, as_utc

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import date, datetime

    from feast import FeatureStore

log = logging.getLogger(__name__)

FEATURE_SERVICE = "flow_classifier_v1"
# For flows without addresses (the 79-column "MachineLearningCVE" layout): no host features.
FLOWS_ONLY_SERVICE = "flow_classifier_flows_only_v1"
FLOW_VIEW = "flow_stats"
HOST_VIEW = "src_host_activity_1h"
# Trailing window of the host aggregates and how often it is stamped. The view's ttl is just
# under one hop: a window is valid until the next one would have been stamped.
HOST_WINDOW = timedelta(hours=1)
HOST_WINDOW_HOP = timedelta(minutes=5)
HOST_TTL = HOST_WINDOW_HOP - timedelta(microseconds=1)
# The view serves more than the model uses today: ``host_packets_1h`` joins the model when
# schema.HOST_FEATURES lists it (as a new service version).
HOST_VIEW_FEATURES: list[str] = [*HOST_FEATURES, "host_packets_1h"]
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
    return write_partition(valid_flows_frame(valid, ingested_at), root, day)


def valid_flows_columns(valid: pd.DataFrame) -> list[str]:
    """The columns of validated rows that the Feast source keeps (``ingested_at`` aside):
    provenance, the profile's statistics, the categorical fields it encodes (kept as text,
    the host aggregates may read them) and the host aggregates' inputs."""
    profile = active()
    columns = ([c for c in PROVENANCE if c in valid.columns and c != "ingested_at"]
               + profile.block_features + [c for c in profile.encoded if c in valid.columns])
    # and what the host windows read of the previous day's partition (UNSW-NB15: dst_port)
    return columns + [c for c in profile.host_inputs if c in valid.columns and c not in columns]


def valid_flows_frame(valid: pd.DataFrame, ingested_at: datetime) -> pd.DataFrame:
    """Validated flows in the Feast source layout; a chunk of them gives the same rows.

    The profile's categorical fields are encoded here (``<field>_code``), so the offline
    view serves exactly the model's per-flow inputs."""
    profile = active()
    frame = profile.encode(valid[valid_flows_columns(valid)].copy())
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]")
    frame["ingested_at"] = as_utc(ingested_at)
    frame["ingested_at"] = frame["ingested_at"].astype("datetime64[ns, UTC]")
    for col in ("src_ip", "dst_ip", "flow_id", "label", "source_file", *profile.encoded):
        if col in frame:
            frame[col] = frame[col].astype("string")
    return frame


def _window_ends(buckets: pd.Series, k: int) -> pd.Series:
    return buckets + k * HOST_WINDOW_HOP


def host_activity(valid: pd.DataFrame, window_ends: tuple[datetime, datetime] | None = None
                  ) -> pd.DataFrame:
    """Per source host: activity in the trailing hour, one row every ``HOST_WINDOW_HOP``.

    The row stamped ``T`` aggregates the host's flows in ``[T - 1 h, T)``, so a flow at ``t``
    joins the window that ended at or before ``t`` (complete and in its past, at most one hop
    old), never a window it is part of. Rows exist only where the host had a flow in the
    window; the view's ttl (just under one hop) turns "no row at the latest stamp" into
    "no activity", rather than letting an older window stand in for it.

    ``window_ends`` keeps only rows with ``start < T <= end`` (one run's partition).
    """
    return host_windows(host_partials(valid), window_ends)


HostPartials = tuple[pd.DataFrame, pd.DataFrame]


def host_partials(valid: pd.DataFrame) -> HostPartials | None:
    """Per host and 5-minute bucket: sums and the distinct destination ports.

    Additive: the partials of consecutive chunks, combined (:func:`combine_host_partials`),
    give the windows of the whole (:func:`host_windows`), so a day can be aggregated in
    bounded memory. ``None`` for a layout without addresses or no usable flow.
    """
    if HOST_KEY not in valid:  # a layout without addresses: no host windows
        return None
    flows = valid[valid[HOST_KEY].notna() & valid["event_timestamp"].notna()].copy()
    if flows.empty:
        return None
    spec = active().host  # the fields each aggregate is made of in this dataset
    flows["bucket"] = flows["event_timestamp"].dt.floor(HOST_WINDOW_HOP)
    flows["syn_only"] = active().indicator(flows, "syn_only")
    flows["rst"] = active().indicator(flows, "rst")
    flows["bytes"] = flows[spec["bytes"]].sum(axis=1, min_count=1)
    flows["packets"] = flows[spec["packets"]].sum(axis=1, min_count=1)
    flows["duration"] = flows[spec["duration"]]
    flows["_dst_port"] = flows[spec["dst_port"]]
    keys = [HOST_KEY, "bucket"]
    partial = flows.groupby(keys, sort=False).agg(
        flows=("bucket", "size"), syn_only=("syn_only", "sum"), rst=("rst", "sum"),
        bytes=("bytes", "sum"), packets=("packets", "sum"), duration=("duration", "sum"),
    ).reset_index()
    ports = flows[[HOST_KEY, "bucket", "_dst_port"]].rename(
        columns={"_dst_port": "dst_port"}).drop_duplicates()
    return partial, ports


def combine_host_partials(parts: list[HostPartials | None]) -> HostPartials | None:
    """One set of partials from those of several chunks (in any order)."""
    parts = [p for p in parts if p is not None]
    if len(parts) <= 1:
        return parts[0] if parts else None
    keys = [HOST_KEY, "bucket"]
    partial = pd.concat([p[0] for p in parts], ignore_index=True).groupby(
        keys, sort=False).sum().reset_index()
    ports = pd.concat([p[1] for p in parts], ignore_index=True).drop_duplicates()
    return partial, ports


def host_windows(partials: HostPartials | None,
                 window_ends: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    """The trailing-hour windows (see :func:`host_activity`) from combined partials."""
    if partials is None:
        return _empty_host_frame()
    partial, ports = partials
    keys = [HOST_KEY, "bucket"]
    hops = int(HOST_WINDOW / HOST_WINDOW_HOP)
    # each bucket contributes to the ``hops`` windows that end after it and cover it
    sums = pd.concat([partial.assign(bucket=_window_ends(partial["bucket"], k))
                      for k in range(1, hops + 1)]).groupby(keys, sort=True).sum()
    distinct = (pd.concat([ports.assign(bucket=_window_ends(ports["bucket"], k))
                           for k in range(1, hops + 1)])
                .drop_duplicates().groupby(keys).size())
    frame = pd.DataFrame({
        "host_flows_1h": sums["flows"],
        "host_distinct_dst_ports_1h": distinct.reindex(sums.index),
        "host_syn_only_share_1h": sums["syn_only"] / sums["flows"],
        "host_rst_share_1h": sums["rst"] / sums["flows"],
        "host_bytes_1h": sums["bytes"],
        "host_packets_1h": sums["packets"],
        "host_mean_duration_1h": sums["duration"] / sums["flows"],
    }).astype("float64").reset_index().rename(columns={"bucket": "event_timestamp"})
    if window_ends is not None:
        lo, hi = (as_utc(t) for t in window_ends)
        frame = frame[(frame["event_timestamp"] > lo) & (frame["event_timestamp"] <= hi)]
    frame[HOST_KEY] = frame[HOST_KEY].astype("string")
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    return frame[[HOST_KEY, "event_timestamp", *HOST_VIEW_FEATURES]].reset_index(drop=True)


def _empty_host_frame() -> pd.DataFrame:
    frame = pd.DataFrame({HOST_KEY: pd.Series(dtype="string"),
                          "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]")})
    for name in HOST_VIEW_FEATURES:
        frame[name] = pd.Series(dtype="float64")
    return frame


def write_host_activity(valid: pd.DataFrame | None, root: Path, day: date,
                        ingested_at: datetime, flows_root: Path | None = None,
                        partials: HostPartials | None = None) -> Path:
    """Write the day's host windows: those ending in ``(day, day + 1]``.

    Windows ending in the day's first hour also cover the previous day's last hour: with
    ``flows_root``, that day's validated partition (if ingested) is read for them, so a
    window never depends on which day's run wrote it. ``partials`` (the day's flows already
    aggregated chunk by chunk, :func:`host_partials`) stands in for ``valid``.
    """
    start = as_utc(pd.Timestamp(day))
    parts = [host_partials(valid) if valid is not None else partials]
    previous = partition_path(flows_root, day - timedelta(days=1)) if flows_root else None
    if previous is not None and previous.exists():
        tail = pd.read_parquet(previous, columns=active().host_inputs)
        tail = tail[tail["event_timestamp"] >= start - HOST_WINDOW]
        parts.insert(0, host_partials(tail))
    frame = host_windows(combine_host_partials(parts), (start, start + timedelta(days=1)))
    frame["ingested_at"] = as_utc(ingested_at)
    frame["ingested_at"] = frame["ingested_at"].astype("datetime64[ns, UTC]")
    return write_partition(frame, root, day)


def get_store(repo_path: Path, home: Path) -> FeatureStore:
    """A FeatureStore on ``repo_path``; ``FLOWGUARD_HOME`` fills the yaml's placeholders.

    ``home`` is resolved first: Feast compares store paths as text, so the same SQLite file
    spelled two ways (``feature_repo/../var`` and ``var``) would count as a changed store and
    ``apply`` would drop its tables (``feature_repo/definitions.py`` refuses such a home).
    """
    from flowguard.feastload import load_feast

    load_feast()  # without typeguard's import-time instrumentation: half of Feast's import
    from feast import FeatureStore

    from flowguard.config import feast_yaml

    home = Path(home).resolve()
    os.environ["FLOWGUARD_HOME"] = str(home)  # the yaml's ${FLOWGUARD_HOME} placeholders
    (home / "feast").mkdir(parents=True, exist_ok=True)
    # The profile's yaml (FLOWGUARD_FEAST_YAML): SQLite files by default, PostgreSQL + Redis
    # in production (feature_store.production.yaml).
    return FeatureStore(repo_path=str(repo_path.resolve()), fs_yaml_file=feast_yaml(repo_path))


def apply_definitions(repo_path: Path, home: Path) -> list[str]:
    """``feast apply`` in-process: register the repo's objects; a no-op when nothing changed.
    Returns the active dataset profile's feature views.

    Feast 0.67 counts a materialized view as changed on every apply (its equality compares
    the registry's materialization intervals, which a declared view never has), so the
    declared views get the registered intervals first: an unchanged repo then plans no
    change at all, and a changed one keeps its materialization state as Feast's own update
    does.
    """
    from flowguard.feastload import load_feast

    load_feast()
    from feast import Project
    from feast.repo_operations import apply_total_with_repo_instance, parse_repo

    repo_path = repo_path.resolve()  # parsing the repo changes the working directory
    if str(repo_path) not in sys.path:  # feast imports definitions.py as a top-level module
        sys.path.insert(0, str(repo_path))
    sys.modules.pop("definitions", None)  # its source paths follow FLOWGUARD_HOME: re-read
    store = get_store(repo_path, home)
    project = store.config.project
    cwd = Path.cwd()
    try:
        os.chdir(repo_path)
        repo = parse_repo(repo_path)
        if not repo.projects:
            repo.projects.append(Project(name=project, description=""))
        registered = {fv.name: fv for fv in store.registry.list_feature_views(
            project, allow_cache=False)} if _project_exists(store, project) else {}
        for view in repo.feature_views:
            if view.name in registered:
                view.materialization_intervals = list(
                    registered[view.name].materialization_intervals)
        apply_total_with_repo_instance(store, project, store.registry, repo,
                                       skip_source_validation=True)
    finally:
        os.chdir(cwd)
    views = store.list_feature_views(allow_cache=False)
    log.info("feast apply: feature views %s", sorted(fv.name for fv in views))
    # the registry may hold another profile's views too (definitions.py declares every
    # profile with data in the home); the caller works on the active profile's
    dataset = active().name
    return [fv.name for fv in views if fv.tags.get("dataset", dataset) == dataset]


def _project_exists(store: FeatureStore, project: str) -> bool:
    return any(p.name == project for p in store.registry.list_projects(allow_cache=False))


def materialized_until(store: FeatureStore, view: str | None = None) -> datetime | None:
    """End of the latest interval materialized for ``view`` (default: the profile's host
    view; the registry keeps it)."""
    view = view or active().feast.host_view
    intervals = store.get_feature_view(view, allow_registry_cache=False).materialization_intervals
    return max((end for _, end in intervals), default=None)


def materialize(store: FeatureStore, start: datetime, end: datetime,
                overlap: timedelta = timedelta(0)) -> tuple[datetime, datetime]:
    """Load ``[start - overlap, end]`` of host activity into the online store, rerun-safe.

    Only the host view is online: per-flow statistics arrive with a scoring request. The
    overlap re-reads windows just before the interval in case late flows changed them. A
    rerun or backfill of an older interval also re-reads up to the latest interval already
    materialized: the SQLite online store overwrites whatever it holds, so without this a
    backfill of Monday would put Monday's values back over Tuesday's. Returns the range read.
    """
    start, end = as_utc(start).to_pydatetime(), as_utc(end).to_pydatetime()
    view = active().feast.host_view
    until = materialized_until(store, view)
    if until is not None and as_utc(until) > end:
        log.info("%s materialized until %s: a rerun of [%s, %s] reads up to there",
                 view, until, start, end)
        end = as_utc(until).to_pydatetime()
    start -= overlap
    store.materialize(start_date=start, end_date=end, feature_views=[view])
    return start, end


def entity_rows(root: Path, days: list[date]) -> pd.DataFrame:
    """Entity rows (flow_uid, src_ip, event_timestamp, label) of the given days' partitions."""
    from flowguard.daycommit import is_complete

    frames = []
    for day in days:
        path = partition_path(root, day)
        if path.exists() and is_complete(root, day):
            frames.append(pd.read_parquet(
                path, columns=["flow_uid", "event_timestamp", "label", HOST_KEY]))
    if not frames:
        raise FileNotFoundError(f"no validated partitions under {root} for {days}")
    entities = pd.concat(frames, ignore_index=True)
    entities[HOST_KEY] = entities[HOST_KEY].fillna(UNKNOWN_HOST).astype("string")
    return entities


def historical_features(store: FeatureStore, entities: pd.DataFrame,
                        service: str | None = None) -> pd.DataFrame:
    """Point-in-time features for ``entities`` through the feature service (default: the
    profile's), in input order.

    Raises :class:`TrainingSetIncomplete` if any entity row comes back without its features,
    so a training set can never lose rows silently.
    """
    service = service or active().feast.feature_service
    feature_service = store.get_feature_service(service)
    import numpy as np

    # Feast's to_df is to_arrow().to_pandas().reset_index(drop=True): the table, a frame and
    # its copy at once. Converted here column by column, the table freed as it goes.
    table = store.get_historical_features(entity_df=entities, features=feature_service).to_arrow()
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    # Feast answers in its own row order: the entity rows' order back with one ``take`` at
    # most (set_index + reindex + reset_index copied the whole frame three times, 2 GB each
    # on the full week), the key first as before.
    rows = pd.Index(frame[ENTITY_KEY]).get_indexer(entities[ENTITY_KEY])
    missing = int((rows < 0).sum())
    if not np.array_equal(rows, np.arange(len(frame))):
        frame = frame.take(rows[rows >= 0])
    frame.index = pd.RangeIndex(len(frame))
    frame.insert(0, ENTITY_KEY, frame.pop(ENTITY_KEY))
    lost = int(frame[active().block_features].isna().all(axis=1).sum()) + missing
    if len(frame) + missing != len(entities) or lost:
        raise TrainingSetIncomplete(
            f"{service}: {lost} of {len(entities)} entity rows came back without features")
    return frame


def historical_feature_chunks(store: FeatureStore, entities: pd.DataFrame,
                              service: str | None = None,
                              chunk_rows: int = TRAINING_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """:func:`historical_features` of ``entities`` in consecutive slices of at most
    ``chunk_rows`` rows: concatenated, the chunks are the frame one query would return (the
    same rows, values and order), but only one chunk's join is in memory at a time.

    DuckDB holds each query's join result in memory until it is handed over (4.4 GB of RSS
    for the full week's 1.9 GB frame at once), so the chunk bounds the task's memory
    (:data:`flowguard.config.TRAINING_CHUNK_ROWS`). Point in time per row either way: the
    DuckDB store joins each entity row with the latest feature row at or before its own
    timestamp within the view's ttl and reads the whole source for every query (the entity
    rows' time range only labels the job's metadata), so which rows share a query changes
    nothing. A chunk that loses rows raises :class:`TrainingSetIncomplete` naming its slice.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    total = len(entities)
    for start in range(0, max(total, 1), chunk_rows):
        stop = min(start + chunk_rows, total)
        rows = entities if (start, stop) == (0, total) else \
            entities.iloc[start:stop].reset_index(drop=True)
        try:
            yield historical_features(store, rows, service)
        except TrainingSetIncomplete as exc:
            if len(rows) == total:
                raise
            raise TrainingSetIncomplete(f"{exc} (entity rows {start}-{stop - 1} of {total}, "
                                        f"retrieved {chunk_rows} at a time)") from exc


def write_training_set(store: FeatureStore, entities: pd.DataFrame, service: str | None,
                       path: Path, chunk_rows: int = TRAINING_CHUNK_ROWS) -> dict[str, Any]:
    """Point-in-time features of ``entities`` streamed to the parquet file ``path``, chunk
    by chunk (:func:`historical_feature_chunks`), each chunk freed before the next query;
    ``service`` None is the active profile's.

    The file holds the same rows, columns and dtypes, in the same order, as
    ``historical_features(...).to_parquet(path, index=False)`` (the pandas metadata too, so
    it reads back as the same frame); it replaces ``path`` only once every row is in. Returns
    ``rows``, ``classes`` (label counts) and ``digest``, equal to
    :func:`flowguard.lineage.frame_digest` of the whole frame.
    """
    from collections import Counter

    import pyarrow as pa
    import pyarrow.parquet as pq

    from flowguard.lineage import FrameDigest
    from flowguard.training import release_arrow_memory

    digest, classes, rows = FrameDigest(), Counter(), 0
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    try:
        for frame in historical_feature_chunks(store, entities, service, chunk_rows):
            digest.update(frame)  # raises unless the chunk's dtypes are the first's
            classes.update(frame["label"].value_counts().to_dict())
            rows += len(frame)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            del frame
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            del table
            release_arrow_memory()
        writer.close()
        tmp.replace(path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return {"rows": rows, "digest": digest.hexdigest(),
            "classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], str(kv[0]))))}


def service_for(entities: pd.DataFrame) -> str:
    """The feature service that fits the data: without any address, no host features."""
    names = active().feast
    if HOST_KEY not in entities or entities[HOST_KEY].fillna(UNKNOWN_HOST).eq(UNKNOWN_HOST).all():
        return names.flows_only_service
    return names.feature_service


def monitoring_frames(store: FeatureStore, reference: pd.DataFrame, current: pd.DataFrame,
                      service: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current windows, both read now through the model's feature service.

    ``reference`` is the champion's reference sample (only its entity rows are used: flow id,
    event time, host, label); ``current`` the window's entity rows. Reading both through the
    same service, point in time, is what keeps monitoring free of training-serving skew: any
    difference between the two is the traffic's, not the code path's.
    """
    return (reference_features(store, reference, service),
            historical_features(store, current, service))


def reference_features(store: FeatureStore, reference: pd.DataFrame,
                       service: str = FEATURE_SERVICE) -> pd.DataFrame:
    """The champion's reference sample as monitoring sees it: its entity rows (flow id,
    event time, host, label) read through the feature service. The calibration saved with
    a champion is computed on this very frame, so its key matches the daily check's."""
    keys = [c for c in (ENTITY_KEY, "event_timestamp", "label", HOST_KEY) if c in reference]
    rows = reference[keys].copy()
    if HOST_KEY in rows:
        rows[HOST_KEY] = rows[HOST_KEY].fillna(UNKNOWN_HOST).astype("string")
    rows["event_timestamp"] = pd.to_datetime(rows["event_timestamp"], utc=True)
    return historical_features(store, rows, service)
