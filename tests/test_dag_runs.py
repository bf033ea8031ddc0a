"""Each DAG runs for real (``dag.test()``) on the embedded profile in a temporary home:
Airflow metadata on SQLite, Feast on SQLite + DuckDB, MLflow on SQLite, the drift runtime
through ``@task.external_python``. Chain: ingest Mon-Wed -> train -> ingest Fri -> monitor
Fri, which must branch to the retraining trigger."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory: pytest.TempPathFactory, synthetic_week: Path, drift_python: Path):
    home = tmp_path_factory.mktemp("dag-chain")
    saved = {k: os.environ.get(k) for k in ("FLOWGUARD_HOME", "FLOWGUARD_LANDING_DIR")}
    os.environ["FLOWGUARD_HOME"] = str(home)
    os.environ["FLOWGUARD_LANDING_DIR"] = str(synthetic_week)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy())
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def dags(chain_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert not bag.import_errors
    return bag


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _day(d: int) -> datetime:
    # A CronDataIntervalTimetable run started at midnight covers the day before it.
    return datetime(2017, 7, d + 1, tzinfo=UTC)


def _assert_lineage(home: Path) -> None:
    """The champion's run names the GX validation result of each of its three days."""
    import json

    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("flow-classifier", "champion")
    tags = client.get_run(version.run_id).data.tags
    ids = json.loads(tags["lineage.validation_result_ids"])
    assert len(ids) == 3 and all(ids), ids
    assert tags["lineage.feature_service"] == "flow_classifier_v1"
    assert tags["lineage.dag_run_id"].startswith("manual__")
    assert int(client.get_run(version.run_id).data.metrics["tuning_trials"]) == 2


def test_ingest_train_monitor_chain(dags, chain_home: Path) -> None:
    ingest, train, monitor = (dags.dags[f"flowguard_{n}"] for n in ("ingest", "train", "monitor"))
    for d in (3, 4, 5):
        run = ingest.test(logical_date=_day(d))
        assert run.state == "success", _states(run)
        assert run.data_interval_start == datetime(2017, 7, d, tzinfo=UTC)
    assert len(list((chain_home / "lake" / "flows").glob("date=*/*.parquet"))) == 3
    assert list((chain_home / "quarantine" / "flows").glob("date=*/*.parquet"))
    assert list((chain_home / "gx").rglob("data_docs/local_site/index.html"))

    run = train.test(run_conf={"as_of": "2017-07-06", "reason": "test",
                               "tuning_budget_seconds": 900, "max_trials": 2})
    assert run.state == "success", _states(run)
    _assert_lineage(chain_home)

    run = ingest.test(logical_date=_day(7))
    assert run.state == "success", _states(run)
    run = monitor.test(logical_date=_day(7))
    states = _states(run)
    assert run.state == "success", states
    assert states["alert_and_retrain"] == "success" and states["no_drift"] == "skipped", states
    assert states["alert_only"] == "skipped", states
    assert states["trigger_retrain"] == "success", states
    report = chain_home / "reports" / "drift" / "2017-07-07"
    assert list(report.glob("drift_report.*"))
    assert "<svg" in (report / "drift_report.html").read_text()

    from airflow.models import DagRun

    queued = DagRun.find(dag_id="flowguard_train")
    retrain = [r for r in queued if r.run_id.startswith("drift__")]
    assert len(retrain) == 1
    conf = retrain[0].conf
    assert conf["as_of"] == "2017-07-08" and conf["drift_window"] == "2017-07-07"
    assert conf["reason"].startswith("drift on 2017-07-07: drift (all of mmd p=")
    assert 0 <= conf["p_values"]["mmd_p_value"] < 0.05
    assert conf["report"].endswith("2017-07-07/drift_report.html")

    # The same window again (dag.test starts another run for it): drift is reported and
    # alerted, but the ledger allows one trigger per window, so no second retraining run.
    run = monitor.test(logical_date=_day(7))
    states = _states(run)
    assert run.state == "success", states
    assert states["alert_only"] == "success" and states["alert_and_retrain"] == "skipped", states
    assert states["trigger_retrain"] == "skipped", states
    assert len([r for r in DagRun.find(dag_id="flowguard_train")
                if r.run_id.startswith("drift__")]) == 1
    ledger = (chain_home / "reports" / "drift" / "triggers.json").read_text()
    assert ledger.count('"window"') == 1
