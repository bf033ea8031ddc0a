"""UNSW-NB15 on real rows: the UNSW profile's model scored on real testing-set rows it never saw.

The only real UNSW-NB15 rows here are the 222 committed testing-set rows (``data/real/``);
:func:`flowguard.realflows.split_rows` holds 35 % of each class out (``eval``, 76 rows: Normal
33, Exploits 20, DoS 12, Reconnaissance 6, Fuzzers 5). Two models of the UNSW profile's
features and training code (:func:`flowguard.training.fit_model`, default parameters, host
features unknown since set rows have no addresses), each scored on the eval rows:

1. trained on the synthetic UNSW-NB15 week (``flowguard.synth_unsw``, built from the pool rows);
2. the floor, in the same run: trained on the pool rows themselves (no synthesis).

This is NOT the official training/testing split (175,341 / 82,332 rows): those files could
not be obtained here (README, "UNSW-NB15 figures"). With 76 eval rows every per-class figure
rests on 5-33 flows, and the pool and eval rows come from the same three blocks of one file:
read the numbers as a smoke test of the path, not as a result comparable to publications.

    FLOWGUARD_DATASET=unsw_nb15 .venv/bin/python benchmarks/bench_unsw_real.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "include"))


def _features(frame, profile):  # noqa: ANN001, ANN202 - a script's helper
    frame = profile.encode(frame.copy())
    for name in profile.host_features:
        frame[name] = np.nan
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="fits per model (median quoted)")
    parser.add_argument("--scale", type=float, default=0.01)
    args = parser.parse_args()
    os.environ["FLOWGUARD_DATASET"] = "unsw_nb15"
    import pandas as pd

    from flowguard.evaluation import evaluate
    from flowguard.ingest import read_landing_file
    from flowguard.profiles import active
    from flowguard.synth_unsw import generate_week, load_real_unsw
    from flowguard.training import fit_model, predict_labels, time_aware_split

    profile = active()
    real = load_real_unsw()
    pool, held = real[real["real_split"] == "pool"], real[real["real_split"] == "eval"]
    with tempfile.TemporaryDirectory() as tmp:
        files = generate_week(Path(tmp), scale=args.scale)
        week = pd.concat([read_landing_file(f) for f in files], ignore_index=True)
    week = week[(week["parse_error"] == "") & week["label"].notna()]
    sources = {"synthetic week": _features(week, profile), "real pool rows": _features(pool,
                                                                                     profile)}
    evaluation = _features(held, profile)
    out: dict = {"eval_rows": held["label"].value_counts().to_dict(), "models": {}}
    for name, frame in sources.items():
        runs = []
        for seed in range(args.seeds):
            if "event_timestamp" in frame and frame["event_timestamp"].notna().all():
                train, valid, _ = time_aware_split(frame, valid=0.1, test=0.0)
            else:
                shuffled = frame.sample(frac=1.0, random_state=seed)
                cut = int(len(shuffled) * 0.9)
                train, valid = shuffled.iloc[:cut], shuffled.iloc[cut:]
            classes = sorted(frame["label"].unique())
            valid = valid[valid["label"].isin(set(train["label"]))]
            model = fit_model(train, valid, classes, seed=seed, host_dropout=0.0)
            runs.append(evaluate(evaluation["label"].to_numpy(),
                                 predict_labels(model, classes, evaluation)))
        keys = sorted({k for r in runs for k in r if k.startswith(("f1.", "macro_f1"))})
        out["models"][name] = {"train_rows": len(frame),
                               "median": {k: float(np.median([r.get(k, 0.0) for r in runs]))
                                          for k in keys},
                               "range_macro_f1": [min(r["macro_f1"] for r in runs),
                                                  max(r["macro_f1"] for r in runs)]}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
