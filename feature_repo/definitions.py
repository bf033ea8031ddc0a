"""Feast definitions: flows and source hosts, their views and the model's feature service.

- Flows are events: each validated flow has a stable ``flow_uid``; its CICFlowMeter
  statistics reach training through an offline view (online copy off: at scoring time they
  arrive with the request).
- Source hosts are entities: activity in the trailing hour before a flow (flows, distinct
  destination ports, SYN-only and reset shares, bytes, packets, mean duration), stamped
  every 5 minutes, computed at ingest and materialized to the online store for scoring.
- One versioned feature service per model feature set: ``flow_classifier_v1`` (flow
  statistics + source-host activity) and ``flow_classifier_flows_only_v1`` for data without
  addresses. A change of features is a new version, never an edit of a published one.

Training and monitoring read the versioned feature service, point-in-time, never the files.
"""

from __future__ import annotations

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, Project, ValueType
from feast.types import Float64

from flowguard.config import get_settings
from flowguard.features import (
    FEATURE_SERVICE,
    FLOW_VIEW,
    FLOWS_ONLY_SERVICE,
    HOST_TTL,
    HOST_VIEW,
    HOST_VIEW_FEATURES,
)
from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES


def _checked_home() -> None:
    """Refuse a home that is unset or not spelled as its resolved path.

    feature_store.yaml fills ``${FLOWGUARD_HOME}`` as text and Feast compares store paths as
    text: ``feature_repo/../var/feast/online_store.db`` and ``var/feast/online_store.db`` are
    the same file, yet ``feast apply`` takes the second spelling for a new store and drops
    the online tables. Stopping here, while Feast imports this file, is before it plans.
    """
    home = os.environ.get("FLOWGUARD_HOME", "")
    if not home or home != os.path.realpath(home):
        raise SystemExit(
            f"FLOWGUARD_HOME={home!r} is {'unset' if not home else 'not a resolved path'}: Feast "
            "compares store paths as text and would drop the online store's tables. Run "
            "`make feast-apply`, `flowguard feast apply`, or from feature_repo/: "
            "FLOWGUARD_HOME=$(realpath ../var) feast apply --skip-source-validation")


_checked_home()
_LAKE = get_settings().lake_dir

project = Project(name="flowguard", description="Network-flow intrusion features: validated "
                  "CICFlowMeter flows and source-host activity (flowguard).")

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
    description="Per-source-host aggregates of validated flows over the trailing hour, "
    "stamped every 5 minutes at the window's end.",
)

flow_stats = FeatureView(
    name=FLOW_VIEW,
    entities=[flow],
    # A flow's statistics are stamped with its own event time; the entity row asks at that
    # time. The ttl only bounds how far back the join scans.
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=Float64) for name in FEATURE_COLUMNS],
    source=flows_source,
    online=False,
    tags={"team": "detection", "granularity": "flow"},
)

src_host_activity_1h = FeatureView(
    name=HOST_VIEW,
    entities=[src_host],
    # Only the latest window (ended at most one 5-minute hop before the flow) applies: no
    # window then means the host was idle for the last hour, not "use an older one".
    ttl=HOST_TTL,
    schema=[Field(name=name, dtype=Float64) for name in HOST_VIEW_FEATURES],
    source=host_activity_source,
    online=True,
    tags={"team": "detection", "granularity": "source host, 1 h trailing, 5 min hop"},
)

flow_classifier_v1 = FeatureService(
    name=FEATURE_SERVICE,
    # exactly the model's inputs (schema.MODEL_FEATURES), in the model's order
    features=[flow_stats, src_host_activity_1h[HOST_FEATURES]],
    description="Feature set of the XGBoost flow classifier, version 1: flow statistics "
    "plus the source host's activity in the trailing hour.",
    tags={"model": "flow-classifier", "version": "1"},
)

flow_classifier_flows_only_v1 = FeatureService(
    name=FLOWS_ONLY_SERVICE,
    features=[flow_stats],
    description="Flow statistics only, for data without addresses (the 79-column "
    "MachineLearningCVE layout): no host entity to join.",
    tags={"model": "flow-classifier-flows-only", "version": "1"},
)
