"""The DAG files load without errors, carry the metadata operators rely on, and stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROJECT

DAG_IDS = {"flowguard_ingest", "flowguard_train", "flowguard_monitor", "flowguard_backtest"}
HEAVY = ["pandas", "feast", "mlflow", "xgboost", "great_expectations", "alibi_detect", "torch",
         "sklearn", "flowguard.pipeline"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_dag_metadata(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert "flowguard" in dag.tags and len(dag.tags) >= 2
    assert dag.doc_md and dag.doc_md.strip()
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.owner == "detection-ml", task.task_id
        assert task.retries >= 1, task.task_id
        assert task.on_failure_callback, task.task_id


def test_monitor_branches_to_retrain_or_nothing(dagbag) -> None:
    dag = dagbag.dags["flowguard_monitor"]
    decide = dag.get_task("decide")
    assert decide.downstream_task_ids == {"alert_and_retrain", "alert_only", "no_drift"}
    trigger = dag.get_task("trigger_retrain")
    assert trigger.trigger_dag_id == "flowguard_train"
    assert "alert_and_retrain" in trigger.conf and trigger.skip_when_already_exists
    # every Param is typed and empty by default: config/monitoring.yaml supplies the value
    for name, param in dag.params.items():
        assert param.value is None and param.schema.get("type"), name
    assert dag.get_task("detect").expect_airflow is False


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (PROJECT / "dags").glob("*.py")))
def test_dag_files_import_no_heavy_libraries(dag_file: str) -> None:
    code = (f"import runpy, sys; runpy.run_path({str(PROJECT / 'dags' / dag_file)!r}); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


def _required_in_trigger_form(schema: dict) -> bool:
    """The Airflow 3 UI's rule (trigger form): a typed field whose type does not admit null
    is required, and an empty text or list field counts as no value."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_trigger_form_submits_with_defaults(dagbag, dag_id: str) -> None:
    """Every DAG can be triggered from the UI without touching a field: a Param whose default
    is empty admits null (the form sends null for an empty field), and every default is valid."""
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags[dag_id]
    for name, param in dag.params.items():
        if param.value in (None, "", []):
            assert not _required_in_trigger_form(param.schema), (
                f"{dag_id}.{name}: empty default but the form marks it required")
    ParamsDict(dict(dag.params.items())).validate()  # the defaults pass their own schemas
    ParamsDict({**dict(dag.params.items()), **{n: None for n, p in dag.params.items()
                                                if p.value in (None, "", [])}}).validate()
