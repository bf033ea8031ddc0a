"""The ``flowguard`` command line: demo, synthetic data, registry rollback."""

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
    sub.add_parser("rollback", help="point the champion alias back at the previous champion")
    score = sub.add_parser("score", help="score flow records (JSON object or list) with the "
                           "champion and online host features; prints JSON")
    score.add_argument("input", nargs="?", default="-", help="JSON file, or - for stdin")
    ui = sub.add_parser("airflow", help="serve Airflow (standalone) over the embedded profile's "
                        "state, e.g. what the demo left behind")
    ui.add_argument("--port", type=int, default=int(os.environ.get("FLOWGUARD_AIRFLOW_PORT", 8080)))
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
    if args.command == "rollback":
        from flowguard.pipeline import rollback_champion

        try:
            print(json.dumps({"champion": rollback_champion()}))
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
    if args.command == "airflow":
        from flowguard.airflow_env import airflow_process_env
        from flowguard.config import get_settings

        env = airflow_process_env(get_settings().home, args.port)
        airflow = str(Path(sys.executable).parent / "airflow")
        os.execve(airflow, [airflow, "standalone"], env)
    return 2


if __name__ == "__main__":
    sys.exit(main())
