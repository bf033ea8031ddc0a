"""The DAG chain on the production profile, run in a process of its own.

``python -m tests.production_chain OUT.json`` with the production variables in the
environment (Airflow metadata on PostgreSQL, MLflow on PostgreSQL, Feast registry on
PostgreSQL and online store on Redis; see tests/test_production_profile.py). Airflow reads its
configuration once, at import, which is why this runs in a fresh process rather than in the
pytest process (whose Airflow is already configured for SQLite). Runs ingest Tue + Wed ->
train -> ingest Fri -> monitor Fri with ``dag.test()``, then scores one Friday flow the way
``flowguard score`` does (online features from Redis, champion from the MLflow registry),
and writes what happened to OUT.json for the test to check.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def _day(d: int) -> datetime:
    # A CronDataIntervalTimetable run started at midnight covers the day before it.
    return datetime(2017, 7, d + 1, tzinfo=UTC)


def _summary(run) -> dict:
    return {"dag_id": run.dag_id, "run_id": run.run_id, "state": str(run.state),
            "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}


def main(out: Path) -> int:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    result: dict = {"sql_alchemy_conn": conf.get("database", "sql_alchemy_conn").split("@")[-1],
                    "runs": []}
    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    ingest, train, monitor = (bag.dags[f"flowguard_{n}"] for n in ("ingest", "train", "monitor"))

    def record(run) -> bool:
        result["runs"].append(_summary(run))
        out.write_text(json.dumps(result, indent=2))
        return str(run.state) == "success"

    for d in (4, 5):
        if not record(ingest.test(logical_date=_day(d))):
            return 1
    if not record(train.test(run_conf={"as_of": "2017-07-06", "reason": "production test"})):
        return 1
    if not record(ingest.test(logical_date=_day(7))):
        return 1
    if not record(monitor.test(logical_date=_day(7))):
        return 1

    # Score one of Friday's flows as `flowguard score` does: host activity from the online
    # store (Redis), the champion from the registry (PostgreSQL).
    import pandas as pd

    from flowguard.config import get_settings
    from flowguard.features import partition_path
    from flowguard.pipeline import score_records
    from flowguard.schema import FEATURE_COLUMNS

    flows = pd.read_parquet(partition_path(get_settings().flows_source, _day(6).date()))
    hosts = pd.read_parquet(partition_path(get_settings().lake_dir / "hosts", _day(6).date()))
    flow = flows[flows["src_ip"].isin(set(hosts["src_ip"]))].iloc[0]
    # The online store keeps each host's newest window; a flow arriving a minute after it is
    # what serving sees live (an older flow time would, correctly, find no fresh window).
    newest = pd.Timestamp(hosts.loc[hosts["src_ip"] == flow["src_ip"], "event_timestamp"].max())
    record_in = {**{c: float(flow[c]) for c in FEATURE_COLUMNS}, "src_ip": str(flow["src_ip"]),
                 "event_timestamp": (newest + pd.Timedelta(minutes=1)).isoformat()}
    result["scored"] = json.loads(json.dumps(score_records([record_in])[0], default=str))
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
