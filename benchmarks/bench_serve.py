"""Serving benchmark: latency of ``flowguard serve`` for one flow over HTTP on loopback.

Set-up (not timed): a small synthetic week (``synth.generate_week``, scale 0.003; synthetic
data), its Friday ingested, host windows written and materialized into the online store, a
champion trained (no search) and promoted in a throwaway SQLite MLflow registry. Then, per
online store (SQLite, and Redis when one answers on 127.0.0.1:6379), a real ``flowguard
serve`` process on a free port.

Timed: a bounded Python client (``http.client``, one keep-alive connection, one request in
flight) posting one flow per request to ``/score``, cycling over the day's flows (every host
of the day, so most lookups find a window). After a warm-up, each run times ``--requests``
requests and reports p50 / p99 / max; the figure is the median of the runs' percentiles with
their spread. Beside it, in the same run, the floor: the same scoring function called
in-process (no HTTP, no request validation, no served-flow logging), and a 100-flow batch per
request (per-flow cost). Load average before and after: other engineers share the 2 cores.

    .venv/bin/python benchmarks/bench_serve.py --quick
    .venv/bin/python benchmarks/bench_serve.py --runs 5 --requests 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DAY = date(2017, 7, 7)
HANG_GUARD = 900.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def prepare(home: Path) -> list[dict]:
    """The champion, the lake and the SQLite online store of one served day; its flows."""
    from flowguard.features import (
        apply_definitions,
        get_store,
        materialize,
        write_host_activity,
        write_valid_flows,
    )
    from flowguard.ingest import read_day
    from flowguard.pipeline import build_training_set, promote_if_better, train_model
    from flowguard.schema import FEATURE_COLUMNS
    from flowguard.synth import generate_week

    os.environ["FLOWGUARD_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    landing = home / "landing"
    generate_week(landing, scale=0.003, min_per_class=30)
    frame = read_day(landing, DAY)
    frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                  & frame["flow_byts_s"].notna()]
    now = datetime(2017, 7, 8, tzinfo=UTC)
    write_valid_flows(frame, home / "lake" / "flows", DAY, now)
    write_host_activity(frame, home / "lake" / "hosts", DAY, now)
    repo = PROJECT / "feature_repo"
    apply_definitions(repo, home)
    materialize(get_store(repo, home), datetime(2017, 7, 7, tzinfo=UTC), now)
    built = build_training_set("2017-07-08", 1, "bench-serve")
    trained = train_model(built["path"], {"dag_run_id": "bench-serve", "trigger_reason": "bench"},
                          tuning={"max_trials": 0})
    promote_if_better(trained["version"])
    return [{c: float(row[c]) for c in FEATURE_COLUMNS}
            | {"src_ip": row["src_ip"], "flow_id": row["flow_id"],
               "event_timestamp": row["event_timestamp"].isoformat()}
            for _, row in frame.sample(frac=1.0, random_state=0).head(2000).iterrows()]


def redis_repo(work: Path) -> tuple[Path, str] | None:
    """A copy of the feature repo on the local Redis (a project of its own), or None."""
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - no Redis: the SQLite figures only
        print(f"no Redis on 127.0.0.1:6379 ({exc}): SQLite only", flush=True)
        return None
    project = f"flowguard_bench_{uuid.uuid4().hex[:8]}"
    repo = work / "feature_repo_redis"
    shutil.copytree(PROJECT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry:\n  registry_type: sql\n"
        f"  path: sqlite:///{work}/redis-registry.db\n"
        "online_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n"
        "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n")
    return repo, project


def materialize_redis(repo: Path, home: Path) -> None:
    from flowguard.features import apply_definitions, get_store, materialize

    apply_definitions(repo, home)
    materialize(get_store(repo, home), datetime(2017, 7, 7, tzinfo=UTC),
                datetime(2017, 7, 8, tzinfo=UTC))


def drop_redis_project(project: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"*{project}*", count=1000))
    if keys:
        client.delete(*keys)


def start_server(home: Path, repo: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "FLOWGUARD_HOME": str(home), "FLOWGUARD_FEATURE_REPO": str(repo),
           "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([sys.executable, "-m", "flowguard.cli", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
            conn.request("GET", "/health")
            if json.loads(conn.getresponse().read()).get("model_version"):
                return process, port
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not come up")


def time_requests(port: int, bodies: list[bytes], path: str, n: int) -> list[float]:
    """Milliseconds per request, one keep-alive connection, one request in flight."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    headers = {"Content-Type": "application/json"}
    times = []
    for i in range(n):
        body = bodies[i % len(bodies)]
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}: {payload[:500]!r}")
    conn.close()
    return times


def in_process_floor(home: Path, repo: Path, records: list[dict], n: int) -> list[float]:
    """The same scoring call without HTTP: champion in memory, the same online store."""
    from flowguard.config import get_settings
    from flowguard.features import get_store
    from flowguard.pipeline import _mlflow
    from flowguard.registry import champion_version, load_model
    from flowguard.scoring import score_flows

    os.environ["FLOWGUARD_HOME"] = str(home)
    settings = get_settings()
    client = _mlflow(settings)
    version = champion_version(client, settings.model_name)
    model, classes = load_model(client, settings.model_name, version)
    model.get_booster().set_param({"nthread": 1})  # as the server does
    store = get_store(repo, home)
    times = []
    for i in range(n):
        started = time.perf_counter()
        score_flows([records[i % len(records)]], store, model, classes, version)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _triple(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def measure(store_name: str, home: Path, repo: Path, records: list[dict], runs: int,
            requests: int, warmup: int) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    bodies = [json.dumps(r).encode() for r in records]
    batches = [json.dumps({"flows": records[i:i + 100]}).encode()
               for i in range(0, len(records) - 99, 100)]
    load_before = os.getloadavg()
    process, port = start_server(home, repo)
    p50, p99, worst, batch_per_flow = [], [], [], []
    try:
        time_requests(port, bodies, "/score", warmup)
        for _ in range(runs):
            times = time_requests(port, bodies, "/score", requests)
            p50.append(_quantile(times, 0.50))
            p99.append(_quantile(times, 0.99))
            worst.append(max(times))
            batch = time_requests(port, batches, "/score/batch", max(5, requests // 100))
            batch_per_flow.append(statistics.median(batch) / 100)
            print(f"{store_name}: p50 {p50[-1]:.2f} ms, p99 {p99[-1]:.2f} ms, batch of 100 "
                  f"{batch_per_flow[-1]:.3f} ms/flow", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=HANG_GUARD)
    floor = in_process_floor(home, repo, records, warmup + requests)[warmup:]
    return {"online_store": store_name, "runs": runs, "requests_per_run": requests,
            "http_p50_ms": _triple(p50), "http_p99_ms": _triple(p99),
            "http_max_ms": _triple(worst), "batch100_ms_per_flow": _triple(batch_per_flow),
            "in_process_p50_ms": round(_quantile(floor, 0.5), 3),
            "in_process_p99_ms": round(_quantile(floor, 0.99), 3),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 300 requests")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--out", type=Path,
                        default=PROJECT / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.requests, args.warmup = 1, 300, 50
        if args.out.name == "serve.json":
            args.out = args.out.with_name("serve-quick.json")
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="flowguard-bench-serve-") as tmp:
        work = Path(tmp)
        home = work / "home"
        records = prepare(home)
        prep = time.perf_counter() - started
        results.append(measure("sqlite", home, PROJECT / "feature_repo", records, args.runs,
                               args.requests, args.warmup))
        redis = redis_repo(work)
        if redis is not None:
            repo, project = redis
            try:
                materialize_redis(repo, home)
                results.append(measure("redis", home, repo, records, args.runs,
                                       args.requests, args.warmup))
            finally:
                drop_redis_project(project)
    report = {"benchmark": "serve", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {"runs": args.runs, "requests_per_run": args.requests,
                           "warmup": args.warmup, "client": "http.client keep-alive, 1 in flight",
                           "data": "synthetic week (scale 0.003), Friday's flows",
                           "setup_seconds_untimed": round(prep, 1)},
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
