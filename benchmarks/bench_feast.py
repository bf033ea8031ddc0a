"""Feast on this machine: apply, materialization, historical and online retrieval.

Each measurement runs in a fresh child process (so peak memory is its own: ``VmHWM``,
which includes ~0.4 GB of imports, reported separately as ``rss_after_import_mb``) against a
throwaway FLOWGUARD_HOME with synthetic host windows and flows in the source layout the
pipeline writes. Medians of ``--repeats`` runs with min/max; the 1/5/15-minute load average
is recorded with every case because the machine's two cores are shared. Online retrieval
runs in the process that materialized (one import of feast fewer per repeat), its peak
memory reset (``/proc/self/clear_refs``) before it starts: its peak is measured from what
materialization left allocated, not from a fresh process.

    .venv/bin/python benchmarks/bench_feast.py            # full: 100 k and 1 M rows
    .venv/bin/python benchmarks/bench_feast.py --quick    # ~2 minutes, small sizes

Redis cases run where Redis answers on 127.0.0.1:6379, under a project of their own whose
keys are deleted afterwards; otherwise they are recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT / "feature_repo"
DAY = datetime(2017, 7, 3, tzinfo=UTC)
ROWS_PER_HOST = 50


def _rss_mb(field: str = "VmHWM") -> float:
    """This process's own peak RSS (VmHWM; ``VmRSS``: the current one). Not ru_maxrss: a
    child's ru_maxrss starts at its parent's RSS at fork (Linux keeps it across exec), so the
    driver's data would count."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(f"{field}:")) / 1024


def _online_latency(store, home: Path) -> dict:
    """p50/p99 of ``get_online_features`` for 1 and 100 random hosts (300 / 60 calls)."""
    import numpy as np
    import pandas as pd

    from flowguard.features import HOST_VIEW
    from flowguard.schema import HOST_FEATURES

    ips = pd.read_parquet(home / "lake" / "hosts", columns=["src_ip"])["src_ip"].unique()
    features = [f"{HOST_VIEW}:{n}" for n in HOST_FEATURES]
    rng = np.random.default_rng(1)
    out = {}
    for batch in (1, 100):
        calls = 300 if batch == 1 else 60
        store.get_online_features(features=features,  # warm-up
                                  entity_rows=[{"src_ip": ips[0]}]).to_dict()
        lat = []
        for _ in range(calls):
            rows = [{"src_ip": ip} for ip in rng.choice(ips, batch, replace=False)]
            started = time.perf_counter()
            got = store.get_online_features(features=features, entity_rows=rows).to_dict()
            lat.append((time.perf_counter() - started) * 1000)
        assert all(v is not None for v in got[HOST_FEATURES[0]]), "online store empty"
        out[f"p50_ms_{batch}"] = float(np.percentile(lat, 50))
        out[f"p99_ms_{batch}"] = float(np.percentile(lat, 99))
    return out


# ---------------------------------------------------------------- data


def write_data(home: Path, host_rows: int, flow_rows: int) -> None:
    """Host windows (``host_rows`` over host_rows/50 hosts, 5-minute stamps over one day)
    and ``flow_rows`` flows (77 statistics each) in the pipeline's source layout."""
    import numpy as np
    import pandas as pd

    from flowguard.features import HOST_VIEW_FEATURES, write_partition
    from flowguard.schema import FEATURE_COLUMNS

    rng = np.random.default_rng(7)
    hosts = max(1, host_rows // ROWS_PER_HOST)
    ips = pd.array([f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(hosts)],
                   dtype="string")
    host_idx = np.arange(host_rows) % hosts
    slot = (np.arange(host_rows) // hosts) % 288  # 288 five-minute stamps a day
    windows = pd.DataFrame({
        "src_ip": ips[host_idx],
        "event_timestamp": pd.Timestamp(DAY) + pd.to_timedelta(slot * 5, unit="min"),
    })
    for name in HOST_VIEW_FEATURES:
        windows[name] = rng.random(host_rows) * 100
    windows["ingested_at"] = pd.Timestamp(DAY + timedelta(days=1))
    windows["event_timestamp"] = windows["event_timestamp"].astype("datetime64[ns, UTC]")
    windows["ingested_at"] = windows["ingested_at"].astype("datetime64[ns, UTC]")
    write_partition(windows, home / "lake" / "hosts", DAY.date())

    flows = pd.DataFrame(rng.random((flow_rows, len(FEATURE_COLUMNS))) * 1000,
                         columns=FEATURE_COLUMNS)
    flows.insert(0, "flow_uid", np.arange(flow_rows, dtype="int64"))
    flows["event_timestamp"] = (pd.Timestamp(DAY) + pd.to_timedelta(
        rng.integers(0, 86_400_000, flow_rows), unit="ms")).astype("datetime64[ns, UTC]")
    flows["src_ip"] = ips[rng.integers(0, hosts, flow_rows)]
    flows["label"] = pd.array(["BENIGN"] * flow_rows, dtype="string")
    flows["ingested_at"] = windows["ingested_at"].iloc[0]
    flows["ingested_at"] = flows["ingested_at"].astype("datetime64[ns, UTC]")
    write_partition(flows, home / "lake" / "flows", DAY.date())


def redis_repo(home: Path, project: str) -> Path:
    repo = home / "feature_repo_redis"
    if not repo.exists():
        shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry:\n  registry_type: sql\n"
        f"  path: sqlite:///{home}/feast/registry_redis.db\n"
        "online_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n"
        "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n")
    return repo


def redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "not available" here
        return False


def redis_cleanup(project: str) -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"*{project}*", count=5000))
    for i in range(0, len(keys), 5000):
        client.delete(*keys[i:i + 5000])
    return len(keys)


# ---------------------------------------------------------------- one measurement (child)


def child(case: str, home: Path, size: int, online: str, project: str) -> dict:
    import feast.repo_operations  # noqa: F401  (import cost, ~8 s, stays out of the timings)
    import pandas as pd

    from flowguard.features import (
        FEATURE_SERVICE,
        HOST_VIEW,
        apply_definitions,
        get_store,
        historical_features,
    )
    from flowguard.schema import HOST_FEATURES

    os.environ["FLOWGUARD_HOME"] = str(home)
    repo = redis_repo(home, project) if online == "redis" else REPO
    base = _rss_mb()
    out: dict = {"rss_after_import_mb": round(base, 1)}
    if case == "apply":
        started = time.perf_counter()
        apply_definitions(repo, home)  # into an empty registry
        out["seconds_first"] = time.perf_counter() - started
        started = time.perf_counter()
        apply_definitions(repo, home)  # again: nothing changed (what every DAG run does)
        out["seconds_again"] = time.perf_counter() - started
    elif case == "materialize":
        apply_definitions(repo, home)
        store = get_store(repo, home)
        started = time.perf_counter()
        store.materialize(start_date=DAY, end_date=DAY + timedelta(days=1),
                          feature_views=[HOST_VIEW])
        out["seconds"] = time.perf_counter() - started
        out["rows_per_s"] = size / out["seconds"]
        out["entities_per_s"] = max(1, size // ROWS_PER_HOST) / out["seconds"]
        # Online retrieval follows in this process: a second child would import feast again
        # (~8 s, a fifth of the benchmark). VmHWM is reset between the two, so the online
        # peak is measured from the RSS materialization left behind (rss_after_import_mb).
        out["peak_rss_mb"] = round(_rss_mb(), 1)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        online = {"rss_after_import_mb": round(_rss_mb("VmRSS"), 1),
                  **_online_latency(store, home), "peak_rss_mb": round(_rss_mb(), 1)}
        return {"materialize": out, "online": online}
    elif case == "historical":
        apply_definitions(repo, home)
        store = get_store(repo, home)
        entities = pd.read_parquet(home / "lake" / "flows",
                                   columns=["flow_uid", "event_timestamp", "src_ip", "label"])
        entities = entities.head(size)
        started = time.perf_counter()
        frame = historical_features(store, entities, FEATURE_SERVICE)
        out["seconds"] = time.perf_counter() - started
        out["rows"] = len(frame)
        out["host_features_found"] = float(frame[HOST_FEATURES[0]].notna().mean())
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    return out


# ---------------------------------------------------------------- driver


def run_child(case: str, home: Path, size: int, online: str = "sqlite", project: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--home", str(home), "--size", str(size),
           "--online", online, "--project", project]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{case} {online} {size}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    summary = {}
    for k in keys:
        values = [r[k] for r in runs]
        summary[k] = {"median": round(statistics.median(values), 4),
                      "min": round(min(values), 4), "max": round(max(values), 4)}
    return summary


def cli_apply(home: Path) -> float:
    env = {**os.environ, "FLOWGUARD_HOME": str(home), "FEAST_USAGE": "False"}
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=REPO, env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - started


def _m(entry: dict, key: str, fmt: str = "{:.1f}") -> str:
    v = entry[key]
    return f"{fmt.format(v['median'])} ({fmt.format(v['min'])}-{fmt.format(v['max'])})"


def table(results: dict) -> str:
    """The README's markdown table: medians with (min-max), peak RSS, load average."""
    lines = ["| what | median (min-max) | peak RSS MB | load 1/5/15 min |", "|---|---|---|---|"]
    for e in results["cases"]:
        if "skipped" in e:
            lines.append(f"| {e['case']} | skipped: {e['skipped']} | | |")
            continue
        load = "/".join(f"{x:.1f}" for x in e["load_avg"])
        peak = e["peak_rss_mb"]["median"] if "peak_rss_mb" in e else "-"
        case = e["case"]
        if case == "feast_apply_in_process":
            rows = [("`feast apply` in-process, empty registry (s)", _m(e, "seconds_first", "{:.2f}")),
                    ("`feast apply` in-process, nothing changed (s)", _m(e, "seconds_again", "{:.2f}"))]
        elif case == "feast_apply_cli":
            rows = [("`feast apply` CLI wall time incl. imports (s)", _m(e, "seconds"))]
        elif case == "materialize":
            what = f"materialize {e['source_rows']:,} rows / {e['entities']:,} hosts into {e['online_store']}"
            rows = [(f"{what} (rows/s)", _m(e, "rows_per_s", "{:,.0f}")),
                    (f"{what} (s)", _m(e, "seconds"))]
        elif case == "online_retrieval":
            where = f"online {e['online_store']} ({e['entities']:,} hosts)"
            rows = [(f"{where}, 1 entity p50 / p99 (ms)",
                     f"{_m(e, 'p50_ms_1', '{:.2f}')} / {_m(e, 'p99_ms_1', '{:.2f}')}"),
                    (f"{where}, 100 entities p50 / p99 (ms)",
                     f"{_m(e, 'p50_ms_100')} / {_m(e, 'p99_ms_100')}")]
        else:
            rows = [(f"historical retrieval, {e['entity_rows']:,} entity rows via {e['service']} (s)",
                     _m(e, "seconds"))]
        lines += [f"| {w} | {v} | {peak} | {load} |" for w, v in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results" / "feast.json")
    parser.add_argument("--table", action="store_true", help="print the README table of --out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--online", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--project", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("FEAST_USAGE", "False")
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.home, args.size, args.online, args.project)))
        return 0

    repeats = args.repeats or (2 if args.quick else 3)
    sizes = [10_000] if args.quick else [100_000, 1_000_000]
    historical_sizes = [10_000] if args.quick else [100_000, 1_000_000]
    use_redis = redis_up()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                     "quick": args.quick, "repeats": repeats, "cases": []}
    root = Path(tempfile.mkdtemp(prefix="bench-feast-"))

    def record(name: str, params: dict, runs: list[dict]) -> None:
        entry = {"case": name, **params, "load_avg": [round(x, 2) for x in os.getloadavg()],
                 **summarize(runs)}
        results["cases"].append(entry)
        print(json.dumps(entry), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)  # partial results survive a stop
        args.out.write_text(json.dumps({**results, "partial": True}, indent=2) + "\n")

    try:
        home = root / "apply"
        write_data(home, 1000, 1000)
        apply_runs = []
        for _ in range(repeats):
            shutil.rmtree(home / "feast", ignore_errors=True)
            apply_runs.append(run_child("apply", home, 0))
        record("feast_apply_in_process", {"note": "imports excluded"}, apply_runs)
        if not args.quick:
            record("feast_apply_cli", {"note": "wall time of `feast apply`, imports included"},
                   [{"seconds": cli_apply(home)} for _ in range(repeats)])
        for size in sizes:
            home = root / f"m{size}"
            write_data(home, size, 1000)
            for online in ["sqlite", "redis"] if use_redis else ["sqlite"]:
                runs, online_runs = [], []
                for _ in range(repeats):
                    project = f"bench_{uuid.uuid4().hex[:8]}" if online == "redis" else ""
                    shutil.rmtree(home / "feast", ignore_errors=True)
                    try:
                        both = run_child("materialize", home, size, online, project)
                        runs.append(both["materialize"])
                        online_runs.append(both["online"])
                    finally:
                        if project:
                            redis_cleanup(project)
                params = {"online_store": online, "source_rows": size,
                          "entities": size // ROWS_PER_HOST}
                record("materialize", params, runs)
                record("online_retrieval", {**params, "note": "in the materializing process, "
                       "its peak RSS reset before the online phase"}, online_runs)
        home = root / "historical"
        write_data(home, sizes[0], max(historical_sizes))
        for n in historical_sizes:
            record("historical_retrieval_service",
                   {"entity_rows": n, "service": "flow_classifier_v1 (77 flow + 6 host features)"},
                   [run_child("historical", home, n) for _ in range(repeats)])
        if not use_redis:
            results["cases"].append({"case": "redis", "skipped": "Redis at 127.0.0.1:6379 unreachable"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
