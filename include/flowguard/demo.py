"""The end-to-end demo: the synthetic week through the real Airflow scheduler.

Starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor
on SQLite) in its own process group under ``$FLOWGUARD_HOME/airflow``, then drives the DAGs
through the REST API exactly as a user or an external system would, on the synthetic week of
the dataset profile (``FLOWGUARD_DATASET``: CICIDS2017 by default, or UNSW-NB15): ingest Monday to
Wednesday, train, ingest Thursday and Friday, monitor Thursday and Friday, and wait for any
retraining the monitor triggers. Prints progress and a summary; exits non-zero if any DAG run
fails.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flowguard.airflow_env import (
    PortInUse,
    airflow_ports,
    airflow_process_env,
    check_ports_free,
    port_setting,
)
from flowguard.config import get_settings
from flowguard.profiles import active

log = logging.getLogger(__name__)

INGEST, TRAIN, MONITOR = "flowguard_ingest", "flowguard_train", "flowguard_monitor"
STATE_DIRS = ("airflow", "landing", "lake", "quarantine", "gx", "mlflow", "feast", "reports",
              "work", "alerts", ".dvc", "dvc-remote")  # dvc-remote: the default remote only
# How often the demo asks Airflow for a run's state: a run is seen to end half of this later
# on average (two API calls each; at 2 s, 1 s late at each of the demo's ~15 waits).
POLL_SECONDS = 0.5
STATE_FILES = ("lake.dvc", "landing.dvc", "quarantine.dvc", ".dvcignore")


def state_paths(home: Path, landing_dir: Path) -> tuple[list[Path], list[Path]]:
    """The folders and files a demo wipes: the shared state and the active profile's landing
    folder (with its DVC file) when it lies inside the home."""
    dirs = [home / name for name in STATE_DIRS]
    files = [home / name for name in STATE_FILES]
    landing = Path(landing_dir).resolve()
    if landing.is_relative_to(home.resolve()) and landing not in dirs:
        dirs.append(landing)
        files.append(landing.with_name(f"{landing.name}.dvc"))
    return dirs, files


class DemoFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class AirflowStandalone:
    """``airflow standalone`` in its own process group, stopped as a group."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.env, self.log_path, self.port = env, log_path, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        airflow = Path(sys.executable).parent / "airflow"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([str(airflow), "standalone"], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoFailed(f"airflow standalone exited ({self.proc.returncode}); "
                                 f"see {self.log_path}")
            try:
                health = httpx.get(f"http://127.0.0.1:{self.port}/api/v2/monitor/health",
                                   timeout=5).json()
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"Airflow not healthy after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        time.sleep(1)
        try:  # orphans of the group (task supervisors) go too
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Api:
    """A minimal Airflow REST API v2 client (token auth of the simple auth manager)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        import httpx

        token = httpx.post(f"{base}/auth/token", json={"username": username,
                                                       "password": password}, timeout=30)
        token.raise_for_status()
        self.client = httpx.Client(base_url=f"{base}/api/v2", timeout=60, headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise DemoFailed(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        entry = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                          "/xcomEntries/return_value", params={"deserialize": True,
                                                               "stringify": False})
        return entry["value"]


@dataclass
class Demo:
    port: int = 8080
    scale: float = 0.01
    timings: dict[str, float] = field(default_factory=dict)
    ingests: list[dict[str, Any]] = field(default_factory=list)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # progress: generate, Airflow, 3 ingests, first training, 2 x (ingest + monitor); each
    # drift-triggered retrain adds one
    stage_no: int = 0
    stages_total: int = 10

    def stage(self, what: str) -> None:
        """Announce the next stage: ``stage 4 of 10: ...`` (a retrain raises the total)."""
        self.stage_no += 1
        self.stages_total = max(self.stages_total, self.stage_no)
        say(f"stage {self.stage_no} of {self.stages_total}: {what}")

    def trigger(self, api: Api, dag_id: str, run_id: str, conf: dict[str, Any] | None = None,
                day: date | None = None) -> str:
        body: dict[str, Any] = {"dag_run_id": run_id, "conf": conf or {}, "logical_date": None}
        if day is not None:
            start, end = f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z"
            body.update(logical_date=start, data_interval_start=start, data_interval_end=end)
        api.call("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return run_id

    def wait(self, api: Api, dag_id: str, run_id: str, label: str, timeout: float = 1800) -> str:
        started, seen = time.monotonic(), ""
        while time.monotonic() - started < timeout:
            run = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            tis = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            progress = " ".join(f"{t['task_id']}={t['state'] or '-'}"
                                for t in sorted(tis["task_instances"],
                                                key=lambda t: t["task_id"]))
            if progress != seen:
                say(f"  {label}: {progress}")
                seen = progress
            if run["state"] in ("success", "failed"):
                elapsed = time.monotonic() - started
                self.timings[label] = round(elapsed, 1)
                say(f"{label}: {run['state']} in {elapsed:.0f} s")
                if run["state"] == "failed":
                    self.failed.append(f"{dag_id}/{run_id}")
                return str(run["state"])
            time.sleep(POLL_SECONDS)
        self.failed.append(f"{dag_id}/{run_id} (timeout)")
        raise DemoFailed(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s")

    def run(self) -> int:
        settings = get_settings()
        home = settings.home
        started = time.monotonic()
        try:  # before anything is wiped or started
            check_ports_free(airflow_ports(self.port))
        except (PortInUse, ValueError) as exc:
            say(f"FAILED before starting: {exc}")
            return 1
        dirs, files = state_paths(home, settings.landing_dir)
        for path in dirs:  # the demo starts from nothing, every time
            shutil.rmtree(path, ignore_errors=True)
        for path in files:
            path.unlink(missing_ok=True)
        # The scheduler creates scheduled and asset-triggered runs ([scheduler] use_job_schedule
        # must stay on: off, the monitor would never start). Unpaused, ingest also starts its
        # cron run for yesterday, which finds no data in the 2017 week and skips at once.
        env = airflow_process_env(home, self.port)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("FLOWGUARD", "MLFLOW"))})

        profile = active()
        self.stage(f"generating the synthetic {profile.title} week from real flows (scale "
                   f"{self.scale}) into {settings.landing_dir}")
        t0 = time.monotonic()
        files = profile.synthetic_week().generate_week(settings.landing_dir, scale=self.scale,
                                                       quirk_rate=0.001)
        self.timings["generate week"] = round(time.monotonic() - t0, 1)
        say(f"  {len(files)} files in {self.timings['generate week']} s")

        self.stage("starting Airflow (standalone: api-server, scheduler, dag-processor, "
                   "triggerer; about a minute)")
        t0 = time.monotonic()
        server = AirflowStandalone(env, home / "airflow" / "standalone.log", self.port)
        try:
            server.start()
            self.timings["airflow start"] = round(time.monotonic() - t0, 1)
            say(f"  healthy in {self.timings['airflow start']} s")
            self._drive(home)
        except DemoFailed as exc:
            say(f"FAILED: {exc}")
            self.failed.append(str(exc))
        finally:
            say("stopping Airflow")
            server.stop()
        self.timings["total"] = round(time.monotonic() - started, 1)
        self.summary(settings)
        return 1 if self.failed else 0

    def _drive(self, home: Path) -> None:
        password_file = home / "airflow" / "simple_auth_manager_passwords.json.generated"
        if not password_file.is_file():
            raise DemoFailed(f"Airflow answered on port {self.port} but wrote no {password_file}:"
                             " is another server on that port? see "
                             f"{home / 'airflow' / 'standalone.log'}")
        passwords = json.loads(password_file.read_text())
        api = Api(f"http://127.0.0.1:{self.port}", "admin", passwords["admin"])
        deadline = time.monotonic() + 180
        while True:
            errors = api.call("GET", "/importErrors")
            if errors["total_entries"]:
                raise DemoFailed(f"DAG import errors: {errors['import_errors']}")
            dags = {d["dag_id"] for d in api.call("GET", "/dags", params={"tags": "flowguard"})["dags"]}
            if {INGEST, TRAIN, MONITOR} <= dags:
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"DAGs not parsed after 180 s (have {sorted(dags)})")
            time.sleep(POLL_SECONDS)
        # The monitor stays paused until a champion exists: paused, it gets no asset events
        # from the Monday-Wednesday ingests (unpaused, each would start a run that skips).
        for dag_id in (INGEST, TRAIN):
            api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

        week_start = active().synthetic_week().WEEK_START
        days = [week_start + timedelta(days=i) for i in range(5)]
        for day in days[:3]:
            self._ingest(api, day)
        self.stage("training the first model on Monday-Wednesday (training set through Feast, "
                   "a search sized to the data, MLflow run, gate)")
        run_id = self.trigger(api, TRAIN, "demo__train__initial",
                              {"as_of": str(days[3]), "reason": "initial (demo)"})
        self.wait(api, TRAIN, run_id, "train (initial)")
        api.call("PATCH", f"/dags/{MONITOR}", json={"is_paused": False})
        say("monitor unpaused: each ingest run now starts one (scheduled on flowguard_features)")
        for day in days[3:]:
            before = self._run_ids(api, MONITOR)
            self._ingest(api, day)
            run_id = self._wait_for_new_run(api, MONITOR, before)
            self.stage(f"monitoring {day:%a} (drift detectors in the drift runtime)")
            state = self.wait(api, MONITOR, run_id, f"monitor {day:%a}")
            if state != "success" or self._task_state(api, MONITOR, run_id, "report") != "success":
                continue
            decision = api.xcom(MONITOR, run_id, "report")
            self.monitors.append(decision)
            say(f"  {decision['reason']}" + ("" if decision["retrain"] or not decision["drift"]
                                             else f"; {decision['why']}"))
            if decision["retrain"]:
                retrain = f"drift__{run_id}"
                self.stages_total += 1
                self.stage(f"drift: the retrain it triggered ({retrain})")
                self._wait_for_run(api, TRAIN, retrain)
                self.wait(api, TRAIN, retrain, f"retrain after {day:%a}")
        # Leave the DAGs paused: `make airflow` must not start scheduled runs for today's
        # date on a landing folder that only holds 2017's synthetic week.
        for dag_id in (INGEST, TRAIN, MONITOR):
            api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    @staticmethod
    def _run_ids(api: Api, dag_id: str) -> set[str]:
        runs = api.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return {r["dag_run_id"] for r in runs}

    @staticmethod
    def _task_state(api: Api, dag_id: str, run_id: str, task_id: str) -> str | None:
        return api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]

    def _wait_for_new_run(self, api: Api, dag_id: str, before: set[str],
                          timeout: float = 180) -> str:
        """The run the scheduler starts for an asset event (the ingest run just finished)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = sorted(self._run_ids(api, dag_id) - before)
            if new:
                return new[0]
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"ingest updated flowguard_features but no {dag_id} run started "
                         f"within {timeout:.0f} s")

    def _wait_for_run(self, api: Api, dag_id: str, run_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = api.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
            if any(r["dag_run_id"] == run_id for r in runs):
                return
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"the monitor reported drift but {dag_id} run {run_id} never appeared")

    def _ingest(self, api: Api, day: date) -> None:
        self.stage(f"ingesting {day:%A %Y-%m-%d} (validate, feast apply, materialize)")
        run_id = self.trigger(api, INGEST, f"demo__ingest__{day}", day=day)
        if self.wait(api, INGEST, run_id, f"ingest {day:%a}") == "success":
            self.ingests.append(api.xcom(INGEST, run_id, "materialize"))

    def summary(self, settings: Any) -> None:
        from flowguard.pipeline import _mlflow
        from flowguard.registry import summarise_versions

        print("\n" + "=" * 78)
        print("flowguard demo summary")
        print("=" * 78)
        print("\nTime per stage (wall clock, s):")
        for name, seconds in self.timings.items():
            print(f"  {name:<28}{seconds:>8}")
        print("\nIngest (rows in / valid / quarantined):")
        for r in self.ingests:
            print(f"  {r['day']}  {r['rows_in']:>8} {r['rows_valid']:>8} {r['rows_quarantined']:>6}"
                  f"   {Path(r['quarantine_path']).parent}")
        print("\nModel versions (macro-F1 on the newest labelled flows):")
        try:
            for v in summarise_versions(_mlflow(settings), settings.model_name):
                print(f"  v{v['version']:<3} macro-F1 {v['macro_f1']:.4f}  gate {v['gate'] or '-':<7}"
                      f" aliases {','.join(v['aliases']) or '-':<18} trigger: {v['trigger']}")
                print(f"       gate: {v['gate_reason']}")
        except Exception as exc:  # noqa: BLE001 - a summary must not hide the run's outcome
            print(f"  (could not read the registry: {exc})")
        print("\nDrift checks:")
        for m in self.monitors:
            p_values = "  ".join(f"{k.removesuffix('_p_value')} p={v:.3g}" for k, v in m.items()
                                 if k.endswith("_p_value") and v is not None)
            action = "RETRAIN" if m["retrain"] else ("alert only" if m["drift"] else "no action")
            print(f"  {m['window']}  {p_values}  -> {action}")
        print("\nWhere to look:")
        print(f"  Airflow UI      make airflow, then http://127.0.0.1:{self.port}  (user admin,"
              f" password in {settings.home / 'airflow' / 'simple_auth_manager_passwords.json.generated'})")
        print(f"  MLflow UI       make mlflow, then http://127.0.0.1:{port_setting('mlflow')}")
        print(f"  Data docs       {settings.data_docs_index}")
        if self.monitors:
            print(f"  Drift reports   {Path(self.monitors[-1]['report_html']).parent.parent}")
        print(f"  Quarantine      {settings.quarantine_dir}")
        print(f"  Airflow log     {settings.home / 'airflow' / 'standalone.log'}")
        if (settings.home / "lake.dvc").exists():
            from flowguard.dataversion import remote_url

            print(f"  Data versions   DVC in {settings.home} (remote {remote_url(settings.home)}"
                  f"); retrain v1 on its exact data: .venv/bin/flowguard reproduce "
                  f"{settings.model_name} 1")
        if self.failed:
            print(f"\nFAILED: {self.failed}")
        else:
            print("\nAll DAG runs succeeded.")
