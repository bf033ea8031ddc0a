"""Run every benchmark of the project and write one results file plus one markdown table.

    .venv/bin/python benchmarks/run_all.py            # full sizes (budget: 45 min, 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # every benchmark at its quick size

Each ``benchmarks/bench_<area>.py`` is run in its own process (so peak-memory figures do not
leak between benchmarks) with ``--out benchmarks/results/<area>[-quick].json``; this script adds the
end-to-end demo (full mode), collects everything into ``benchmarks/results/summary.json`` and
renders ``benchmarks/RESULTS.md``, which it also copies into the README between the
``<!-- benchmarks:start -->`` / ``<!-- benchmarks:end -->`` markers.
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


def run_script(script: Path, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark script; return its own JSON plus how the run went."""
    area = script.stem.removeprefix("bench_")
    # Quick results go beside the full ones, never over them.
    target = RESULTS / (f"{area}-quick.json" if quick else f"{area}.json")
    started = time.time()
    cmd = [sys.executable, str(script), "--out", str(target)] + (["--quick"] if quick else [])
    print(f"== {area}: {' '.join(cmd[1:])}", flush=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)
        rc, tail = done.returncode, (done.stderr or done.stdout)[-1500:]
    except subprocess.TimeoutExpired:
        rc, tail = -1, f"timed out after {timeout:.0f} s"
    entry: dict[str, Any] = {"script": script.name, "returncode": rc,
                             "wall_seconds": round(time.time() - started, 1)}
    if rc != 0:
        entry["error"] = tail
    elif target.exists() and target.stat().st_mtime >= started:
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


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for index, item in enumerate(value):
            label = next((str(item[k]) for k in ("name", "size", "rows", "n", "case")
                          if k in item), str(index))
            rows += _flatten({k: v for k, v in item.items()}, f"{prefix}[{label}]")
        return rows
    return [(prefix, value)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value[:6]) + (" ..." if len(value) > 6 else "")
    return str(value)


def render(summary: dict[str, Any]) -> str:
    """One markdown section per benchmark: every figure it reported, flattened."""
    lines = [f"Benchmarks ({'quick' if summary['quick'] else 'full'} mode), "
             f"{summary['generated']} on {summary['machine']['cores']} cores / "
             f"{summary['machine']['memory_gib']} GiB, Python {summary['machine']['python']}; "
             f"total {summary['wall_seconds']:.0f} s. Raw figures: "
             "`benchmarks/results/summary.json`.", ""]
    for area, entry in summary["areas"].items():
        lines += [f"#### {area} ({entry.get('wall_seconds', '?')} s)", ""]
        if "results" not in entry:
            lines += [f"Failed: `{entry.get('error', '')[-300:].strip()}`", ""]
            continue
        lines += ["| figure | value |", "|---|---|"]
        for key, value in _flatten(entry["results"]):
            if key.split(".")[-1] in {"benchmark", "area", "generated", "quick", "timestamp"}:
                continue
            lines.append(f"| {key} | {_fmt(value)} |")
        lines.append("")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark at its quick size")
    parser.add_argument("--only", default="", help="comma-separated areas, e.g. feast,drift")
    parser.add_argument("--demo-runs", type=int, default=None,
                        help="end-to-end demo runs (default: 0 with --quick, 2 otherwise)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    only = {a for a in args.only.split(",") if a}
    started = time.time()
    areas: dict[str, Any] = {}
    for script in sorted(HERE.glob("bench_*.py")):
        area = script.stem.removeprefix("bench_")
        if not only or area in only:
            areas[area] = run_script(script, args.quick, args.timeout)
    demo_runs = args.demo_runs if args.demo_runs is not None else (0 if args.quick else 2)
    if demo_runs and (not only or "demo" in only):
        print(f"== demo x{demo_runs}", flush=True)
        areas["demo"] = run_demo(demo_runs, args.timeout)
    summary = {"generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "quick": args.quick, "machine": machine(), "load_before": os.getloadavg(),
               "wall_seconds": round(time.time() - started, 1), "areas": areas}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    markdown = render(summary)
    (HERE / "RESULTS.md").write_text(markdown + "\n")
    if not args.no_readme:
        update_readme(markdown)
    failed = [a for a, e in areas.items() if "results" not in e]
    print(f"done in {summary['wall_seconds']:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
