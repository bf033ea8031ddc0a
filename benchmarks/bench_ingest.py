"""Ingest + validate throughput and peak memory at 100 k, 1 M and 2.8 M rows; generator throughput.

The full synthetic week (published layout, 8 files, 2.83 M rows) is generated once (generator
throughput is measured then), or reused with ``--data DIR``. The 100 k and 1 M inputs are
derived from it by seeded per-file sampling of lines (same files, same layout, same quirks,
seconds instead of minutes). Each run is a fresh process, so its peak RSS (``ru_maxrss``)
belongs to that run alone:

* ``validate``: what ``flowguard validate <folder>`` does: read, GX contract per chunk, valid
  rows and quarantine appended to parquet, data docs rebuilt once (100 k x3, 1 M x2,
  2.8 M x1);
* ``parse``: the chunked reader only (all files, all chunks, canonical frames, no GX), once per
  size: its peak memory should not depend on the size.

Throughput excludes the imports (``import great_expectations`` alone is 3 s on a quiet
machine and over 20 s under load); they are reported as ``import_seconds``. Medians with
min/max over the repeats and the load average around every run (the machine may be shared).
About 15 minutes on a quiet 2-core machine, less with ``--data``. Results:
``benchmarks/results/ingest.json``.

    .venv/bin/python benchmarks/bench_ingest.py --quick                    # ~1 minute
    .venv/bin/python benchmarks/bench_ingest.py --data /path/to/week-full  # reuse a week
    .venv/bin/python benchmarks/bench_ingest.py                            # generate it too
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL_WEEK = 2_830_743  # published row count; the synthetic week at scale 1 is within 0.1 %
RESULTS = ROOT / "benchmarks" / "results" / "ingest.json"
GENERATOR = {"seed": 7, "min_per_class": 1, "quirk_rate": 0.001}
# (target rows, validate repeats, parse repeats); None: the whole week
PLAN = [(100_000, 3, 1), (1_000_000, 2, 1), (None, 1, 1)]
QUICK_PLAN = [(None, 1, 1)]  # the generated 20 k-row week itself
PEAK_RSS = "VmHWM of each run's own process"

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
# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's RSS at fork (Linux keeps
# the pre-exec high-water mark), which once reported the generator's 4 GB as the reader's.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(result))
"""

GENERATE = r"""
import json, sys, time
from pathlib import Path
from flowguard.synth import generate_week
out, scale, options = Path(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
started = time.perf_counter()
paths = generate_week(out, scale=scale, **options)
seconds = time.perf_counter() - started
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss_mb": round(int(hwm.split()[1]) / 1024)}))
"""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(code: str, *args: str, home: Path | None = None) -> dict:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")])}
    if home is not None:
        env["FLOWGUARD_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(mode: str, land: Path, out: Path, chunk: int) -> dict:
    load_before = _load()
    result = _run(CHILD, mode, str(land), str(out), str(chunk), home=out)
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


def _data_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n") - 1


def generate(out: Path, scale: float) -> dict:
    """Generate the synthetic week at ``scale`` in a child process (generator throughput)."""
    shutil.rmtree(out, ignore_errors=True)
    load = _load()
    run = _run(GENERATE, str(out), str(scale), json.dumps(GENERATOR))
    paths = sorted(out.glob("*.csv"))
    rows = sum(_data_lines(p) for p in paths)
    return {"scale": scale, **GENERATOR, "rows": rows, "seconds": round(run["seconds"], 2),
            "rows_per_s": round(rows / run["seconds"]), "peak_rss_mb": run["peak_rss_mb"],
            "bytes": sum(p.stat().st_size for p in paths), "load_before": load,
            "load_after": _load()}


def sample_week(source: Path, out: Path, target: int, seed: int = 11) -> int:
    """Keep each data line of every file with probability ``target / total`` (seeded per file).

    Header and line order are kept, so the files keep their published names and layout.
    Returns the number of data lines written.
    """
    files = sorted(p for p in source.glob("*.csv"))
    counts = {p: _data_lines(p) for p in files}
    share = min(1.0, target / max(sum(counts.values()), 1))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    written = 0
    for index, path in enumerate(files):
        keep = np.random.default_rng([seed, index]).random(counts[path]) < share
        with path.open("rb") as src, (out / path.name).open("wb") as dst:
            dst.write(src.readline())
            for line, kept in zip(src, keep, strict=False):
                if kept:
                    dst.write(line)
        written += int(keep.sum())
    return written


def bench_size(land: Path, rows: int, target: int, plan: tuple[int, int], chunk: int,
               work: Path, modes: tuple[str, ...]) -> dict:
    result: dict = {"target_rows": target, "rows": rows, "chunk_rows": chunk}
    for mode, repeats in zip(("validate", "parse"), plan, strict=True):
        if mode not in modes or not repeats:
            continue
        runs = []
        for _ in range(repeats):
            out = work / f"out-{target}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            runs.append(_child(mode, land, out, chunk))
            shutil.rmtree(out, ignore_errors=True)
            assert runs[-1]["rows_in"] == rows, (runs[-1], rows)
        result[mode] = _summary(runs, rows)
        print(f"{rows:>9} rows {mode:>8}: {result[mode]['rows_per_s_median']:>7} rows/s, "
              f"peak {result[mode]['peak_rss_mb_max']} MB, load {_load()}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a generated 20 k-row week, validate and parse once (~1 min)")
    parser.add_argument("--data", type=Path, default=None,
                        help="an already generated full week (skips generating it)")
    parser.add_argument("--sizes", nargs="+", default=None,
                        help="run only these of 100000, 1000000, full (merged into --out)")
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--modes", nargs="+", default=["parse", "validate"],
                        choices=["parse", "validate"])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--output", "--out", dest="output", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="flowguard-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    payload: dict = {"benchmark": "ingest+validate (flowguard validate) and generator",
                     "quick": args.quick, "chunk_rows": args.chunk_rows, "peak_rss": PEAK_RSS}
    if args.quick:
        week, generator = work / "week-quick", generate(work / "week-quick", 20_000 / FULL_WEEK)
        payload["generate"] = generator
        plan = QUICK_PLAN
    else:
        if args.data is None:
            week = work / "week-full"
            payload["generate"] = generate(week, 1.0)
            print(f"generated the full week: {payload['generate']['rows']} rows, "
                  f"{payload['generate']['rows_per_s']} rows/s", flush=True)
        else:
            week = args.data
            note = week / "GENERATED.json"
            payload["generate"] = {"reused": str(week), **(json.loads(note.read_text())
                                                           if note.exists() else {})}
        plan = PLAN if args.sizes is None else [
            p for p in PLAN if str(p[0] or "full") in args.sizes]
    total = sum(_data_lines(p) for p in week.glob("*.csv"))
    payload["sizes"] = []
    for target, validate_repeats, parse_repeats in plan:
        if target is None or target >= total:
            land, rows, target, derived = week, total, total, "the generated week"
        else:
            land = work / f"sample-{target}"
            t0 = time.perf_counter()
            rows = sample_week(week, land, target)
            derived = f"sampled from the week's lines in {time.perf_counter() - t0:.1f} s"
        size = bench_size(land, rows, target, (validate_repeats, parse_repeats),
                          args.chunk_rows, work, tuple(args.modes))
        size["input"] = derived
        payload["sizes"].append(size)
        if land != week:
            shutil.rmtree(land, ignore_errors=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    # a partial run keeps the other sizes, if they were measured the same way (VmHWM)
    if args.sizes and previous.get("peak_rss") == PEAK_RSS:
        done = {s["target_rows"] for s in payload["sizes"]}
        payload["sizes"] = sorted(
            [s for s in previous.get("sizes", []) if s["target_rows"] not in done]
            + payload["sizes"], key=lambda s: s["target_rows"])
    payload.update(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        total_seconds=round(time.perf_counter() - started, 1),
        machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), "load_at_end": _load()})
    output = (args.output.with_name("ingest-quick.json") if args.quick and args.output == RESULTS
              else args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {output} ({payload['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
