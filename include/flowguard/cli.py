"""The ``flowguard`` command line: demo, synthetic data, validation, registry rollback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the synthetic week through Airflow end to end")
    demo.add_argument("--scale", type=float, default=float(os.environ.get("FLOWGUARD_DEMO_SCALE", 0.01)),
                      help="share of the published CICIDS2017 row counts (1.0 = 2.8 M rows)")
    demo.add_argument("--port", type=int, default=int(os.environ.get("FLOWGUARD_AIRFLOW_PORT", 8080)))
    gen = sub.add_parser("generate", help="write a synthetic CICIDS2017 week (published layout)")
    gen.add_argument("out_dir", type=Path)
    gen.add_argument("--scale", type=float, default=0.01)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--quirk-rate", type=float, default=0.0)
    val = sub.add_parser("validate", help="ingest and validate a file or folder (CICIDS2017 or "
                         "UNSW-NB15, any published layout) without Airflow; prints row accounting "
                         "and where the valid rows, the quarantine and the data docs went")
    val.add_argument("path", type=Path, help="a CSV file or a folder of them")
    val.add_argument("--out", type=Path, default=None,
                     help="output folder (default: $FLOWGUARD_HOME/validated)")
    val.add_argument("--chunk-rows", type=int, default=200_000,
                     help="rows per chunk; peak memory follows it")
    val.add_argument("--json", action="store_true", help="print one JSON object")
    rb = sub.add_parser("rollback", help="point the champion alias back at the previous "
                        "champion, or at VERSION; idempotent")
    rb.add_argument("version", nargs="?", default=None,
                    help="model version to serve (default: the 'previous' alias); it must have "
                         "passed the promotion gate")
    score = sub.add_parser("score", help="score flow records (JSON object or list) with the "
                           "champion and online host features; prints JSON")
    score.add_argument("input", nargs="?", default="-", help="JSON file, or - for stdin")
    feast = sub.add_parser(
        "feast", help="the feast CLI on this profile's feature repo and stores (what `make "
        "feast-apply` runs): FLOWGUARD_HOME resolved, as the DAGs spell it",
        description="Runs `feast ARGS...` from the feature repo with FLOWGUARD_HOME set to its "
        "resolved path (Feast compares store paths as text; another spelling of the same folder "
        "would make `feast apply` drop the online store's tables). `apply` skips source "
        "validation, as the DAG's apply does: Feast cannot validate the sources' glob paths.")
    feast.add_argument("feast_args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="arguments of the feast CLI, e.g. apply, feature-views list, "
                            "materialize-incremental 2017-07-08T00:00:00")
    ui = sub.add_parser("airflow", help="serve Airflow (standalone) over the embedded profile's "
                        "state, e.g. what the demo left behind")
    ui.add_argument("--port", type=int, default=int(os.environ.get("FLOWGUARD_AIRFLOW_PORT", 8080)))
    bt = sub.add_parser("backtest", help="replay a week day by day under the static, "
                        "drift-triggered and always-retrain policies; writes JSON/CSV/PNG/HTML")
    bt.add_argument("--landing", type=Path, default=None,
                    help="landing folder of daily CSVs (default: generate the synthetic week)")
    bt.add_argument("--out", type=Path, default=Path("var/backtest"))
    bt.add_argument("--scale", type=float, default=0.01)
    bt.add_argument("--seed", type=int, default=7)
    bt.add_argument("--policies", default="static,drift,always")
    bt.add_argument("--warmup-days", type=int, default=2)
    bt.add_argument("--sample-size", type=int, default=1000)
    bt.add_argument("--shift", action="append", default=[], metavar="KIND[:k=v,...]@DAY",
                    help="inject a controlled shift from DAY on, e.g. "
                         "byte_scale:factor=2@2017-07-05 or "
                         "new_class:label=PortScan,share=0.05@2017-07-05 (repeatable; kinds: "
                         "new_class, class_mix, benign_surge, byte_scale, remove_class)")
    bt.add_argument("--json", action="store_true", help="print the result as one JSON object")
    drift = sub.add_parser("drift", help="the monitoring DAG's drift check on a reference file "
                           "and a current file (canonical .parquet or a landing .csv); exit 0 "
                           "no drift, 1 drift, 2 bad input")
    drift.add_argument("reference", type=Path)
    drift.add_argument("current", type=Path)
    drift.add_argument("--json", action="store_true", help="print the full result as JSON")
    drift.add_argument("--config", type=Path, help="monitoring config (default: "
                       "config/monitoring.yaml or $FLOWGUARD_MONITORING_CONFIG)")
    drift.add_argument("--day", type=lambda v: __import__("datetime").date.fromisoformat(v),
                       help="capture day of landing CSVs (YYYY-MM-DD)")
    for key, kind in (("sample_size", int), ("reference_size", int), ("p_value", float),
                      ("n_permutations", int), ("mmd_backend", str), ("policy", str),
                      ("detectors", str), ("seed", int)):
        drift.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind,
                           help="overrides the config file's value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "demo":
        from flowguard.demo import Demo

        logging.getLogger().setLevel(logging.WARNING)
        return Demo(port=args.port, scale=args.scale).run()
    if args.command == "generate":
        from flowguard.synth import generate_week

        for path in generate_week(args.out_dir, scale=args.scale, seed=args.seed,
                                  quirk_rate=args.quirk_rate):
            print(path)
        return 0
    if args.command == "validate":
        from flowguard.batch import validate_path
        from flowguard.config import get_settings
        from flowguard.ingest import LandingError

        if args.json:
            logging.getLogger().setLevel(logging.WARNING)
        settings = get_settings()
        try:
            report = validate_path(args.path, args.out or settings.home / "validated",
                                   settings.gx_dir, chunk_rows=args.chunk_rows)
        except LandingError as exc:
            print(json.dumps({"error": str(exc)}) if args.json else f"error: {exc}",
                  file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(report))
        else:
            for f in report["files"]:
                if f["error"]:
                    print(f"FAILED {f['file']}\n  {f['error']}")
                    continue
                print(f"{f['file']} [{f['layout']}]\n  rows in {f['rows_in']} = valid "
                      f"{f['rows_valid']} + quarantined {f['rows_quarantined']}\n"
                      f"  valid: {f['valid_path']}\n  quarantine: {f['quarantine_path']}")
            print(f"total: rows in {report['rows_in']} = valid {report['rows_valid']} + "
                  f"quarantined {report['rows_quarantined']}; {report['files_ok']} file(s) ok, "
                  f"{report['files_failed']} failed\ndata docs: {report['data_docs']}")
        return 1 if report["files_failed"] else 0
    if args.command == "rollback":
        from flowguard.pipeline import rollback_champion

        try:
            print(json.dumps(rollback_champion(args.version)))
        except LookupError as exc:
            print(json.dumps({"error": str(exc)}), file=sys.stderr)
            return 2
        return 0
    if args.command == "score":
        from flowguard.pipeline import score_records
        from flowguard.scoring import InvalidFlow

        logging.getLogger().setLevel(logging.WARNING)
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
        try:
            payload = json.loads(text)
            records = payload if isinstance(payload, list) else [payload]
            results = score_records(records)
        except (json.JSONDecodeError, InvalidFlow, LookupError) as exc:
            print(json.dumps({"error": str(exc), "input": args.input}), file=sys.stderr)
            return 2
        print(json.dumps(results if isinstance(payload, list) else results[0], indent=2))
        return 0
    if args.command == "backtest":
        from flowguard.backtest import ShiftSpec, run_backtest
        from flowguard.shifts import ShiftError

        logging.getLogger().setLevel(logging.WARNING)
        try:
            for spec in args.shift:
                ShiftSpec.parse(spec)
        except ShiftError as exc:
            print(f"flowguard backtest: {exc}", file=sys.stderr)
            return 2
        result = run_backtest(args.landing, args.out, scale=args.scale, seed=args.seed,
                              policies=tuple(args.policies.split(",")),
                              warmup_days=args.warmup_days, sample_size=args.sample_size,
                              shifts=args.shift)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for policy, values in result["summary"].items():
                print(policy, " ".join(f"{k}={v}" for k, v in values.items()))
            print("report:", result["paths"]["html"])
        return 0
    if args.command == "drift":
        import tempfile

        from flowguard.config import get_settings
        from flowguard.monitoring import (
            ConfigError,
            DriftInputError,
            check_files,
            load_monitoring_config,
        )

        logging.getLogger().setLevel(logging.WARNING)
        settings = get_settings()
        keys = ("sample_size", "reference_size", "p_value", "n_permutations", "mmd_backend",
                "policy", "detectors", "seed")
        overrides = {k: getattr(args, k) for k in keys}
        if overrides["detectors"]:
            overrides["detectors"] = overrides["detectors"].split(",")
        try:
            config = load_monitoring_config(args.config or settings.monitoring_config, overrides)
            with tempfile.TemporaryDirectory(prefix="flowguard-drift-") as work:
                result = check_files(args.reference, args.current, config,
                                     settings.drift_python, Path(work), day=args.day)
        except (ConfigError, DriftInputError, FileNotFoundError) as exc:
            print(json.dumps({"error": str(exc)}), file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{'DRIFT' if result['drift'] else 'no drift'}: {result['decision']}")
            print(f"reference {result['n_ref']} of {result['rows']['reference']} rows, current "
                  f"{result['n_cur']} of {result['rows']['current']} rows "
                  f"({result['excluded']['reference']['rows']} + "
                  f"{result['excluded']['current']['rows']} rows left out); "
                  f"{result['seconds']} s")
            for name, det in result["detectors"].items():
                print(f"  {name:<11} p={det['p_value']:.4g}  "
                      f"{'drift' if det['is_drift'] else 'ok'}  ({det['seconds']} s)")
            print("top drifted features (KS, Bonferroni-adjusted p):")
            for f in result["top_features"]:
                print(f"  {f['feature']:<22} KS={f['ks']:.3f}  p={f['p_adjusted']:.3g}")
        return 1 if result["drift"] else 0
    if args.command == "feast":
        from flowguard.config import get_settings

        settings = get_settings()
        feast_args = list(args.feast_args) or ["--help"]
        if feast_args[0] == "apply" and "--skip-source-validation" not in feast_args:
            feast_args.append("--skip-source-validation")
        (settings.home / "feast").mkdir(parents=True, exist_ok=True)
        os.chdir(settings.feature_repo)
        feast_bin = str(Path(sys.executable).parent / "feast")
        os.execve(feast_bin, [feast_bin, *feast_args],
                  {**os.environ, "FLOWGUARD_HOME": str(settings.home)})
    if args.command == "airflow":
        from flowguard.airflow_env import airflow_process_env
        from flowguard.config import get_settings

        env = airflow_process_env(get_settings().home, args.port)
        airflow = str(Path(sys.executable).parent / "airflow")
        os.execve(airflow, [airflow, "standalone"], env)
    return 2


if __name__ == "__main__":
    sys.exit(main())
