"""The compose profile's MLflow server, run with docker-compose.yaml's own command and options
on a PostgreSQL database of this run: workers log runs and models through it and register
versions in its registry.

It found a defect, now fixed: ``flowguard.registry.register`` passed an MLflow 3
``models:/m-...`` URI as the version's source without ``model_id``. A direct database store
accepts that, the MLflow server answers 400 (INVALID_PARAMETER_VALUE), so training failed on
the compose profile. The first test below registers through the server with the package's
own function.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.services import pg_databases, pg_query, pg_url

pytestmark = pytest.mark.slow
MODEL = "flowguard-server-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """docker-compose.yaml's MLflow server command, run here: the same options, with this
    run's PostgreSQL database, a free port on 127.0.0.1 and one worker. Yields its URL."""
    from tests.test_compose import COMPOSE, interpolate

    command = yaml.safe_load(COMPOSE.read_text())["services"]["mlflow"]["command"]
    port = _free_port()
    overrides = {"--backend-store-uri": backend_uri, "--artifacts-destination": str(artifacts),
                 "--host": "127.0.0.1", "--port": str(port), "--workers": "1"}
    assert command[:2] == ["mlflow", "server"]
    args = [str(Path(sys.executable).parent / "mlflow"), "server"]
    for option, value in zip(command[2::2], command[3::2], strict=True):
        # compose serves MLflow behind its basic-auth app, which needs Flask-WTF: installed in
        # the image (Dockerfile), not in the platform runtime, so the server here runs without
        # it (the authentication itself is not covered by this test)
        if option == "--app-name" and value == "basic-auth":
            continue
        args += [option, overrides.get(option) or interpolate(value, {})]
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ,
                                                             "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "MLflow server not healthy in 180 s"
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # gunicorn/uvicorn workers left behind, if any
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    import mlflow

    from flowguard.config import environment

    tmp = tmp_path_factory.mktemp("mlflow-server")
    # mlflow.set_*_uri export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ:
    # restored afterwards, or later tests' subprocesses would dial this dead server
    with environment(MLFLOW_TRACKING_URI=os.environ.get("MLFLOW_TRACKING_URI"),
                     MLFLOW_REGISTRY_URI=os.environ.get("MLFLOW_REGISTRY_URI")), \
            pg_databases("mlflowsrv") as databases, \
            mlflow_server(pg_url(databases["mlflowsrv"]), tmp / "served",
                          tmp / "server.log") as url:
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        try:
            yield {"url": url, "db": databases["mlflowsrv"], "tmp": tmp,
                   "client": mlflow.MlflowClient(url, url)}
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)


def _log_tiny_model(server: dict, run_name: str):
    """A small XGBoost model logged the way flowguard.training logs (explicit artifact root)."""
    import mlflow
    import xgboost

    from flowguard.training import ensure_experiment

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, nthread=1).fit(x, y)
    experiment = ensure_experiment("flowguard-server", server["tmp"] / "artifacts")
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.log_metric("macro_f1", 1.0)
        info = mlflow.xgboost.log_model(model, name="model", pip_requirements=["xgboost"])
    return run, info, x


def test_package_register_through_the_server(server: dict) -> None:
    from flowguard.registry import register

    run, info, _ = _log_tiny_model(server, "package-register")
    version = register(server["client"], MODEL + "-pkg", info.model_uri, run.info.run_id)
    stored = server["client"].get_model_version(MODEL + "-pkg", version)
    # Before the fix the server answered 400 here; the version points at the logged model.
    assert stored.run_id == run.info.run_id and stored.source == info.model_uri


def test_register_alias_and_load_through_the_server(server: dict) -> None:
    import mlflow

    client = server["client"]
    run, info, x = _log_tiny_model(server, "register-with-model-id")
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, info.model_uri, run_id=run.info.run_id,
                                          model_id=info.model_id)
    client.set_registered_model_alias(MODEL, "champion", version.version)
    loaded = mlflow.xgboost.load_model(f"models:/{MODEL}@champion")
    assert loaded.predict_proba(x).shape == (60, 2)
    # What the server wrote is in its PostgreSQL backend store.
    assert pg_query(server["db"], "SELECT name, alias, version FROM registered_model_aliases "
                                  "WHERE name = %s", (MODEL,)) == [(MODEL, "champion", 1)]
    assert pg_query(server["db"], "SELECT status FROM runs WHERE run_uuid = %s",
                    (run.info.run_id,)) == [("FINISHED",)]
    # Artifacts went to the experiment's explicit root (the shared volume in compose).
    assert list((server["tmp"] / "artifacts").rglob("MLmodel"))
