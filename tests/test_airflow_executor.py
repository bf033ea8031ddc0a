"""The embedded profile's executor forks its workers with the task libraries imported.

The LocalExecutor forks its workers when it starts and each worker forks its tasks, so
what a worker has loaded, every task process starts with. The check reads a real worker's
memory map (``/proc/<pid>/maps``): the shared libraries of XGBoost, DuckDB and Arrow are
there when the preload ran, and not when ``FLOWGUARD_PRELOAD=off``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S

PROJECT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, os, sys
from pathlib import Path
from flowguard.airflow_executor import PreloadingLocalExecutor

executor = PreloadingLocalExecutor(parallelism=1)
before = {m: m in sys.modules for m in ("xgboost", "great_expectations", "feast", "mlflow")}
executor.start()
try:
    (worker,) = executor.workers.values()
    maps = Path(f"/proc/{worker.pid}/maps").read_text()
finally:
    executor.end()
print(json.dumps({"before": before,
                  "after": {m: m in sys.modules for m in before},
                  "flowguard": sorted(m for m in sys.modules if m.startswith("flowguard")),
                  "worker_libs": sorted({lib for lib in ("libxgboost", "duckdb", "libarrow.so")
                                         if lib in maps})}))
"""


def _start(preload: str, tmp_path: Path) -> dict:
    env = {**os.environ, "FLOWGUARD_PRELOAD": preload,
           "AIRFLOW_HOME": str(tmp_path / "airflow")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=HANG_GUARD_S, cwd=PROJECT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_workers_fork_with_the_task_libraries_loaded(tmp_path: Path) -> None:
    seen = _start("on", tmp_path)
    assert not any(seen["before"].values()), seen  # nothing was loaded before start()
    assert all(seen["after"].values()), seen
    assert seen["worker_libs"] == ["duckdb", "libarrow.so", "libxgboost"], seen
    # what the preload imported of flowguard is dropped: each task imports that code afresh
    assert seen["flowguard"] == ["flowguard", "flowguard.airflow_executor"], seen


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_preload_off_is_the_plain_local_executor(tmp_path: Path) -> None:
    seen = _start("off", tmp_path)
    assert not any(seen["after"].values()), seen
    assert seen["worker_libs"] == [], seen


def test_the_committed_configuration_selects_it() -> None:
    from configparser import ConfigParser

    cfg = ConfigParser(interpolation=None)
    cfg.read(PROJECT / "airflow.cfg")
    assert cfg["core"]["executor"] == "flowguard.airflow_executor.PreloadingLocalExecutor"
    from airflow.executors.executor_loader import ExecutorLoader
    from airflow.executors.local_executor import LocalExecutor

    executor_cls, _ = ExecutorLoader.import_executor_cls(
        ExecutorLoader.get_executor_names()[0])
    assert executor_cls.__name__ == "PreloadingLocalExecutor"
    assert issubclass(executor_cls, LocalExecutor) and executor_cls.is_local  # standalone keeps it


def test_no_preload_where_the_workers_would_not_inherit_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker started by spawn or forkserver inherits no module: then nothing is preloaded."""
    from airflow.executors.local_executor import LocalExecutor

    import flowguard.airflow_executor as module

    calls: list[str] = []
    monkeypatch.setattr(module, "preload", lambda: calls.append("preload") or {})
    monkeypatch.setattr(LocalExecutor, "start", lambda self: calls.append("start"))
    executor = module.PreloadingLocalExecutor(parallelism=1)
    executor.is_mp_using_fork = False
    executor.start()
    assert calls == ["start"]
    executor.is_mp_using_fork = True
    executor.start()
    assert calls == ["start", "preload", "start"]
