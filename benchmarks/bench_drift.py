"""Drift check benchmark: wall time, false-alarm rate, power, detection day.

    .venv/bin/python benchmarks/bench_drift.py [--quick] [--out benchmarks/results/drift.json]

1. Wall time of the detectors in the drift runtime at n = 1 k / 5 k / 20 k flows per side
   (fast MMD, the held-out classifier test, and the whole check: every configured voting
   detector through ``run_detectors`` in one fresh process, imports included, as the DAG
   runs it; alibi-detect's MMDDrift and ClassifierDrift, the references, where they fit in
   the time budget): median and spread of several runs, the CPU time of the same runs (what
   the wall time would be on an idle core: the machine is shared), peak RSS of the process,
   plus the runtime's import time. One process per (detector, n), OMP_NUM_THREADS=1.
2. False-alarm rate over independent no-drift windows at the configured sizes
   (config/monitoring.yaml), per detector and for the decision policy, with a 95 % Wilson
   interval: it must stay at or below the p-value.
3. Power at n = 1000 for the controlled shifts of :mod:`flowguard.shifts`: a new attack class
   at 1 % and 5 %, a benign volume surge, byte counters scaled, an attack class removed.
   The previous classifier detector (alibi-detect ClassifierDrift, random forest, 5 folds)
   runs on the first windows of each shift too ("classifier_alibi"): before vs after on
   the same windows.
4. The quadratic MMD and its random-Fourier-feature form on the same windows (``forms``).
5. Detection day on the replayed synthetic week: reference from Monday-Wednesday flows (as
   the first champion's), one check per day.

Synthetic flows come from the generator's class profiles (fresh rows for every window), so
windows are independent. The machine is shared: the load average is recorded per section.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from flowguard.config import PROJECT_ROOT, get_settings
from flowguard.monitoring import decide, load_monitoring_config, prepare_inputs
from flowguard.shifts import apply_shift, synthetic_rows

# The reference mix: what a champion trained on Monday-Wednesday saw (shares of flows).
REFERENCE_MIX = {"BENIGN": 0.85, "DoS Hulk": 0.10, "FTP-Patator": 0.02, "SSH-Patator": 0.02,
                 "DoS slowloris": 0.01}
SHIFTS = {
    "new_class_1pct": ("new_class", {"label": "PortScan", "share": 0.01}),
    "new_class_5pct": ("new_class", {"label": "PortScan", "share": 0.05}),
    "benign_surge_x3": ("benign_surge", {"factor": 3.0}),
    "byte_counters_x1.5": ("byte_scale", {"factor": 1.5}),
    "remove_dos_hulk": ("remove_class", {"label": "DoS Hulk"}),
}

TIMING_DRIVER = r"""
import json, resource, statistics, sys, time
import numpy as np
ref, cur, which, reps, perms, p_val, est = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
started = time.perf_counter()
if which in ("mmd_alibi", "classifier_alibi"):
    import alibi_detect.cd  # noqa: F401 - the references' import (counted separately)
else:  # what a check imports: torch (MMD), scikit-learn and scipy (classifier)
    import torch, sklearn.ensemble, scipy.stats  # noqa: F401
from flowguard.drift import (alibi_classifier_drift, alibi_mmd, classifier_drift,
                             mmd_permutation_test, run_detectors)
import_s = time.perf_counter() - started
x, y = np.load(ref), np.load(cur)
fn = {"mmd_fast": lambda s: mmd_permutation_test(x, y, perms, p_val, seed=s),
      "mmd_alibi": lambda s: alibi_mmd(x, y, perms, p_val, seed=s),
      "classifier": lambda s: classifier_drift(x, y, p_val, seed=s, n_estimators=est),
      "classifier_alibi": lambda s: alibi_classifier_drift(x, y, p_val, seed=s, n_estimators=est),
      "check": lambda s: run_detectors(ref, cur, p_val, perms, seed=s,
                                       detectors=sys.argv[8].split(","),
                                       classifier_estimators=est)}[which]
if which == "mmd_fast":  # warm-up: torch's lazy initialisation (~1 s once), on a slice
    mmd_permutation_test(x[:200], y[:200], 10, p_val, seed=0)
times, cpu = [], []
for s in range(reps):
    t, c = time.perf_counter(), time.process_time()
    fn(s)
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
print(json.dumps({"seconds": times, "cpu_seconds": cpu, "import_seconds": import_s,
                  "process_cpu_seconds": time.process_time(),
                  "peak_rss_mb": int(next(l for l in open("/proc/self/status")
                                          if l.startswith("VmHWM:")).split()[1]) / 1024}))
"""

BATCH_DRIVER = r"""
import json, sys
from flowguard.drift import run_detectors
for line in open(sys.argv[1]):
    job = json.loads(line)
    out = run_detectors(**job["args"])
    print(json.dumps({"id": job["id"], **out}), flush=True)
"""


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(PROJECT_ROOT / "include"), "HOME": os.environ.get("HOME", "/tmp")}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _flows(n: int, rng: np.random.Generator, mix: dict[str, float] = REFERENCE_MIX
           ) -> pd.DataFrame:
    counts = rng.multinomial(n, list(mix.values()))
    parts = [synthetic_rows(label, int(k), rng) for label, k in zip(mix, counts, strict=True) if k]
    frame = pd.concat(parts, ignore_index=True)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def timing(work: Path, sizes: list[int], config, quick: bool) -> list[dict]:
    drift_python = get_settings().drift_python
    rng = np.random.default_rng(11)
    rows = []
    for n in sizes:
        reference = _flows(2 * n, rng)
        prepared = prepare_inputs(reference, _flows(n, rng), work / f"t{n}", n=n, seed=0,
                                  reference_size=n)
        # (what, runs); the alibi references only where they fit the time budget
        # (MMDDrift at 5 k: ~120 s CPU and 1.8 GB; ClassifierDrift at 5 k: ~9 s CPU)
        plan = [("mmd_fast", 3 if n <= 5000 else 1), ("classifier", 3 if n <= 5000 else 1),
                ("check", 3 if n <= 5000 else 1)]
        if n <= 1000 and not quick:
            plan += [("mmd_alibi", 1), ("classifier_alibi", 1)]
        elif n <= 5000 and not quick:
            plan.append(("classifier_alibi", 1))
        for which, reps in plan:
            load = _load()
            started = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [str(drift_python), "-c", TIMING_DRIVER, prepared["ref_path"],
                 prepared["cur_path"], which, str(reps), str(config.n_permutations),
                 str(config.p_value), str(config.classifier_estimators),
                 ",".join(config.drift_detectors)],
                capture_output=True, text=True, env=_env(), check=False)
            process_wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            out = json.loads(done.stdout.strip().splitlines()[-1])
            secs = out["seconds"]
            row = {"detector": which, "n": n, "runs": reps,
                   "median_s": round(float(np.median(secs)), 3),
                   "min_s": round(min(secs), 3), "max_s": round(max(secs), 3),
                   "cpu_median_s": round(float(np.median(out["cpu_seconds"])), 3),
                   "import_s": round(out["import_seconds"], 2),
                   "peak_rss_mb": round(out["peak_rss_mb"]), "loadavg": load}
            if which == "check":  # the whole process, as the DAG's task pays it
                row["detectors"] = list(config.drift_detectors)
                row["process_wall_s"] = round(process_wall, 2)
                row["process_cpu_s"] = round(after.ru_utime + after.ru_stime
                                             - before.ru_utime - before.ru_stime, 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def run_batch(jobs: list[dict], work: Path) -> dict[str, dict]:
    """All jobs in one drift-runtime process (import once), results by job id."""
    path = work / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    done = subprocess.run([str(get_settings().drift_python), "-c", BATCH_DRIVER, str(path)],
                          capture_output=True, text=True, env=_env(), check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["id"]: r for r in results}


def _job(job_id: str, prepared: dict, config, detectors: list[str], seed: int,
         classifier_backend: str = "fast") -> dict:
    return {"id": job_id, "args": {
        "ref_path": prepared["ref_path"], "cur_path": prepared["cur_path"],
        "p_val": config.p_value, "n_permutations": config.n_permutations, "seed": seed,
        "detectors": detectors, "mmd_backend": "fast",
        "classifier_estimators": config.classifier_estimators,
        "classifier_backend": classifier_backend}}


def _with_alibi(prepared: dict, config, job_id: str, seed: int, alibi: bool) -> list[dict]:
    """The window's jobs: the configured detectors, plus the previous classifier detector
    (alibi-detect ClassifierDrift, 5-fold random forest) on the same matrices if ``alibi``."""
    jobs = [_job(job_id, prepared, config, ["mmd", "classifier"], seed)]
    if alibi:
        jobs.append(_job(job_id + "/alibi", prepared, config, ["classifier"], seed, "alibi"))
    return jobs


def _merge(results: dict[str, dict], ids: list[str]) -> list[dict]:
    out = []
    for i in ids:
        row = dict(results[i])
        if i + "/alibi" in results:
            row["classifier_alibi"] = results[i + "/alibi"]["classifier"]
        out.append(row)
    return out


def _p_uniformity(results: list[dict]) -> dict:
    """Under no drift a valid test's p-values are uniform (the MMD's on a 1/101 grid): the
    share below 0.01 / 0.05 / 0.1 / 0.2 / 0.5 should match those levels."""
    from scipy.stats import kstest

    out = {}
    for det in ("mmd", "classifier", "classifier_alibi"):
        p = np.array([r[det]["p_value"] for r in results if det in r])
        if len(p):
            out[det] = {f"below_{q:g}": round(float((p < q).mean()), 4)
                        for q in (0.01, 0.05, 0.1, 0.2, 0.5)}
            if det == "classifier":  # continuous p-values: KS against U(0, 1)
                out[det]["ks_uniform_p"] = round(float(kstest(p, "uniform").pvalue), 4)
    return out


def _rates(results: list[dict], config) -> dict:
    out = {}
    for det in ("mmd", "classifier", "classifier_alibi"):
        flags = [r[det]["is_drift"] for r in results if det in r]
        if flags:
            k = int(sum(flags))
            out[det] = {"windows": len(flags), "flagged": k, "rate": round(k / len(flags), 4),
                        "ci95": wilson(k, len(flags))}
    both = [r for r in results if "mmd" in r and "classifier" in r]  # the configured pair
    if both:
        k = sum(decide(r, config.policy, ["mmd", "classifier"])[0] for r in both)
        out[f"decision_{config.policy}"] = {"windows": len(both), "flagged": int(k),
                                            "rate": round(k / len(both), 4),
                                            "ci95": wilson(int(k), len(both))}
    return out


def false_alarms(work: Path, config, windows: int, windows_alibi: int) -> dict:
    n, ref_n = config.sample_size, config.reference_size
    jobs, ids = [], []
    for w in range(windows):
        rng = np.random.default_rng([2026, w])
        prepared = prepare_inputs(_flows(2 * ref_n, rng), _flows(n, rng), work / f"fa{w}",
                                  n=n, seed=w, reference_size=ref_n)
        jobs += _with_alibi(prepared, config, f"fa{w}", w, w < windows_alibi)
        ids.append(f"fa{w}")
    load = _load()
    started = time.perf_counter()
    results = _merge(run_batch(jobs, work), ids)
    return {"n": n, "reference_size": ref_n, "p_value": config.p_value,
            "n_permutations": config.n_permutations,
            "classifier_estimators": config.classifier_estimators, **_rates(results, config),
            "p_value_shares": _p_uniformity(results),
            "seconds": round(time.perf_counter() - started, 1), "loadavg": [load, _load()]}


def power(work: Path, config, windows: int, windows_alibi: int, n: int = 1000) -> dict:
    jobs, kinds = [], {}
    for name, (kind, params) in SHIFTS.items():
        for w in range(windows):
            rng = np.random.default_rng([7, w, len(name)])
            window = apply_shift(_flows(int(1.5 * n), rng), kind, rng, **params)
            prepared = prepare_inputs(_flows(2 * n, rng), window, work / f"{name}{w}", n=n,
                                      seed=w, reference_size=n)
            jobs += _with_alibi(prepared, config, f"{name}/{w}", w, w < windows_alibi)
            kinds.setdefault(name, []).append(f"{name}/{w}")
    load = _load()
    started = time.perf_counter()
    results = run_batch(jobs, work)
    out = {}
    for name, ids in kinds.items():
        merged = _merge(results, ids)
        out[name] = {"kind": SHIFTS[name][0], "params": SHIFTS[name][1],
                     **_rates(merged, config)}
        if windows_alibi:  # before vs after on the same windows
            paired = [r for r in merged if "classifier_alibi" in r]
            out[name]["paired_windows"] = {
                "windows": len(paired),
                "classifier": sum(r["classifier"]["is_drift"] for r in paired),
                "classifier_alibi": sum(r["classifier_alibi"]["is_drift"] for r in paired)}
    return {"n": n, "shifts": out, "seconds": round(time.perf_counter() - started, 1),
            "loadavg": [load, _load()]}


MMD_FORM_SHIFTS = ("new_class_1pct", "new_class_5pct", "byte_counters_x1.5")


def mmd_forms(work: Path, config, sizes: list[int], null_windows: int, shift_windows: int
              ) -> dict:
    """The quadratic MMD (``fast``) and the random-Fourier-feature one (``rff``) on the very
    same windows (permutation p-values, no calibration: synthetic i.i.d. windows, where the
    permutation null holds): false alarms and power per size, wall and CPU time per test.
    Above 5000 rows per side only ``rff`` runs (the quadratic form's cost: see timing)."""
    out: dict = {"p_value": config.p_value, "n_permutations": config.n_permutations,
                 "data": "synthetic (generator profiles, fresh rows per window)", "sizes": {}}
    for n in sizes:
        forms = ["fast", "rff"] if n <= 5000 else ["rff"]
        jobs, cases = [], {}
        cases_spec = [("no drift", None)] + [(name, SHIFTS[name]) for name in MMD_FORM_SHIFTS]
        for case, shift in cases_spec:
            for w in range(null_windows if shift is None else shift_windows):
                rng = np.random.default_rng([11, n, w, len(case)])
                window = _flows(n, rng) if shift is None else apply_shift(
                    _flows(int(1.1 * n), rng), shift[0], rng, **shift[1])
                prepared = prepare_inputs(_flows(n + min(5000, n), rng), window,
                                          work / f"forms{n}_{len(cases)}_{w}", n=n, seed=w,
                                          reference_size=n)
                for form in forms:
                    job = _job(f"{case}/{w}/{form}", prepared, config, ["mmd"], w)
                    job["args"]["mmd_backend"] = form
                    jobs.append(job)
                cases.setdefault(case, []).append(w)
        load, started = _load(), time.perf_counter()
        results = run_batch(jobs, work)
        entry: dict = {"forms": forms, "loadavg": [load, _load()],
                       "seconds": round(time.perf_counter() - started, 1)}
        for case, ws in cases.items():
            entry[case] = {}
            for form in forms:
                flags = [results[f"{case}/{w}/{form}"]["mmd"]["is_drift"] for w in ws]
                k = int(sum(flags))
                entry[case][form] = {"flagged": k, "windows": len(flags),
                                     "rate": round(k / len(flags), 4),
                                     "ci95": wilson(k, len(flags))}
            if len(forms) == 2:
                entry[case]["agree"] = sum(
                    results[f"{case}/{w}/fast"]["mmd"]["is_drift"]
                    == results[f"{case}/{w}/rff"]["mmd"]["is_drift"] for w in ws)
        for form in forms:
            secs = [r["mmd"]["seconds"] for k, r in results.items() if k.endswith(f"/{form}")]
            entry[f"seconds_per_test_{form}"] = {"median": round(float(np.median(secs)), 3),
                                                 "min": round(min(secs), 3),
                                                 "max": round(max(secs), 3)}
        out["sizes"][str(n)] = entry
        print(f"mmd forms at n={n}: {json.dumps(entry)}", flush=True)
    return out


def replay_week(work: Path, config, scale: float) -> dict:
    from flowguard.ingest import read_day
    from flowguard.synth import WEEK_START, generate_week

    landing = work / "landing"
    generate_week(landing, scale=scale, min_per_class=30)
    days = {d: read_day(landing, date.fromordinal(WEEK_START.toordinal() + d)) for d in range(5)}
    days = {d: f[f["parse_error"] == ""].reset_index(drop=True) for d, f in days.items()}
    rng = np.random.default_rng(3)
    train = pd.concat([days[0], days[1], days[2]], ignore_index=True)
    order = rng.permutation(len(train))
    ref_rows = train.iloc[order[: 2 * config.reference_size]]
    held_out = set(train.iloc[order[: 2 * config.reference_size]]["flow_uid"])
    jobs = []
    for d in range(5):
        window = days[d][~days[d]["flow_uid"].isin(held_out)]
        prepared = prepare_inputs(ref_rows, window, work / f"day{d}", n=config.sample_size,
                                  seed=d, reference_size=config.reference_size)
        jobs.append(_job(f"day{d}", prepared, config, list(config.drift_detectors), seed=d))
    results = run_batch(jobs, work)
    names = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    out = {}
    for d in range(5):
        r = results[f"day{d}"]
        drift, reason = decide(r, config.policy, config.drift_detectors)
        out[names[d]] = {"drift": drift, "decision": reason, "window_rows": len(days[d])}
    first = next((k for k in ("Thu", "Fri") if out[k]["drift"]), None)
    # Mon-Wed are flagged too: a single day's class mix (Monday: benign only; Wednesday: a
    # third DoS) is not the pooled Mon-Wed mix of the reference. That is drift, not noise.
    return {"scale": scale, "reference": "Mon-Wed flows (pooled)", "days": out,
            "detection_day": first}


# ------------------------------------------------------------ issue 15: fixed references,
# calibrated null, novelty, Holm; real flows; Evidently and KS + Bonferroni beside them

EVIDENTLY_DRIVER = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
for line in open(sys.argv[1]):
    job = json.loads(line)
    ref, cur = pd.read_parquet(job["ref"]), pd.read_parquet(job["cur"])
    snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    share = next(m["value"] for m in snap.dict()["metrics"]
                 if m["metric_id"].startswith("DriftedColumnsCount"))
    print(json.dumps({"id": job["id"], "share": share["share"],
                      "is_drift": share["share"] >= 0.5}), flush=True)
"""

FIXED_SHIFTS = {k: SHIFTS[k] for k in ("new_class_1pct", "new_class_5pct", "byte_counters_x1.5")}


def evidently_python() -> Path:
    return PROJECT_ROOT / ".venv-evidently" / "bin" / "python"


def run_evidently(pairs: list[dict], work: Path) -> dict[str, dict] | None:
    """Evidently's DataDriftPreset (defaults: per-column tests, dataset drift when at least
    half the columns drift) on the same raw rows the detectors see, in its own venv
    (benchmarks/requirements-evidently.txt); ``None`` with a message when it is absent."""
    python = evidently_python()
    if not python.exists():
        print(f"Evidently column skipped: no {python} (build it: see "
              "benchmarks/requirements-evidently.txt)", flush=True)
        return None
    path = work / "evidently.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    done = subprocess.run([str(python), "-c", EVIDENTLY_DRIVER, str(path)], capture_output=True,
                          text=True, env=_env(), check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return {r["id"]: r for r in map(json.loads, done.stdout.splitlines()) if "id" in r}


def ks_bonferroni(ref_rows: pd.DataFrame, cur_rows: pd.DataFrame, p_val: float) -> bool:
    """Per-feature two-sample KS, Bonferroni over the features: drift if any survives."""
    from scipy.stats import ks_2samp

    from flowguard.schema import FEATURE_COLUMNS

    p = min(ks_2samp(ref_rows[c].to_numpy(float), cur_rows[c].to_numpy(float)).pvalue
            for c in FEATURE_COLUMNS)
    return bool(p * len(FEATURE_COLUMNS) < p_val)


def _timed(frame: pd.DataFrame, start: str, hours: float, rng: np.random.Generator
           ) -> pd.DataFrame:
    """Synthetic rows with times spread uniformly over ``hours`` from ``start`` and ids."""
    frame = frame.copy()
    frame["event_timestamp"] = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, hours, len(frame))), unit="h")
    frame["flow_uid"] = [f"w{i}" for i in range(len(frame))]
    frame["src_ip"] = [f"10.0.{i % 7}.{i % 251}" for i in range(len(frame))]
    return frame


class Cases:
    """Windows against references, each checked the new way and the old way, plus KS +
    Bonferroni and Evidently on the very rows the detectors see."""

    def __init__(self, work: Path, config) -> None:
        self.work, self.config, self.windows, self.jobs, self.pairs = work, config, [], [], []

    def add(self, case: str, ref_id: str, reference: pd.DataFrame, window: pd.DataFrame,
            seed: int, calibration: dict | None, config=None, window_seed: int | None = None
            ) -> None:
        from flowguard.monitoring import novelty_check, split_reference

        config = config or self.config
        wid = f"{case}/{ref_id}/{len(self.windows)}"
        folder = self.work / wid.replace("/", "_")
        if window_seed is not None:  # a fixed reference, another sample of the window
            window = window.sample(frac=1.0, random_state=window_seed)
        prepared = prepare_inputs(reference, window, folder, n=config.sample_size,
                                  seed=config.seed, reference_size=config.reference_size)
        _fit, ref_rows, _rest = split_reference(reference, config.seed, config.reference_size)
        cur_rows = window.sample(min(config.sample_size, len(window)), random_state=config.seed)
        from flowguard.schema import FEATURE_COLUMNS

        ref_rows[FEATURE_COLUMNS].to_parquet(folder / "ref.parquet")
        cur_rows[FEATURE_COLUMNS].to_parquet(folder / "cur.parquet")
        self.pairs.append({"id": wid, "ref": str(folder / "ref.parquet"),
                           "cur": str(folder / "cur.parquet")})
        self.jobs.append(_job(wid, prepared, config, ["mmd", "classifier"], config.seed))
        self.windows.append({"id": wid, "case": case, "ref": ref_id, "calibration": calibration,
                             "novelty": novelty_check(reference, window, config),
                             "ks": ks_bonferroni(ref_rows, cur_rows, config.p_value),
                             "p_val": config.p_value})

    def run(self, evidently: bool) -> list[dict]:
        from flowguard.calibration import apply_calibration

        results = run_batch(self.jobs, self.work)
        ev = run_evidently(self.pairs, self.work) if evidently else None
        out = []
        for w in self.windows:
            r = results[w["id"]]
            before, _ = decide(r, "all", ["mmd", "classifier"])
            cal = apply_calibration(r, w["calibration"], w["p_val"])
            votes = {**cal, "novelty": w["novelty"]}
            after, _ = decide(votes, "holm", ["mmd", "classifier", "novelty"], w["p_val"])
            out.append({"case": w["case"], "ref": w["ref"], "before_all": before,
                        "before_mmd": r["mmd"]["is_drift"],
                        "before_classifier": r["classifier"]["is_drift"],
                        "after_holm": after, "after_mmd": cal["mmd"]["p_value"] < w["p_val"],
                        "after_classifier": cal["classifier"]["p_value"] < w["p_val"],
                        "novelty": w["novelty"]["is_drift"], "ks_bonferroni": w["ks"],
                        "evidently": (ev or {}).get(w["id"], {}).get("is_drift"),
                        "p": {"mmd": cal["mmd"]["p_value"],
                              "classifier": cal["classifier"]["p_value"],
                              "novelty": w["novelty"]["p_value"]}})
        return out


COLUMNS = ("after_holm", "after_mmd", "after_classifier", "novelty", "before_all",
           "before_mmd", "before_classifier", "ks_bonferroni", "evidently")


def tabulate(rows: list[dict]) -> dict:
    """Per case and column: flagged / windows with a 95 % Wilson interval; per reference too."""
    out: dict = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        entry: dict = {"windows": len(mine)}
        for col in COLUMNS:
            flags = [r[col] for r in mine if r[col] is not None]
            if flags:
                k = int(sum(flags))
                entry[col] = {"flagged": k, "windows": len(flags),
                              "rate": round(k / len(flags), 4), "ci95": wilson(k, len(flags))}
        refs = list(dict.fromkeys(r["ref"] for r in mine))
        if len(refs) > 1:
            entry["per_reference"] = {}
            for col in ("after_holm", "after_mmd", "after_classifier", "novelty", "before_all",
                        "before_mmd", "before_classifier"):
                per = []
                for ref in refs:
                    flags = [r[col] for r in mine if r["ref"] == ref]
                    per.append([int(sum(flags)), len(flags)])
                worst = max(per, key=lambda kn: kn[0] / kn[1])
                entry["per_reference"][col] = {"counts": per, "worst": worst,
                                               "worst_ci95": wilson(*worst)}
        out[case] = entry
    return out


def fixed_references(work: Path, config, refs: int, null_windows: int, shift_windows: int,
                     evidently: bool, cache: Path | None = None, reference_rows: int = 12_000,
                     window_rows: int = 3000) -> dict:
    """Synthetic: ``refs`` fixed references (``reference_rows`` over 72 h, as a champion's
    saved sample; training saves 25 000), each calibrated once, then ``null_windows`` fresh
    no-drift days of ``window_rows`` flows and ``shift_windows`` days per shift against each,
    as the DAG runs: one reference, many days."""
    from flowguard.monitoring import calibrate

    cases = Cases(work, config)
    started, load = time.perf_counter(), _load()
    cal_seconds = []
    for i in range(refs):
        rng = np.random.default_rng([15, i])
        reference = _timed(_flows(reference_rows, rng), "2017-07-03", 72, rng)
        t = time.perf_counter()
        calibration = calibrate(reference, config, cache or work / "calibration")
        cal_seconds.append(round(time.perf_counter() - t, 1))
        for w in range(null_windows):
            cases.add("no drift", f"ref{i}", reference,
                      _timed(_flows(window_rows, rng), "2017-07-06", 24, rng), w, calibration)
        for name, (kind, params) in FIXED_SHIFTS.items():
            for w in range(shift_windows):
                window = apply_shift(_flows(window_rows, rng), kind, rng, **params)
                cases.add(name, f"ref{i}", reference,
                          _timed(window, "2017-07-06", 24, rng), w, calibration)
        print(f"fixed reference {i}: calibrated in {cal_seconds[-1]} s", flush=True)
    rows = cases.run(evidently)
    return {"references": refs, "reference_rows": reference_rows, "window_rows": window_rows,
            "sample_size": config.sample_size, "reference_size": config.reference_size,
            "calibration_seconds": cal_seconds, "cases": tabulate(rows),
            "seconds": round(time.perf_counter() - started, 1), "loadavg": [load, _load()],
            "data": "synthetic (generator profiles, fresh rows per window)"}


def real_flows(work: Path, config, windows: int, evidently: bool) -> dict:
    """Real CICIDS2017 BENIGN rows committed in data/real (352 rows, 16 minutes of one
    capture): (a) random splits, reference 240 rows, window the other 112; (b) the earliest
    240 rows (by time) as reference, the latest 112 as the window (one split exists: the
    ``windows`` repetitions resample the reference's x_ref/scaler split and the window's
    sample (the reference, its split and calibration fixed, as production runs), so they
    are not independent. The sizes fit the sample: 60 rows per side.
    No real attack rows are committed: real new-family windows are not measurable here."""
    from dataclasses import replace

    from flowguard.monitoring import calibrate
    from flowguard.realflows import load_real

    benign = load_real()
    benign = benign[benign["label"] == "BENIGN"].reset_index(drop=True)
    benign["flow_uid"] = [f"r{i}" for i in range(len(benign))]
    by_time = benign.sort_values(["event_timestamp", "source_line"]).reset_index(drop=True)
    n_ref = 240
    later = by_time["event_timestamp"].iloc[n_ref:]
    # blocks as long as the later window: production's window is a day, its blocks 24 h
    block = max((later.max() - later.min()).total_seconds() / 3600, 1 / 60)
    small = replace(config, sample_size=60, reference_size=60, calibration_block_hours=block)
    cases = Cases(work, small)
    started = time.perf_counter()
    earliest = by_time.iloc[:n_ref]
    fixed_calibration = calibrate(earliest, small)  # one reference, as production runs
    for w in range(windows):
        rng = np.random.default_rng([352, w])
        order = rng.permutation(len(benign))
        reference, window = benign.iloc[order[:n_ref]], benign.iloc[order[n_ref:]]
        cfg = replace(small, seed=w)
        cases.add("real benign, random split", f"split{w}", reference, window, w,
                  calibrate(reference, cfg), cfg)
        cases.add("real benign, later vs earlier", "earliest240", earliest,
                  by_time.iloc[n_ref:], w, fixed_calibration, small, window_seed=w)
    rows = cases.run(evidently)
    span = by_time["event_timestamp"]
    return {"rows": len(benign), "reference_rows": n_ref, "window_rows": len(benign) - n_ref,
            "sample_size": 60, "reference_size": 60, "calibration_block_hours": round(block, 4),
            "span": [str(span.min()), str(span.max())], "cases": tabulate(rows),
            "not_measurable": ["benign + 1 % / 5 % / 20 % real DDoS or PortScan: no real "
                               "attack rows are committed in data/real"],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small run (~1 minute on an idle 2-core machine)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "results"
                        / "drift.json")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: "
                        "timing,false_alarms,power,replay,fixed,real,forms")
    parser.add_argument("--only", default="", help="comma list of sections to run (the "
                        "others are skipped)")
    parser.add_argument("--forms-sizes", default="1000,5000,20000",
                        help="rows per side of the fast-vs-rff MMD section")
    parser.add_argument("--forms-null-windows", type=int, default=40)
    parser.add_argument("--forms-shift-windows", type=int, default=20)
    parser.add_argument("--fixed-refs", type=int, default=10)
    parser.add_argument("--fixed-null-windows", type=int, default=10)
    parser.add_argument("--fixed-shift-windows", type=int, default=2)
    parser.add_argument("--fixed-reference-rows", type=int, default=12_000,
                        help="rows of each fixed reference (training saves 25 000)")
    parser.add_argument("--fixed-window-rows", type=int, default=3000,
                        help="flows of each fixed-reference day")
    parser.add_argument("--sample-size", type=int, help="override monitoring.yaml's "
                        "sample_size (flows per side of the MMD and classifier tests)")
    parser.add_argument("--reference-size", type=int, help="override monitoring.yaml's "
                        "reference_size")
    parser.add_argument("--real-windows", type=int, default=10)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--calibration-cache", type=Path, help="keep the fixed references' "
                        "calibrations here (a rerun reads them back)")
    parser.add_argument("--fa-windows", type=int, help="no-drift windows (default 240; "
                        "quick 20)")
    parser.add_argument("--fa-alibi-windows", type=int, help="of which also run the previous "
                        "alibi ClassifierDrift detector (default 0; ~2.4 s CPU each)")
    parser.add_argument("--power-windows", type=int, help="windows per shift (default 40; "
                        "quick 4)")
    parser.add_argument("--power-alibi-windows", type=int, help="of which also run the "
                        "previous alibi ClassifierDrift detector (default 8; quick 0)")
    args = parser.parse_args()
    config = load_monitoring_config(PROJECT_ROOT / "config" / "monitoring.yaml")
    if args.sample_size or args.reference_size:
        from dataclasses import replace

        config = replace(config, sample_size=args.sample_size or config.sample_size,
                         reference_size=args.reference_size or config.reference_size)
    skip = set(filter(None, args.skip.split(",")))
    if args.only:
        skip = {"timing", "false_alarms", "power", "replay", "fixed", "real", "forms"} - set(
            args.only.split(","))
    result: dict = {"started": datetime.now(UTC).isoformat(), "quick": args.quick,
                    "config": config.as_dict(), "cpu_count": os.cpu_count(),
                    "loadavg_start": _load()}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        work = Path(tmp)
        if "timing" not in skip:
            result["timing"] = timing(work, [1000] if args.quick else [1000, 5000, 20000],
                                      config, args.quick)
        if "false_alarms" not in skip:
            result["false_alarms"] = false_alarms(
                work, config, args.fa_windows or (20 if args.quick else 240),
                args.fa_alibi_windows if args.fa_alibi_windows is not None else 0)
            print(json.dumps(result["false_alarms"]), flush=True)
        if "power" not in skip:
            result["power"] = power(
                work, config, args.power_windows or (4 if args.quick else 40),
                args.power_alibi_windows if args.power_alibi_windows is not None
                else (0 if args.quick else 8))
            print(json.dumps(result["power"]), flush=True)
        if "forms" not in skip:
            result["mmd_forms"] = mmd_forms(
                work, config, [int(v) for v in args.forms_sizes.split(",")],
                args.forms_null_windows, args.forms_shift_windows)
        if "fixed" not in skip:
            result["fixed_references"] = fixed_references(
                work, config, args.fixed_refs, args.fixed_null_windows,
                args.fixed_shift_windows, not args.no_evidently, args.calibration_cache,
                args.fixed_reference_rows, args.fixed_window_rows)
            print(json.dumps(result["fixed_references"]), flush=True)
        if "real" not in skip:
            result["real_flows"] = real_flows(work, config, args.real_windows,
                                              not args.no_evidently)
            print(json.dumps(result["real_flows"]), flush=True)
        if "replay" not in skip:
            result["replay_week"] = replay_week(work, config, 0.002 if args.quick else 0.005)
            print(json.dumps(result["replay_week"]), flush=True)
    result["loadavg_end"] = _load()
    result["finished"] = datetime.now(UTC).isoformat()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
