"""Scale-out with Airflow's own CeleryExecutor: a real worker on the local Redis broker runs a task.

The test starts the components the production profile runs (metadata on PostgreSQL, broker on
a Redis database of its own, Celery results in PostgreSQL): ``airflow api-server`` (the
Execution API the task runner reports to), ``airflow scheduler`` with the CeleryExecutor and
``airflow celery worker``, each in its own process group. DAG parsing is done once by
``airflow dags reserialize`` (what the dag-processor does continuously). A probe DAG that
imports the flowguard package is triggered; the test checks that the task succeeded, that it
ran in a descendant of the worker it started, that Celery recorded the result in PostgreSQL,
and that the worker stops cleanly on SIGTERM (warm shutdown, exit code 0).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S
from tests.services import pg_databases, pg_query, production_environment, redis_db

pytestmark = pytest.mark.slow

DAG_ID = "flowguard_celery_probe"
PROBE_DAG = '''
"""Probe: which process ran me, and can it import the flowguard package?"""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(dag_id="flowguard_celery_probe", schedule=None, start_date=datetime(2017, 7, 3),
     catchup=False, tags=["flowguard", "test"])
def flowguard_celery_probe():
    @task
    def where(run_id=None) -> dict:
        import sys

        # what the task process started with: the worker's preload (flowguard.celery_config)
        inherited = {m: m in sys.modules for m in ("xgboost", "great_expectations", "mlflow")}
        import json
        import os
        from pathlib import Path

        import psutil

        from flowguard.config import get_settings

        me = psutil.Process()
        found = {"pid": me.pid, "ancestors": [p.pid for p in me.parents()],
                 "home": str(get_settings().home), "run_id": run_id, "inherited": inherited}
        Path(os.environ["FLOWGUARD_PROBE_OUT"]).write_text(json.dumps(found))
        return found

    where()


flowguard_celery_probe()
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 300) -> int | None:
    """SIGTERM to the process we started (it shuts its children down), SIGKILL to the group
    it leads if it does not end in time; then nothing of that group is left behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(10)
        return None  # had to be killed
    return proc.returncode


def _wait_healthy(port: int, procs: dict, logs: dict, timeout: float = 1200) -> None:
    """Until the api-server answers its health endpoint (the task runner needs it)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [n for n, p in procs.items() if p.poll() is not None]
        assert not dead, f"{dead} exited:\n" + "\n".join(_tail(logs[n]) for n in dead)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health",
                                        timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"api-server not healthy in {timeout} s\n{_tail(logs['api-server'])}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def test_celery_worker_runs_a_task(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(PROBE_DAG)
    probe_out = tmp_path / "probe.json"
    port = _free_port()
    airflow = str(Path(sys.executable).parent / "airflow")
    with pg_databases("celery") as databases, redis_db() as redis:
        db = databases["celery"]
        production = production_environment({"airflow": db, "mlflow": db, "feast": db}, redis)
        env = {**os.environ,
               **{k: v for k, v in production.items() if k.startswith("AIRFLOW__")},
               "AIRFLOW_HOME": str(tmp_path / "airflow"),
               "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__API__PORT": str(port),
               "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
               "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
               # 2 shared cores: the Execution API's first answers can take longer than the
               # default 5 s (docker-compose.yaml sets the same).
               "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
               "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
               "FLOWGUARD_HOME": str(tmp_path / "var"),
               "FLOWGUARD_PROBE_OUT": str(probe_out),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

        def cli(*args: str) -> str:
            done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True,
                                  timeout=HANG_GUARD_S, cwd=tmp_path)
            assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
            return done.stdout

        cli("db", "migrate")
        cli("dags", "reserialize")
        cli("dags", "unpause", DAG_ID)

        procs: dict[str, subprocess.Popen] = {}
        logs = {name: tmp_path / f"{name}.log" for name in ("api-server", "scheduler", "worker")}
        commands = {"api-server": ["api-server", "--port", str(port), "--host", "127.0.0.1"],
                    "scheduler": ["scheduler"],
                    "worker": ["celery", "worker", "--concurrency", "1", "--skip-serve-logs",
                               "--celery-hostname", f"flowguard-test-{port}@%h"]}
        try:
            for name, args in commands.items():
                with logs[name].open("w") as log:
                    procs[name] = subprocess.Popen([airflow, *args], env=env, cwd=tmp_path,
                                                   stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True)
            _wait_healthy(port, procs, logs)
            run_id = f"celery_probe_{port}"
            cli("dags", "trigger", DAG_ID, "--run-id", run_id)

            state, deadline = None, time.monotonic() + 1500
            while time.monotonic() < deadline:
                rows = pg_query(db, "SELECT state FROM dag_run WHERE run_id = %s", (run_id,))
                state = rows[0][0] if rows else None
                if state in ("success", "failed"):
                    break
                dead = [n for n, p in procs.items() if p.poll() is not None]
                assert not dead, f"{dead} exited:\n" + "\n".join(_tail(logs[n]) for n in dead)
                time.sleep(2)
            assert state == "success", (f"dag run state {state}\n"
                                        + "\n".join(f"--- {n}\n{_tail(p)}" for n, p in logs.items()))

            tis = pg_query(db, "SELECT state, queue, hostname FROM task_instance "
                               "WHERE run_id = %s", (run_id,))
            assert len(tis) == 1 and tis[0][0] == "success" and tis[0][1] == "default", tis
            probe = json.loads(probe_out.read_text())
            assert probe["run_id"] == run_id
            assert procs["worker"].pid in probe["ancestors"], (procs["worker"].pid, probe)
            assert probe["home"] == str(tmp_path / "var")
            # the worker imported the task libraries before its pool forked (worker_init)
            assert probe["inherited"] == {"xgboost": True, "great_expectations": True,
                                          "mlflow": True}, probe
            # The Celery task ends just after the task reported success through the API.
            for _ in range(600):  # a hang guard, not a speed limit
                results = pg_query(db, "SELECT status FROM celery_taskmeta")
                if results == [("SUCCESS",)]:
                    break
                time.sleep(1)
            assert results == [("SUCCESS",)], results
        finally:
            codes = {name: _stop(proc) for name, proc in procs.items()}
        assert codes.get("worker") == 0, f"worker did not stop cleanly ({codes})\n{_tail(logs['worker'])}"
