"""Online scoring: one flow record in, class probabilities out.

The flow's own CICFlowMeter statistics arrive with the request; its source host's activity
in the previous hour comes from the Feast online store (``src_host_activity_1h``); the model
is the registry's ``champion``. This is the same feature set the model was trained on, read
through the same definitions, so there is no training-serving skew in what it sees.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowguard.features import HOST_KEY, HOST_VIEW, UNKNOWN_HOST
from flowguard.schema import (
    FEATURE_COLUMNS,
    HOST_FEATURES,
    MODEL_FEATURES,
    PUBLISHED_TO_CANONICAL,
)

if TYPE_CHECKING:
    from feast import FeatureStore


class InvalidFlow(ValueError):
    """The request lacks a field or carries a value that is not a finite number."""


def canonical_flow(record: dict[str, Any]) -> dict[str, Any]:
    """Accept canonical names or the published CICIDS2017 headers (any whitespace)."""
    flow = {}
    for key, value in record.items():
        name = PUBLISHED_TO_CANONICAL.get(str(key).strip(), str(key).strip())
        flow[name] = value
    missing = [c for c in FEATURE_COLUMNS if c not in flow]
    if missing:
        raise InvalidFlow(f"flow record lacks fields {missing}")
    for col in FEATURE_COLUMNS:
        try:
            value = float(flow[col])
        except (TypeError, ValueError) as exc:
            raise InvalidFlow(f"field {col!r} is not a number: {flow[col]!r}") from exc
        if not math.isfinite(value):
            raise InvalidFlow(f"field {col!r} is not finite: {flow[col]!r}")
        flow[col] = value
    return flow


def host_features(store: FeatureStore, src_ips: list[str]) -> list[dict[str, float | None]]:
    """Latest materialized activity of each source host (None where a host is unknown),
    in one online-store request."""
    online = store.get_online_features(
        features=[f"{HOST_VIEW}:{name}" for name in HOST_FEATURES],
        entity_rows=[{HOST_KEY: ip} for ip in src_ips],
    ).to_dict()
    return [{name: online[name][i] for name in HOST_FEATURES} for i in range(len(src_ips))]


def score_flows(records: list[dict[str, Any]], store: FeatureStore, model: Any,
                classes: list[str], model_version: str) -> list[dict[str, Any]]:
    """Score flow records with the champion; returns one result dict per record."""
    flows = [canonical_flow(r) for r in records]
    hosts = host_features(store, [str(f.get("src_ip") or UNKNOWN_HOST).strip() for f in flows])
    rows = [{**{c: flow[c] for c in FEATURE_COLUMNS},
             **{k: (math.nan if v is None else float(v)) for k, v in host.items()}}
            for flow, host in zip(flows, hosts, strict=True)]
    proba = model.predict_proba(pd.DataFrame(rows, columns=MODEL_FEATURES))
    results = []
    for flow, host, p in zip(flows, hosts, proba, strict=True):
        probabilities = {c: round(float(x), 6) for c, x in zip(classes, p, strict=True)}
        results.append({
            "flow_id": flow.get("flow_id"),
            "src_ip": flow.get("src_ip"),
            "label": max(probabilities, key=probabilities.get),
            "probabilities": probabilities,
            "host_features": host,
            "model_version": model_version,
        })
    return results
