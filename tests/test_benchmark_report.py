"""The benchmark suite's report: every measured figure with its median, spread, runs and
peak memory, whatever shape each benchmark script writes its JSON in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS = {
    "repeats": 3,
    "machine": {"cpus": 2},
    "sizes": [{"target_rows": 100000, "validate": {
        "runs": 3, "seconds_median": 10.0, "seconds_min": 9.0, "seconds_max": 12.5,
        "peak_rss_mb_median": 512, "peak_rss_mb_min": 500, "peak_rss_mb_max": 530,
        "load_avg_1_5_15": [0.1, 0.2, 0.3]}}],
    "cases": [{"case": "online_retrieval", "online_store": "redis",
               "p99_ms_1": {"median": 8.0, "min": 7.0, "max": 9.0},
               "peak_rss_mb": {"median": 300.0, "min": 299.0, "max": 301.0}}],
    "timing": [{"detector": "mmd_fast", "n": 5000, "runs": 5, "median_s": 1.9, "min_s": 1.6,
                "max_s": 3.3, "peak_rss_mb": 678}],
    "false_alarms": {"mmd": {"windows": 200, "flagged": 9, "rate": 0.045,
                             "ci95": [0.024, 0.083]}},
}


def test_every_measured_figure_is_found_with_its_spread_runs_and_memory() -> None:
    rows = {(r["where"], r["figure"]): r for r in _run_all().measurements(RESULTS)}
    assert set(rows) == {
        ("sizes [target_rows=100000] validate", "seconds"),
        ("cases [case=online_retrieval online_store=redis]", "p99_ms_1"),
        ("timing [detector=mmd_fast n=5000]", "seconds"),
        ("false_alarms mmd", "rate"),
    }  # memory is a column, never a row; load averages and machine facts are not figures
    validate = rows[("sizes [target_rows=100000] validate", "seconds")]
    assert (validate["median"], validate["spread"], validate["runs"], validate["peak_mb"]) == (
        10.0, "9-12.5", 3, 512)
    online = rows[("cases [case=online_retrieval online_store=redis]", "p99_ms_1")]
    assert (online["runs"], online["peak_mb"]) == (3, 300.0)  # runs from the top-level repeats
    alarms = rows[("false_alarms mmd", "rate")]
    assert (alarms["median"], alarms["runs"]) == (0.045, "9/200")
    assert alarms["spread"] == "95 % CI 0.024-0.083"


def test_the_report_says_whether_the_budget_was_met() -> None:
    run_all = _run_all()
    summary = {"generated": "now", "quick": False, "budget_minutes": 45,
               "machine": {"cores": 2, "memory_gib": 24, "python": "3.11"},
               "load_before": [0.2, 0.1, 0.1], "wall_seconds": 46 * 60,
               "areas": {"drift": {"wall_seconds": 10, "results": RESULTS},
                         "feast": {"wall_seconds": 3, "error": "Traceback ... boom"}}}
    text = run_all.render(summary)
    assert "total **46.0 min** (budget 45 min: EXCEEDED)" in text
    assert "| timing [detector=mmd_fast n=5000] | seconds | 1.9 | 1.6-3.3 | 5 | 678 |" in text
    assert "Failed: `Traceback ... boom`" in text
    summary["wall_seconds"] = 44 * 60
    assert "(budget 45 min: met)" in run_all.render(summary)
