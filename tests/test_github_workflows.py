"""The GitHub Actions workflows: valid against the workflow schema (the copy check-jsonschema
ships), and consistent with .ci/run and the production profile the tests prove."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import jsonschema
import pytest
import yaml

from tests.conftest import PROJECT
from tests.services import RedisDb, production_environment

WORKFLOWS = PROJECT / ".github" / "workflows"


def _load(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["test.yml", "train.yml"])
def test_workflow_matches_the_github_schema(name: str) -> None:
    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor")
                         / "github-workflows.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(_load(name)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    broken = _load(name)
    (job,) = broken["jobs"].values()
    job["timeout_minutes"] = job.pop("timeout-minutes")  # misspelt key
    assert list(validator.iter_errors(broken)), "the schema check must catch a misspelt key"


@pytest.mark.parametrize("name", ["test.yml", "train.yml"])
def test_workflows_run_on_postgres_and_redis_service_containers(name: str) -> None:
    (job,) = _load(name)["jobs"].values()
    services = job["services"]
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "5432:5432" in services["postgres"]["ports"]
    assert "6379:6379" in services["redis"]["ports"]
    steps = _steps(_load(name))
    assert any(s.get("with", {}).get("python-version") == "3.11" for s in steps)
    # The drift runtime's CPU torch comes from PyTorch's CPU index (no local wheel there).
    assert job["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert job["timeout-minutes"] <= 90


def test_test_workflow_runs_ci_run() -> None:
    runs = [s["run"] for s in _steps(_load("test.yml")) if "run" in s]
    assert runs == ["bash .ci/run"]
    ci_run = (PROJECT / ".ci" / "run").read_text()
    assert "make test" in ci_run and "export CI=true" in ci_run
    assert ".venv/bin/python -m pytest" in (PROJECT / "Makefile").read_text()


def test_train_workflow_runs_the_training_dag_on_the_production_profile() -> None:
    workflow = _load("train.yml")
    assert workflow["on"]["schedule"] and "workflow_dispatch" in workflow["on"]
    (job,) = workflow["jobs"].values()
    tested = production_environment({"airflow": "a", "mlflow": "m", "feast": "f"},
                                    RedisDb("127.0.0.1", 6379, 1))
    assert set(tested) <= set(job["env"]), sorted(set(tested) - set(job["env"]))
    assert (PROJECT / "feature_repo" / job["env"]["FLOWGUARD_FEAST_YAML"]).is_file()
    script = "\n".join(s.get("run", "") for s in _steps(workflow))
    assert "make runtimes" in script  # the same bootstrap as .ci/run
    assert re.search(r"airflow dags test flowguard_train --conf", script)
    assert re.search(r"airflow dags test flowguard_ingest", script)
    # Every DAG and CLI command it names exists.
    for dag_id in set(re.findall(r"dags test (\w+)", script)):
        assert (PROJECT / "dags" / f"{dag_id}.py").is_file(), dag_id
    cli = (PROJECT / "include" / "flowguard" / "cli.py").read_text()
    for command in set(re.findall(r"bin/flowguard (\w+)", script)):
        assert f'add_parser("{command}"' in cli, command
    # workflow_dispatch inputs reach the shell through env, never pasted into a script.
    assert "${{ inputs." not in script
