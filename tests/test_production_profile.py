"""The production profile on real services: the same DAGs and code, only configuration changed.

Airflow metadata, the MLflow backend store and the Feast registry on PostgreSQL, the Feast
online store on Redis, each in a database of this run's own (created here, dropped after).
MLflow is reached on its PostgreSQL store directly here; the MLflow server of the compose
profile is tested in tests/test_mlflow_server.py.
The chain ingest Tue + Wed -> train -> ingest Fri -> monitor Fri runs with ``dag.test()`` in
a fresh process that has only the production variables (``production_environment``, the
same names docker-compose.yaml sets); the checks then read the services directly.
Skips when PostgreSQL or Redis is unreachable, fails instead when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import HANG_GUARD_S, PROJECT
from tests.services import pg_databases, pg_query, production_environment, redis_db

pytestmark = pytest.mark.slow


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def production_run(tmp_path_factory: pytest.TempPathFactory, synthetic_week: Path,
                   drift_python: Path):
    home = tmp_path_factory.mktemp("production")
    with pg_databases("airflow", "mlflow", "feast") as databases, redis_db() as redis:
        env = {**os.environ, **production_environment(databases, redis),
               "FLOWGUARD_HOME": str(home / "var"),
               "FLOWGUARD_LANDING_DIR": str(synthetic_week),
               "AIRFLOW_HOME": str(home / "airflow")}
        airflow = Path(sys.executable).parent / "airflow"
        migrate = subprocess.run([str(airflow), "db", "migrate"], env=env, cwd=home,
                                 capture_output=True, text=True, timeout=HANG_GUARD_S)
        assert migrate.returncode == 0, _tail(migrate.stdout + migrate.stderr)
        out = home / "chain.json"
        chain = subprocess.run([sys.executable, "-m", "tests.production_chain", str(out)],
                               env={**env, "PYTHONPATH": str(PROJECT)}, cwd=PROJECT,
                               capture_output=True, text=True, timeout=HANG_GUARD_S)
        result = json.loads(out.read_text()) if out.exists() else {}
        assert chain.returncode == 0, (json.dumps(result.get("runs"), indent=1)
                                       + "\n" + _tail(chain.stdout + chain.stderr, 120))
        yield {"home": home / "var", "databases": databases, "redis": redis, "result": result}


def test_dag_chain_succeeds_on_postgres(production_run) -> None:
    result = production_run["result"]
    assert result["sql_alchemy_conn"].startswith("127.0.0.1:5432/flowguard_airflow_")
    runs = result["runs"]
    assert [r["dag_id"] for r in runs] == ["flowguard_ingest"] * 2 + ["flowguard_train",
                                           "flowguard_ingest", "flowguard_monitor"]
    assert all(r["state"] == "success" for r in runs), runs
    monitor = runs[-1]["tasks"]
    assert monitor["alert_and_retrain"] == "success" and monitor["no_drift"] == "skipped", monitor

    # The runs are in the PostgreSQL metadata database, including the retraining run the
    # monitor's trigger queued there.
    rows = pg_query(production_run["databases"]["airflow"],
                    "SELECT dag_id, state, count(*) FROM dag_run GROUP BY dag_id, state")
    counts = {(dag_id, state): n for dag_id, state, n in rows}
    assert counts[("flowguard_ingest", "success")] == 3
    assert counts[("flowguard_train", "success")] == 1
    assert counts[("flowguard_monitor", "success")] == 1
    queued = pg_query(production_run["databases"]["airflow"],
                      "SELECT run_id, state FROM dag_run WHERE dag_id = 'flowguard_train' "
                      "AND run_id LIKE 'drift__%%'")
    assert len(queued) == 1 and queued[0][1] == "queued", queued


def test_model_registry_on_postgres(production_run) -> None:
    db = production_run["databases"]["mlflow"]
    versions = pg_query(db, "SELECT name, version, status FROM model_versions")
    assert versions == [("flow-classifier", 1, "READY")]
    aliases = pg_query(db, "SELECT name, alias, version FROM registered_model_aliases")
    assert ("flow-classifier", "champion", 1) in aliases
    runs = dict(pg_query(db, "SELECT e.name, count(*) FROM runs r JOIN experiments e "
                             "USING (experiment_id) WHERE r.status = 'FINISHED' GROUP BY e.name"))
    assert runs.get("flowguard-monitoring") == 1, runs
    assert sum(runs.values()) >= 2, runs


def test_feast_registry_on_postgres_and_online_store_on_redis(production_run) -> None:
    db = production_run["databases"]["feast"]
    views = {name for (name,) in pg_query(db, "SELECT feature_view_name FROM feature_views")}
    assert {"flow_stats", "src_host_activity_1h"} <= views
    services = pg_query(db, "SELECT feature_service_name FROM feature_services")
    assert ("flow_classifier_v1",) in services

    # One Redis hash per source host materialized (Feast keys: entity key + project name).
    hosts = pd.concat(pd.read_parquet(p) for p in
                      (production_run["home"] / "lake" / "hosts").glob("date=*/part-0.parquet"))
    materialized = hosts[hosts["event_timestamp"].dt.strftime("%d").isin(["04", "05", "07"])]
    client = production_run["redis"].client()
    keys = [k for k in client.scan_iter(count=1000) if k.endswith(b"flowguard")]
    assert len(keys) == materialized["src_ip"].nunique() > 0

    # Scoring read a host's activity back from Redis and the champion from the registry.
    scored = production_run["result"]["scored"]
    assert scored["model_version"] == "1"
    assert scored["host_features"]["host_flows_1h"] >= 1, scored


def test_nothing_fell_back_to_local_databases(production_run) -> None:
    home = production_run["home"]
    assert not [p for p in home.rglob("*") if p.suffix in {".db", ".sqlite"}]
    assert not (home.parent / "airflow" / "airflow.db").exists()
