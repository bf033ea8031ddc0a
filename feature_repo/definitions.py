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

Each dataset profile (``include/flowguard/profiles/<name>.yaml``) has its own sources, views
and services, declared here from the profile's data: the CICIDS2017 objects above keep their
names; UNSW-NB15's are ``unsw_nb15_flow_stats``, ``unsw_nb15_src_host_activity_1h`` and
``unsw_nb15_classifier_v1`` (+ ``_flows_only_v1``). The two entities are shared. Declared:
the active profile's and those of any other profile with data in the home (:func:`_declared`).
"""

from __future__ import annotations

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, Project, ValueType
from feast.types import Float64

from flowguard.features import HOST_TTL
from flowguard.profiles import Profile, active, all_profiles


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
_HOME = os.environ["FLOWGUARD_HOME"]

project = Project(name="flowguard", description="Network-flow intrusion features: validated "
                  "flows of each dataset profile and source-host activity (flowguard).")

flow = Entity(
    name="flow",
    join_keys=["flow_uid"],
    value_type=ValueType.INT64,
    description="One network flow (a CICFlowMeter or Argus record): day, file index and line "
    "number.",
)

src_host = Entity(
    name="src_host",
    join_keys=["src_ip"],
    value_type=ValueType.STRING,
    description="A source IP address of the monitored network ('unknown' where not published).",
)


def _declare(profile: Profile) -> dict[str, object]:
    """The sources, views and feature services of one dataset profile."""
    names = profile.feast
    lake = os.path.join(_HOME, profile.lake)
    flows_source = FileSource(
        name=names.flow_source,
        path=os.path.join(lake, "flows", "*", "*.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="ingested_at",
        description=f"{profile.title}: flows that passed the Great Expectations contract, one "
        "partition per day.",
    )
    host_activity_source = FileSource(
        name=names.host_source,
        path=os.path.join(lake, "hosts", "*", "*.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="ingested_at",
        description=f"{profile.title}: per-source-host aggregates of validated flows over the "
        "trailing hour, stamped every 5 minutes at the window's end.",
    )
    flow_stats = FeatureView(
        name=names.flow_view,
        entities=[flow],
        # A flow's statistics are stamped with its own event time; the entity row asks at
        # that time. The ttl only bounds how far back the join scans.
        ttl=timedelta(days=1),
        schema=[Field(name=name, dtype=Float64) for name in profile.flow_features],
        source=flows_source,
        online=False,
        tags={"team": "detection", "granularity": "flow", "dataset": profile.name},
    )
    host_view = FeatureView(
        name=names.host_view,
        entities=[src_host],
        # Only the latest window (ended at most one 5-minute hop before the flow) applies: no
        # window then means the host was idle for the last hour, not "use an older one".
        ttl=HOST_TTL,
        schema=[Field(name=name, dtype=Float64) for name in names.host_view_features],
        source=host_activity_source,
        online=True,
        tags={"team": "detection", "granularity": "source host, 1 h trailing, 5 min hop",
              "dataset": profile.name},
    )
    service = FeatureService(
        name=names.feature_service,
        # exactly the model's inputs (Profile.model_features), in the model's order
        features=[flow_stats, host_view[list(names.host_features)]],
        description=f"Feature set of the XGBoost {profile.title} classifier, version "
        f"{names.service_version.lstrip('v')}: flow statistics plus the source host's "
        "activity in the trailing hour.",
        tags={"model": profile.model_name, "version": names.service_version.lstrip("v"),
              "dataset": profile.name},
    )
    flows_only = FeatureService(
        name=names.flows_only_service,
        features=[flow_stats],
        description=f"{profile.title}: flow statistics only, for data without addresses "
        "(no host entity to join).",
        tags={"model": f"{profile.model_name}-flows-only", "version": "1",
              "dataset": profile.name},
    )
    return {f"{profile.name}_flows_source": flows_source,
            f"{profile.name}_host_activity_source": host_activity_source,
            f"{profile.name}_flow_view": flow_stats, f"{profile.name}_host_view": host_view,
            f"{profile.name}_service": service, f"{profile.name}_flows_only_service": flows_only}


def _declared() -> list[Profile]:
    """The active profile (``FLOWGUARD_DATASET``) and every other profile that has data in
    this home (its host windows exist): switching datasets in one home never drops the other
    one's views, and a home with one dataset registers no view without files (``feast
    materialize`` with no view named materializes every online view)."""
    current = active()
    return [p for p in all_profiles() if p.name == current.name
            or os.path.isdir(os.path.join(_HOME, p.lake, "hosts"))]


# Feast finds the objects among this module's names: one set per declared profile.
for _profile in _declared():
    globals().update(_declare(_profile))
