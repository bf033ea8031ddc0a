"""Feast definitions: flows and source hosts, their views and the model's feature service.

- Flows are events: each validated flow has a stable ``flow_uid``; its CICFlowMeter
  statistics reach training through an offline view (online copy off: at scoring time they
  arrive with the request).
- Source hosts are entities: activity in the completed hour before a flow (flows, distinct
  destination ports, SYN-only and reset shares, bytes, mean duration), computed at ingest
  and materialized to the online store for scoring.

Training and monitoring read the versioned feature service, point-in-time, never the files.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

from flowguard.config import get_settings
from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES

_LAKE = get_settings().lake_dir

flow = Entity(
    name="flow",
    join_keys=["flow_uid"],
    value_type=ValueType.INT64,
    description="One network flow (CICFlowMeter record): day, file index and line number.",
)

src_host = Entity(
    name="src_host",
    join_keys=["src_ip"],
    value_type=ValueType.STRING,
    description="A source IP address of the monitored network ('unknown' where not published).",
)

flows_source = FileSource(
    name="validated_flows",
    path=str(_LAKE / "flows" / "*" / "*.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="ingested_at",
    description="Flows that passed the Great Expectations contract, one partition per day.",
)

host_activity_source = FileSource(
    name="src_host_activity",
    path=str(_LAKE / "hosts" / "*" / "*.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="ingested_at",
    description="Hourly per-source-host aggregates of validated flows, stamped at hour end.",
)

flow_stats = FeatureView(
    name="flow_stats",
    entities=[flow],
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=Float64) for name in FEATURE_COLUMNS],
    source=flows_source,
    online=False,
    tags={"team": "detection", "granularity": "flow"},
)

src_host_activity_1h = FeatureView(
    name="src_host_activity_1h",
    entities=[src_host],
    # Only the window that ended within the hour before a flow applies; older is stale.
    ttl=timedelta(hours=1),
    schema=[Field(name=name, dtype=Float64) for name in HOST_FEATURES],
    source=host_activity_source,
    online=True,
    tags={"team": "detection", "granularity": "source host, 1 h tumbling"},
)

flow_classifier_v1 = FeatureService(
    name="flow_classifier_v1",
    features=[flow_stats, src_host_activity_1h],
    description="Feature set of the XGBoost flow classifier, version 1: flow statistics "
    "plus the source host's activity in the previous hour.",
)
