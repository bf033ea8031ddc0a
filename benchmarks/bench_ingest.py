"""Ingest + validate throughput and peak memory, and generator throughput.

For each size the synthetic week is generated once (published layout, 8 files, class counts
scaled from the published ones; generator throughput is measured here), then each repeat runs
in a fresh process so that its peak RSS (``ru_maxrss``) belongs to that run alone:

* ``parse``: the chunked reader only (all files, all chunks, canonical frames, no GX);
* ``validate``: what ``flowguard validate <folder>`` does: read, GX contract per chunk, valid
  rows and quarantine appended to parquet, data docs rebuilt once.

Throughput excludes the imports (``import great_expectations`` alone is 3 s on a quiet
machine and over 20 s under load); they are reported as ``import_seconds``.

Reports medians with min/max over the repeats and the load average around every run (the
machine is shared). Results: ``benchmarks/results/ingest.json``.

    .venv/bin/python benchmarks/bench_ingest.py --quick        # ~1 minute
    .venv/bin/python benchmarks/bench_ingest.py                # 100 k x3, 1 M x2
    .venv/bin/python benchmarks/bench_ingest.py --sizes 2830743 --repeats 1 --modes parse
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_WEEK = 2_830_743
RESULTS = ROOT / "benchmarks" / "results" / "ingest.json"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, land, out, chunk = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
import pandas, pyarrow.csv  # imports are start-up cost, timed apart from throughput
if mode == "validate":
    import great_expectations
    import flowguard.batch
imported = time.perf_counter()
if mode == "parse":
    from flowguard.ingest import iter_landing_chunks, landing_files
    rows = 0
    for i, path in enumerate(landing_files(land)):
        for chunk_frame in iter_landing_chunks(path, file_index=i % 10, chunk_rows=chunk):
            rows += len(chunk_frame)
    result = {"rows_in": rows}
else:
    from flowguard.batch import validate_path
    report = validate_path(land, out / "validated", out / "gx", chunk_rows=chunk)
    assert report["files_failed"] == 0, report
    assert report["rows_in"] == report["rows_valid"] + report["rows_quarantined"]
    result = {k: report[k] for k in ("rows_in", "rows_valid", "rows_quarantined")}
result["import_seconds"] = imported - started
result["seconds"] = time.perf_counter() - imported
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _child(mode: str, land: Path, out: Path, chunk: int) -> dict:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "FLOWGUARD_HOME": str(out)}
    load_before = _load()
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(land), str(out), str(chunk)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(load_before=load_before, load_after=_load())
    return result


def _summary(runs: list[dict], rows: int) -> dict:
    seconds = [r["seconds"] for r in runs]
    rates = [rows / s for s in seconds]
    peaks = [r["peak_rss_mb"] for r in runs]
    return {
        "runs": len(runs), "seconds_median": round(statistics.median(seconds), 2),
        "seconds_min": round(min(seconds), 2), "seconds_max": round(max(seconds), 2),
        "rows_per_s_median": round(statistics.median(rates)),
        "rows_per_s_min": round(min(rates)), "rows_per_s_max": round(max(rates)),
        "peak_rss_mb_median": round(statistics.median(peaks)), "peak_rss_mb_max": round(max(peaks)),
        "import_seconds_median": round(statistics.median(r["import_seconds"] for r in runs), 2),
        "load_avg_1_5_15": [r["load_before"] for r in runs],
        "details": runs,
    }


def bench_size(target: int, repeats: int, chunk: int, work: Path,
               modes: tuple[str, ...] = ("parse", "validate")) -> dict:
    sys.path.insert(0, str(ROOT / "include"))
    from flowguard.synth import generate_week

    land = work / f"land-{target}"
    shutil.rmtree(land, ignore_errors=True)
    load = _load()
    started = time.perf_counter()
    paths = generate_week(land, scale=target / FULL_WEEK, min_per_class=1, quirk_rate=0.001)
    gen_seconds = time.perf_counter() - started
    with_lines = sum(sum(1 for _ in p.open("rb")) - 1 for p in paths)
    result: dict = {
        "target_rows": target, "rows": with_lines, "chunk_rows": chunk,
        "generate": {"seconds": round(gen_seconds, 2),
                     "rows_per_s": round(with_lines / gen_seconds),
                     "bytes": sum(p.stat().st_size for p in paths), "load_before": load},
    }
    for mode in modes:
        runs = []
        for _ in range(repeats):
            out = work / f"out-{target}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            runs.append(_child(mode, land, out, chunk))
            shutil.rmtree(out, ignore_errors=True)
            assert runs[-1]["rows_in"] == with_lines, (runs[-1], with_lines)
        result[mode] = _summary(runs, with_lines)
        print(f"{target:>9} rows {mode:>8}: {result[mode]['rows_per_s_median']:>7} rows/s, "
              f"peak {result[mode]['peak_rss_mb_max']} MB", flush=True)
    shutil.rmtree(land, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 k rows, 2 repeats (~1 min)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per size (default 3 up to 100 k rows, else 2)")
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--modes", nargs="+", default=["parse", "validate"],
                        choices=["parse", "validate"])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--output", "--out", dest="output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [20_000] if args.quick else args.sizes
    work = args.work or Path(tempfile.mkdtemp(prefix="flowguard-bench-ingest-"))
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = {r["target_rows"]: r for r in existing.get("sizes", [])} if not args.quick else {}
    for size in sizes:
        repeats = args.repeats or (2 if args.quick else 3 if size <= 100_000 else 2)
        results[size] = bench_size(size, repeats, args.chunk_rows, work, tuple(args.modes))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        "benchmark": "ingest+validate (flowguard validate) and generator",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "quick": args.quick,
        "sizes": [results[k] for k in sorted(results)],
    }
    output = (args.output.with_name("ingest-quick.json") if args.quick and args.output == RESULTS
              else args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
