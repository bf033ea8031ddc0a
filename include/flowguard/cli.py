"""The flowguard command line: the demo, synthetic data, validation without Airflow, online
scoring, the registry's rollback, drift checks and backtests, and the Airflow and Feast CLIs
over the embedded profile's state."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

EPILOG = """settings come from the environment: FLOWGUARD_HOME (state, default ./var),
FLOWGUARD_LANDING_DIR, MLFLOW_TRACKING_URI, FLOWGUARD_AIRFLOW_PORT (8080),
FLOWGUARD_WORKER_LOG_PORT (8793), FLOWGUARD_TRIGGERER_LOG_PORT (8794), FLOWGUARD_MLFLOW_PORT
(5000), FLOWGUARD_AIRFLOW_URL / FLOWGUARD_MLFLOW_URL (links in alerts). `flowguard COMMAND
--help` explains a command. Exit codes: 0 ok, 1 the command's negative outcome (failed files,
drift), 2 bad input (a message names the file, line or field and the fix), 3 internal error (a
flowguard bug: the traceback is logged; a folder run still prints its report)."""


def _version() -> str:
    from flowguard import __version__

    return f"flowguard {__version__}"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit():
        raise SystemExit(f"flowguard: {name}={value!r} is not a whole number")
    return int(value)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse measures sub-command names one indent short, so a name longer than the
    others ("reproduce") would be put on a line of its own; measured where they are drawn."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            longest = max(len(name) for name in action.choices)
            self._action_max_length = max(self._action_max_length,
                                          longest + self._current_indent + 2 * self._indent_increment)


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its help text (``flowguard --help``)."""
    parser = argparse.ArgumentParser(
        prog="flowguard", description=__doc__, epilog=EPILOG, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the synthetic week through Airflow end to end",
                          description="Wipe $FLOWGUARD_HOME's state, generate the synthetic "
                          "week, start airflow standalone and drive ingest, train and monitor "
                          "through the REST API; prints a summary.")
    demo.add_argument("--scale", type=float,
                      default=float(os.environ.get("FLOWGUARD_DEMO_SCALE", 0.01)),
                      help="share of the published CICIDS2017 row counts (1.0 = 2.8 M rows; "
                           "default $FLOWGUARD_DEMO_SCALE or 0.01)")
    demo.add_argument("--port", type=int, default=_env_int("FLOWGUARD_AIRFLOW_PORT", 8080),
                      help="Airflow API/UI port (default $FLOWGUARD_AIRFLOW_PORT or 8080); the "
                           "log servers' ports are FLOWGUARD_WORKER_LOG_PORT and "
                           "FLOWGUARD_TRIGGERER_LOG_PORT")
    gen = sub.add_parser("generate", help="write a synthetic week (published layout) of "
                         "FLOWGUARD_DATASET (default CICIDS2017), built from real flows")
    gen.add_argument("out_dir", type=Path, help="folder for the eight published file names")
    gen.add_argument("--scale", type=float, default=0.01,
                     help="share of the published row counts (default 0.01, ~28 k flows)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument("--quirk-rate", type=float, default=0.0,
                     help="share of rows given the published files' defects (default 0)")
    gen.add_argument("--source", choices=("real", "parametric"), default="real",
                     help="real: classes with enough real rows drawn from them (data/real or "
                          "$FLOWGUARD_REAL_DIR; default); "
                          "parametric: every class from the generator's profiles")
    val = sub.add_parser("validate", help="ingest and validate a file or folder (CICIDS2017, "
                         "its improved release, CSE-CIC-IDS2018 or UNSW-NB15, any published "
                         "layout) without Airflow; prints row accounting, skipped files and "
                         "where the valid rows, the quarantine and the data docs went")
    val.add_argument("path", type=Path, help="a CSV file or a folder of them (sub-folders "
                     "included)")
    val.add_argument("--out", type=Path, default=None,
                     help="output folder (default: $FLOWGUARD_HOME/validated)")
    val.add_argument("--chunk-rows", type=int, default=200_000,
                     help="rows per chunk; peak memory follows it (default 200000)")
    val.add_argument("--json", action="store_true", help="print one JSON object")
    rb = sub.add_parser("rollback", help="point the champion alias back at the previous "
                        "champion, or at VERSION; idempotent")
    rb.add_argument("version", nargs="?", default=None,
                    help="model version to serve (default: the 'previous' alias); it must have "
                         "passed the promotion gate")
    rep = sub.add_parser(
        "reproduce", help="retrain a registered model version on its exact data (its DVC "
        "data version) and print the new metrics beside the registered ones",
        description="Checks the version's recorded DVC data version out into a scratch home, "
        "rebuilds its point-in-time training set through Feast (digest compared), refits with "
        "the run's parameters, rounds and seed, and evaluates on the same holdout. Exit 0: "
        "macro-F1 within 0.005 of the registered; 1: not reproduced; 2: cannot reproduce "
        "(no such version, no data version recorded, remote unreadable).")
    rep.add_argument("model", help="registered model name (the DAGs register FLOWGUARD_MODEL_NAME, default flow-classifier)")
    rep.add_argument("version", help="model version number")
    rep.add_argument("--workdir", type=Path, default=None,
                     help="empty folder to check the data out into (kept); default a temporary "
                          "folder, removed afterwards")
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    score = sub.add_parser("score", help="score flow records (JSON object or list) with the "
                           "champion and online host features; prints JSON",
                           description="Input: one flow record or a list, with the 77 "
                           "CICFlowMeter statistics (canonical names or published CICIDS2017 "
                           "headers), src_ip and optionally event_timestamp (ISO 8601). "
                           "Example: examples/flow.json.")
    score.add_argument("input", nargs="?", default="-",
                       help="JSON file, or - for stdin (default -)")
    srv = sub.add_parser("serve", help="serve the champion over HTTP (POST /score, "
                         "/score/batch; GET /health): reloads when the champion alias moves",
                         description="Loads the registry's champion once, polls the alias "
                         "every $FLOWGUARD_SERVE_POLL_SECONDS (10) and swaps the model when it "
                         "moves; host features from the profile's online store; scored flows "
                         "appended to $FLOWGUARD_HOME/lake/served (docs/serving.md).")
    srv.add_argument("--host", default=os.environ.get("FLOWGUARD_SERVE_HOST", "127.0.0.1"),
                     help="address to bind (default $FLOWGUARD_SERVE_HOST or 127.0.0.1)")
    srv.add_argument("--port", type=int, default=_env_int("FLOWGUARD_SERVE_PORT", 8000),
                     help="port (default $FLOWGUARD_SERVE_PORT or 8000)")
    srv.add_argument("--workers", type=int, default=_env_int("FLOWGUARD_SERVE_WORKERS", 1),
                     help="server processes, each with its own copy of the model (default 1)")
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
    ui.add_argument("--port", type=int, default=_env_int("FLOWGUARD_AIRFLOW_PORT", 8080),
                    help="API/UI port (default $FLOWGUARD_AIRFLOW_PORT or 8080)")
    bt = sub.add_parser("backtest", help="replay a week day by day under the static, "
                        "drift-triggered and always-retrain policies; writes JSON/CSV/PNG/HTML")
    bt.add_argument("--landing", type=Path, default=None,
                    help="landing folder of daily CSVs (default: generate the synthetic week)")
    bt.add_argument("--out", type=Path, default=Path("var/backtest"),
                    help="output folder (default var/backtest)")
    bt.add_argument("--scale", type=float, default=0.01,
                    help="synthetic week's share of the published counts (default 0.01)")
    bt.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    bt.add_argument("--policies", default="static,drift,always",
                    help="comma-separated policies to replay (default static,drift,always)")
    bt.add_argument("--warmup-days", type=int, default=2,
                    help="days the first model trains on (default 2)")
    bt.add_argument("--sample-size", type=int, default=1000,
                    help="window flows per drift test (default 1000)")
    bt.add_argument("--shift", action="append", default=[], metavar="KIND[:k=v,...]@DAY",
                    help="inject a controlled shift from DAY on, e.g. "
                         "byte_scale:factor=2@2017-07-05 or "
                         "new_class:label=PortScan,share=0.05@2017-07-05 (repeatable; kinds: "
                         "new_class, class_mix, benign_surge, byte_scale, remove_class)")
    bt.add_argument("--json", action="store_true", help="print the result as one JSON object")
    drift = sub.add_parser("drift", help="the monitoring DAG's drift check on a reference file "
                           "and a current file (canonical .parquet or a landing .csv); exit 0 "
                           "no drift, 1 drift, 2 bad input")
    drift.add_argument("reference", type=Path, help="reference flows (.parquet or .csv)")
    drift.add_argument("current", type=Path, help="current window's flows (.parquet or .csv)")
    drift.add_argument("--json", action="store_true", help="print the full result as JSON")
    drift.add_argument("--config", type=Path, help="monitoring config (default: "
                       "config/monitoring.yaml or $FLOWGUARD_MONITORING_CONFIG)")
    drift.add_argument("--day", type=_iso_day, help="capture day of landing CSVs (YYYY-MM-DD)")
    for key, kind, what in (
            ("sample_size", int, "window flows per test"),
            ("reference_size", int, "reference rows per test"),
            ("p_value", float, "significance of each detector"),
            ("n_permutations", int, "MMD permutation test size"),
            ("mmd_backend", str, "auto, fast, rff or alibi"),
            ("policy", str, "holm (one false-alarm budget), all (every voter flags) or any"),
            ("detectors", str, "comma-separated voters: mmd, classifier, novelty (prediction, "
             "performance and harm need the champion)"),
            ("seed", int, "random seed")):
        drift.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind,
                           help=f"{what} (overrides the config file's value)")
    return parser


def _iso_day(value: str):  # noqa: ANN202 - argparse type
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _online_scoring_refusal() -> str | None:
    """Why ``score`` / ``serve`` cannot run under this process's dataset profile, or None.

    Online scoring reads CICFlowMeter records and the CICIDS2017 host windows
    (flowguard.scoring); under another profile it would load that profile's champion and
    feed it the wrong features, so it is refused up front, naming the setting."""
    from flowguard.profiles import active_name

    name = active_name()
    if name == "cicids2017":
        return None
    return (f"online scoring (score, serve) reads CICFlowMeter records: it is built for the "
            f"cicids2017 profile only, not FLOWGUARD_DATASET={name}; unset FLOWGUARD_DATASET "
            "(or set it to cicids2017) to score CICIDS2017 flows")


def read_flow_records(source: str) -> tuple[list[dict], bool]:
    """The records of ``flowguard score``'s input, checked before any heavy import: a readable
    file (or stdin), JSON, an object or a list of objects, each with valid fields. Returns the
    records and whether the input was a list. Raises ``ValueError`` naming the problem."""
    from flowguard.scoring import InvalidFlow, canonical_flow, flow_time

    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"{source}: no such file (give a JSON file, or - for stdin; "
                                 "example: examples/flow.json)")
            text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                         f"offset {exc.start}); save the JSON as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"{source}: cannot be read ({exc.strerror or exc}); check the path "
                         "and its permissions") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno})") from None
    except RecursionError:
        raise ValueError(f"{source}: JSON nested too deeply (a flow record is one object of "
                         "fields, or a list of them)") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python allows
        raise ValueError(f"{source}: JSON value out of range ({str(exc)[:120]})") from None
    records = payload if isinstance(payload, list) else [payload]
    if not records or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{source}: expected a flow record (a JSON object) or a non-empty list "
                         "of them")
    for number, record in enumerate(records, 1):
        try:
            flow_time(canonical_flow(record))
        except InvalidFlow as exc:
            where = f" (record {number})" if isinstance(payload, list) else ""
            raise ValueError(f"{source}{where}: {exc}") from None
    return records, isinstance(payload, list)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except Exception as exc:  # noqa: BLE001 - exit 3 says "bug", never a bare traceback
        logging.getLogger("flowguard.cli").debug("internal error", exc_info=True)
        import traceback

        print(f"flowguard {args.command}: internal error ({type(exc).__name__}: "
              f"{str(exc)[:300]}); this is a flowguard bug, please report it with the "
              f"traceback below\n{traceback.format_exc()}", file=sys.stderr)
        return 3


def _run(args: argparse.Namespace) -> int:
    """One command (``main`` turns a crash into exit code 3)."""

    if args.command == "demo":
        from flowguard.demo import Demo

        logging.getLogger().setLevel(logging.WARNING)
        return Demo(port=args.port, scale=args.scale).run()
    if args.command == "generate":
        from flowguard.profiles import active

        week = active().synthetic_week()  # FLOWGUARD_DATASET's week (UNSW-NB15: raw parts)
        options = {"source": args.source} if week.__name__ == "flowguard.synth" else {}
        for path in week.generate_week(args.out_dir, scale=args.scale, seed=args.seed,
                                       quirk_rate=args.quirk_rate, **options):
            print(path)
        return 0
    if args.command == "validate":
        if not args.path.exists():
            try:
                args.path.stat()
                error = f"{args.path}: no such file or folder"
            except FileNotFoundError:
                error = (f"{args.path}: dangling symbolic link to {os.readlink(args.path)}; fix "
                         "or remove it") if args.path.is_symlink() else (
                         f"{args.path}: no such file or folder")
            except OSError as exc:
                from flowguard.ingest import unreadable

                error = unreadable(args.path, exc)
            print(json.dumps({"error": error}) if args.json else f"flowguard validate: {error}",
                  file=sys.stderr)
            return 2
        from flowguard.logs import quiet_library_logs

        quiet_library_logs()
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
        from flowguard.datadocs import make_offline

        make_offline(Path(report["data_docs"]).parent)
        if args.json:
            print(json.dumps(report))
        else:
            for f in report["files"]:
                if f["error"]:
                    print(f"FAILED {f['file']}\n  rows in {f['rows_in']}, all refused (not "
                          f"read)\n  {f['error']}")
                    continue
                print(f"{f['file']} [{f['layout']}]\n  rows in {f['rows_in']} = valid "
                      f"{f['rows_valid']} + quarantined {f['rows_quarantined']}\n"
                      f"  valid: {f['valid_path']}\n  quarantine: {f['quarantine_path']}")
            for s in report["skipped"]:
                print(f"SKIPPED {s['file']}\n  {s['reason']}")
            print(f"total: rows in {report['rows_in']} = valid {report['rows_valid']} + "
                  f"quarantined {report['rows_quarantined']} + refused {report['rows_refused']}; "
                  f"{report['files_ok']} file(s) ok, {report['files_failed']} failed, "
                  f"{report['files_skipped']} skipped\ndata docs: {report['data_docs']}")
        return 3 if report["files_crashed"] else 1 if report["files_failed"] else 0
    if args.command == "rollback":
        from flowguard.pipeline import rollback_champion

        try:
            print(json.dumps(rollback_champion(args.version)))
        except LookupError as exc:
            print(json.dumps({"error": str(exc)}), file=sys.stderr)
            return 2
        return 0
    if args.command == "reproduce":
        from flowguard.dataversion import DataVersionError
        from flowguard.logs import quiet_library_logs
        from flowguard.reproduce import ReproduceError, render, reproduce

        quiet_library_logs()
        logging.getLogger().setLevel(logging.WARNING)
        try:  # what DVC and Feast print goes to stderr: stdout carries the result only
            with contextlib.redirect_stdout(sys.stderr):
                result = reproduce(args.model, args.version, args.workdir)
        except (ReproduceError, DataVersionError) as exc:
            print(json.dumps({"error": str(exc)}) if args.json
                  else f"flowguard reproduce: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2, default=str) if args.json else render(result))
        return 0 if result["reproduced"] else 1
    if args.command in ("score", "serve") and (refusal := _online_scoring_refusal()):
        print(json.dumps({"error": refusal}) if args.command == "score"
              else f"flowguard serve: {refusal}", file=sys.stderr)
        return 2
    if args.command == "score":
        logging.getLogger().setLevel(logging.WARNING)
        try:  # the input first: a bad record fails in a second, not after MLflow and Feast
            records, many = read_flow_records(args.input)
        except ValueError as exc:
            print(json.dumps({"error": str(exc), "input": args.input}), file=sys.stderr)
            return 2
        from flowguard.pipeline import score_records
        from flowguard.scoring import InvalidFlow

        try:
            results = score_records(records)
        except (InvalidFlow, LookupError) as exc:
            print(json.dumps({"error": str(exc), "input": args.input}), file=sys.stderr)
            return 2
        print(json.dumps(results if many else results[0], indent=2))
        return 0
    if args.command == "serve":
        from flowguard.serve import serve

        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("flowguard").setLevel(logging.INFO)  # which version serves, reloads
        serve(args.host, args.port, args.workers)
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
        if args.landing is not None and not args.landing.is_dir():
            print(f"flowguard backtest: --landing {args.landing}: no such folder", file=sys.stderr)
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

        from pyarrow.lib import ArrowException

        from flowguard.config import get_settings
        from flowguard.ingest import LandingError, unreadable
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
                                     settings.drift_python, Path(work), day=args.day,
                                     cache_dir=settings.work_dir / "calibration")
        except (ConfigError, DriftInputError, LandingError, OSError, ArrowException) as exc:
            if isinstance(exc, ArrowException):
                error = (f"{args.reference} or {args.current}: not a readable parquet file "
                         f"({str(exc)[:200]}); give canonical .parquet or a landing .csv")
            elif isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
                error = unreadable(Path(exc.filename or args.current), exc)
            else:
                error = str(exc)
            print(json.dumps({"error": error}), file=sys.stderr)
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
        from flowguard.airflow_env import (
            PortInUse,
            airflow_ports,
            airflow_process_env,
            check_ports_free,
        )
        from flowguard.config import get_settings

        try:
            check_ports_free(airflow_ports(args.port))
        except (PortInUse, ValueError) as exc:
            print(f"flowguard airflow: {exc}", file=sys.stderr)
            return 2
        env = airflow_process_env(get_settings().home, args.port)
        airflow = str(Path(sys.executable).parent / "airflow")
        os.execve(airflow, [airflow, "standalone"], env)
    return 2


if __name__ == "__main__":
    sys.exit(main())
