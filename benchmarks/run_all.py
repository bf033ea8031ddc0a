"""Run every benchmark of the project and write one results file plus one markdown table.

    .venv/bin/python benchmarks/run_all.py            # full sizes (budget: 45 min, 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # every benchmark at its quick size

Each ``benchmarks/bench_<area>.py`` is run in its own process (so peak-memory figures do not
leak between benchmarks) with ``--out benchmarks/results/<area>[-quick].json``; this script adds the
end-to-end demo (full mode), collects everything into ``benchmarks/results/summary.json`` and
renders ``benchmarks/RESULTS.md``, which it also copies into the README between the
``<!-- benchmarks:start -->`` / ``<!-- benchmarks:end -->`` markers (full runs of every
area only; ``--quick`` writes ``summary-quick.json`` and ``RESULTS-quick.md``).

Budget: the full run must finish within 45 minutes on the 2-core machine and ``--quick``
within 5; the summary records the total and whether the budget was met. Full mode generates
the 2.8 M-row synthetic week once (the ingest benchmark times the generator) and hands the
same files to the training benchmark. The demo (8-9 minutes a run) is not part of
``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def run_script(script: Path, quick: bool, timeout: float,
               extra: list[str] | None = None) -> dict[str, Any]:
    """Run one benchmark script; return its own JSON plus how the run went."""
    area = script.stem.removeprefix("bench_")
    # Quick results go beside the full ones, never over them.
    target = RESULTS / (f"{area}-quick.json" if quick else f"{area}.json")
    started = time.time()
    cmd = ([sys.executable, str(script), "--out", str(target)] + (["--quick"] if quick else [])
           + (extra or []))
    print(f"== {area}: {' '.join(cmd[1:])}", flush=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)
        rc, tail = done.returncode, (done.stderr or done.stdout)[-1500:]
    except subprocess.TimeoutExpired:
        rc, tail = -1, f"timed out after {timeout:.0f} s"
    entry: dict[str, Any] = {"script": script.name, "returncode": rc,
                             "wall_seconds": round(time.time() - started, 1)}
    fresh = target.exists() and target.stat().st_mtime >= started
    if rc != 0:
        entry["error"] = tail
        if fresh:  # what it measured before it failed or ran out of time
            entry["partial_results"] = json.loads(target.read_text())
    elif fresh:
        entry["results"] = json.loads(target.read_text())
    else:
        entry["error"] = f"{script.name} exited 0 but did not write {target.name}"
    print(f"   {'ok' if 'results' in entry else 'FAILED'} in {entry['wall_seconds']} s", flush=True)
    return entry


def run_demo(repeats: int, timeout: float) -> dict[str, Any]:
    """The README's main job end to end (`flowguard demo`) on a throwaway home."""
    walls = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="flowguard-bench-demo-") as home:
            env = {**os.environ, "FLOWGUARD_HOME": home}
            started = time.perf_counter()
            done = subprocess.run([str(Path(sys.executable).parent / "flowguard"), "demo"],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False)
            if done.returncode != 0:
                return {"returncode": done.returncode, "error": done.stderr[-1500:]}
            walls.append(time.perf_counter() - started)
    return {"returncode": 0, "results": {"demo_end_to_end": {
        "runs": len(walls), "median_s": round(statistics.median(walls), 1),
        "min_s": round(min(walls), 1), "max_s": round(max(walls), 1)}}}


SKIP = {"details", "machine", "config", "settings", "load_avg", "loadavg", "loadavg_start",
        "loadavg_at_end", "load_avg_1_5_15", "load_before", "load_after", "note", "params",
        "runs_detail"}
MEMORY = ("peak_rss_mb", "peak_mb", "peak_rss_gb")
ID_KEYS = ("case", "detector", "online_store", "source_rows", "entities", "n", "target_rows",
           "size_requested", "rows", "size", "name", "kind")


def _median_triple(value: Any) -> tuple[float, float, float] | None:
    if isinstance(value, dict) and {"median", "min", "max"} <= set(value):
        return value["median"], value["min"], value["max"]
    return None


def _memory(node: dict[str, Any]) -> Any:
    for key in MEMORY:
        if key in node:
            triple = _median_triple(node[key])
            return triple[0] if triple else node[key]
        if f"{key}_median" in node:
            return node[f"{key}_median"]
    return ""


def _label(node: dict[str, Any]) -> str:
    parts = [f"{k}={node[k]}" for k in ID_KEYS if k in node and not isinstance(node[k], dict | list)]
    return " ".join(parts)


def measurements(value: Any, path: str = "", default_runs: Any = "") -> list[dict[str, Any]]:
    """Every measured figure in a benchmark's JSON: a median with its spread (min-max, or a
    95 % interval for rates), its number of runs and the peak memory reported beside it."""
    rows: list[dict[str, Any]] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            label = _label(item) if isinstance(item, dict) else ""
            rows += measurements(item, f"{path} [{label or index}]", default_runs)
        return rows
    if not isinstance(value, dict):
        return rows
    memory = _memory(value)
    default_runs = value.get("repeats", default_runs)
    runs = value.get("runs", value.get("n_runs", default_runs))
    runs = runs if not isinstance(runs, list | dict) else len(runs)
    consumed: set[str] = set()

    def add(figure: str, median: Any, spread: str, n: Any = runs) -> None:
        rows.append({"where": path.strip(), "figure": figure, "median": median,
                     "spread": spread, "runs": n, "peak_mb": memory})

    if "rate" in value and "ci95" in value:
        low, high = value["ci95"]
        add("rate", value["rate"], f"95 % CI {low:.3g}-{high:.3g}",
            f"{value.get('flagged', '?')}/{value.get('windows', '?')}")
        consumed |= {"rate", "ci95", "flagged", "windows"}
    if {"median_s", "min_s", "max_s"} <= set(value):
        add("seconds", value["median_s"], f"{value['min_s']:.4g}-{value['max_s']:.4g}")
        consumed |= {"median_s", "min_s", "max_s"}
    for key, item in value.items():
        if key in consumed or key in SKIP:
            continue
        triple = _median_triple(item)
        if key.endswith("_median") and f"{key[:-7]}_min" in value and f"{key[:-7]}_max" in value:
            base = key[:-7]
            if base not in MEMORY:
                add(base, item, f"{value[base + '_min']:.4g}-{value[base + '_max']:.4g}")
            consumed |= {key, f"{base}_min", f"{base}_max"}
        elif triple:
            if key not in MEMORY and key != "rss_after_import_mb":
                add(key, triple[0], f"{triple[1]:.4g}-{triple[2]:.4g}")
        elif isinstance(item, dict | list):
            rows += measurements(item, f"{path} {key}", default_runs)
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for index, item in enumerate(value):
            rows += _flatten(item, f"{prefix}[{_label(item) or index}]")
        return rows
    return [(prefix, value)]


def render(summary: dict[str, Any], details: bool = True) -> str:
    """Per benchmark: every measured figure as median, spread, runs and peak memory; every
    other figure it reported in a collapsed list below."""
    budget = summary["budget_minutes"]
    total = summary["wall_seconds"] / 60
    lines = [f"Benchmarks ({'quick' if summary['quick'] else 'full'} mode), "
             f"{summary['generated']} on {summary['machine']['cores']} cores / "
             f"{summary['machine']['memory_gib']} GiB, Python {summary['machine']['python']}, "
             f"load before {summary['load_before'][0]:.2f}: total **{total:.1f} min** "
             f"(budget {budget} min: {'met' if total <= budget else 'EXCEEDED'}). "
             f"Raw figures: `benchmarks/results/summary{'-quick' if summary['quick'] else ''}"
             ".json`; one process per run, so peak memory (RSS) is that run's own.", ""]
    for area, entry in summary["areas"].items():
        lines += [f"#### {area} ({entry.get('wall_seconds', '?')} s)", ""]
        results = entry.get("results", entry.get("partial_results"))
        if "results" not in entry:
            lines += [f"Failed: `{entry.get('error', '')[-300:].strip()}`", ""]
            if results is None:
                continue
            lines += ["What it measured before that:", ""]
        rows = measurements(results)
        if rows:
            lines += ["| where | figure | median | spread | runs | peak MB |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {r['where']} | {r['figure']} | {_fmt(r['median'])} | {r['spread']} "
                      f"| {r['runs']} | {_fmt(r['peak_mb'])} |" for r in rows]
            lines.append("")
        other = [(k, v) for k, v in _flatten(results)
                 if not any(part in k for part in ("load", "machine", "details"))
                 and not isinstance(v, dict | list)]
        if other and details:
            lines += ["<details><summary>all figures</summary>", "",
                      "| figure | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in other]
            lines += ["", "</details>", ""]
    return "\n".join(lines)


def update_readme(markdown: str) -> bool:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\n{markdown}\n{END}{tail}")
    return True


ORDER = ("ingest", "training", "feast", "drift")  # ingest generates the week training reads
BUDGET_MINUTES = {False: 45, True: 5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark at its quick size")
    parser.add_argument("--only", default="", help="comma-separated areas, e.g. feast,drift")
    parser.add_argument("--demo-runs", type=int, default=None,
                        help="end-to-end demo runs (default: 0 with --quick, 1 otherwise: "
                             "8-9 min a run, a second one does not fit the 45-min budget)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--data", type=Path, default=None,
                        help="an already generated full week to reuse (default: the ingest "
                             "benchmark generates one, timed, and training reads it)")
    parser.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    parser.add_argument("--render-only", action="store_true",
                        help="re-render RESULTS.md and the README from the last summary.json")
    args = parser.parse_args(argv)
    if args.render_only:
        summary = json.loads((RESULTS / "summary.json").read_text())
        (HERE / "RESULTS.md").write_text(render(summary) + "\n")
        update_readme(render(summary, details=False))
        return 0
    RESULTS.mkdir(exist_ok=True)
    only = {a for a in args.only.split(",") if a}
    load_before = os.getloadavg()
    started = time.time()
    areas: dict[str, Any] = {}
    scripts = sorted(HERE.glob("bench_*.py"),
                     key=lambda p: (ORDER.index(p.stem[6:]) if p.stem[6:] in ORDER else 99, p.name))
    with tempfile.TemporaryDirectory(prefix="flowguard-bench-data-") as scratch:
        # Full mode generates the 2.8 M-row week once (the ingest benchmark times that, in
        # its scratch folder) and the training benchmark reads the same files. --data reuses
        # a week generated earlier (its GENERATED.json carries the generator's figures).
        ingest_work = Path(scratch) / "ingest"
        week = args.data or ingest_work / "week-full"
        for script in scripts:
            area = script.stem.removeprefix("bench_")
            if only and area not in only:
                continue
            extra: list[str] = []
            if not args.quick and area == "ingest":
                extra = ["--data", str(args.data)] if args.data else ["--work", str(ingest_work)]
            if not args.quick and area in ("training", "e2e") and week.exists():
                extra = ["--data", str(week)]
            if not args.quick and area == "drift":
                # the old alibi ClassifierDrift comparison is a one-off (docs/monitoring.md)
                extra = ["--fa-alibi-windows", "0", "--power-alibi-windows", "0"]
            areas[area] = run_script(script, args.quick, args.timeout, extra)
    demo_runs = args.demo_runs if args.demo_runs is not None else (0 if args.quick else 1)
    if demo_runs and (not only or "demo" in only):
        print(f"== demo x{demo_runs}", flush=True)
        demo_started = time.time()
        areas["demo"] = run_demo(demo_runs, args.timeout)
        areas["demo"]["wall_seconds"] = round(time.time() - demo_started, 1)
    summary = {"generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "quick": args.quick, "machine": machine(), "load_before": load_before,
               "load_after": os.getloadavg(), "budget_minutes": BUDGET_MINUTES[args.quick],
               "wall_seconds": round(time.time() - started, 1), "areas": areas}
    summary["within_budget"] = summary["wall_seconds"] <= 60 * summary["budget_minutes"]
    target = RESULTS / ("summary-quick.json" if args.quick else "summary.json")
    target.write_text(json.dumps(summary, indent=2, default=str))
    markdown = render(summary)
    (HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")).write_text(markdown + "\n")
    if not args.no_readme and not args.quick and not only:
        # the README: the last complete full run, compact (every figure: RESULTS.md)
        update_readme(render(summary, details=False))
    failed = [a for a, e in areas.items() if "results" not in e]
    print(f"done in {summary['wall_seconds']:.0f} s (budget {summary['budget_minutes']} min: "
          f"{'met' if summary['within_budget'] else 'EXCEEDED'}); failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
