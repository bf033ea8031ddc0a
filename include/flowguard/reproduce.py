"""Retrain a registered model version on its exact data: ``flowguard reproduce NAME VERSION``.

A training run records its data version (:mod:`flowguard.dataversion`, ``lineage.data_version``),
its training days and training-set digest, the frozen holdout it kept out, the chosen
parameters, the early-stopped round count and the seed. Reproducing it:

1. check that data version out of its DVC remote into a scratch home (never the live one);
2. ``feast apply`` there (embedded Feast profile: SQLite registry and online store in the
   scratch home, so a production registry is never touched) and rebuild the point-in-time
   training set for the same days through the same feature service; its digest is compared
   with the registered one;
3. choose the rows as the run did (:func:`flowguard.training.prepare_splits`), fit once with
   the run's parameters, rounds and seed (:func:`flowguard.training.final_fit`; the search is
   not repeated: its trial count depends on the machine's speed within the time budget) and
   evaluate on the same holdout.

The registered and the new metrics are returned side by side; ``reproduced`` is true when
the macro-F1 differs by at most :data:`TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 0.005
METRICS = ("macro_f1", "accuracy", "log_loss")


class ReproduceError(RuntimeError):
    """The version cannot be reproduced; the message says why and what to do."""


def _run_record(client: Any, model_name: str, version: str) -> dict[str, Any]:
    import mlflow

    try:
        model_version = client.get_model_version(model_name, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise ReproduceError(f"no registered version {model_name} v{version} in this tracking "
                             "store (flowguard rollback lists the versions)") from exc
    run = client.get_run(model_version.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            lineage = json.loads(Path(client.download_artifacts(
                run.info.run_id, "lineage.json", tmp)).read_text())
        except (OSError, mlflow.exceptions.MlflowException, json.JSONDecodeError) as exc:
            raise ReproduceError(f"run {run.info.run_id} of {model_name} v{version} has no "
                                 "readable lineage.json") from exc
    version_info = lineage.get("data_version") or {}
    if not version_info.get("outs"):
        why = version_info.get("skipped") or "it was trained before data versioning existed"
        raise ReproduceError(f"{model_name} v{version} has no recorded data version ({why}): "
                             "only models trained with DVC available (FLOWGUARD_DVC=auto or "
                             "on) can be reproduced")
    if not lineage.get("training_days"):
        raise ReproduceError(f"{model_name} v{version}: lineage names no training days")
    return {"run": run, "lineage": lineage}


def _params(run: Any) -> tuple[dict[str, Any], int, int, dict[str, Any]]:
    from flowguard.training import DEFAULT_PARAMS

    logged = run.data.params
    missing = [k for k in (*DEFAULT_PARAMS, "seed", "max_class_rows", "host_dropout")
               if k not in logged]
    if missing or "best_iteration" not in run.data.metrics:
        raise ReproduceError(f"run {run.info.run_id} lacks {missing or ['best_iteration']}: "
                             "not a flowguard training run")
    params = {k: type(v)(float(logged[k])) if isinstance(v, int) else type(v)(logged[k])
              for k, v in DEFAULT_PARAMS.items()}
    tuning = {"max_class_rows": int(logged["max_class_rows"]),
              "host_dropout": float(logged["host_dropout"])}
    return params, int(logged["seed"]), int(run.data.metrics["best_iteration"]), tuning


def reproduce(model_name: str, version: str, workdir: Path | None = None,
              keep: bool = False) -> dict[str, Any]:
    """Check out the version's data, rebuild its training set, refit, compare the metrics."""
    from flowguard.config import environment, get_settings
    from flowguard.dataversion import checkout
    from flowguard.evaluation import evaluate
    from flowguard.features import (
        apply_definitions,
        entity_rows,
        get_store,
        write_training_set,
    )
    from flowguard.pipeline import _mlflow
    from flowguard.registry import HOLDOUT_ARTIFACT, load_run_frame
    from flowguard.training import (
        TuningConfig,
        final_fit,
        predict_proba,
        prepare_splits,
        read_training_set,
    )

    settings = get_settings()
    client = _mlflow(settings)  # tracking and registry both on this home's store
    record = _run_record(client, model_name, version)
    run, lineage = record["run"], record["lineage"]
    params, seed, rounds, tuning = _params(run)
    frozen = lineage.get("frozen_holdout_run")
    exclude = load_run_frame(client, frozen, HOLDOUT_ARTIFACT)["flow_uid"] if frozen else None

    scratch = Path(workdir or tempfile.mkdtemp(prefix="flowguard-reproduce-")).resolve()
    if scratch == settings.home or settings.home.is_relative_to(scratch):
        raise ReproduceError(f"{scratch} holds the live FLOWGUARD_HOME: use a scratch folder")
    if scratch.exists() and any(scratch.iterdir()):
        raise ReproduceError(f"{scratch} is not empty: reproduce checks out into an empty folder")
    try:
        from datetime import date

        checkout(lineage["data_version"], scratch)
        days = [date.fromisoformat(d) for d in str(lineage["training_days"]).split(",")]
        # Feast prints what it applies: to stderr, so --json prints one JSON object
        # the embedded Feast profile in the scratch home: a production registry is never touched
        # the run's dataset profile (a run before profiles existed is CICIDS2017's)
        dataset = str(lineage.get("dataset") or settings.dataset)
        with environment(FLOWGUARD_HOME=str(scratch), FLOWGUARD_FEAST_YAML="feature_store.yaml",
                         FLOWGUARD_DATASET=dataset), \
                contextlib.redirect_stdout(sys.stderr):
            lake = get_settings().lake_dir
            apply_definitions(settings.feature_repo, scratch)
            # the training task's own path: the same file and digest, chunk by chunk
            path = scratch / "work" / "reproduce" / "training_set.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            store = get_store(settings.feature_repo, scratch)
            written = write_training_set(store, entity_rows(lake / "flows", days), None, path,
                                         settings.training_chunk_rows)
        digest, rows = written["digest"], written["rows"]
        # read back the way a training run reads its set (model columns, float32)
        with environment(FLOWGUARD_DATASET=dataset):
            splits = prepare_splits(read_training_set(path), exclude,
                                    bool(lineage.get("train_on_attempted")),
                                    f"reproduced training set of {model_name} v{version}")
            classes = sorted(splits.frame["label"].unique())
            np.random.seed(seed)
            model, _, _ = final_fit(splits.train, splits.valid, classes, params,
                                    TuningConfig(**tuning), seed, rounds=rounds)
        proba = predict_proba(model, splits.test)
        metrics = evaluate(splits.test["label"].to_numpy(), np.asarray(classes)[proba.argmax(1)],
                           classes, proba)
    finally:
        if not keep and workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    registered = run.data.metrics
    compared = {k: {"registered": registered.get(k), "reproduced": metrics.get(k),
                    "difference": (None if registered.get(k) is None or metrics.get(k) is None
                                   else metrics[k] - registered[k])} for k in METRICS}
    f1_gap = compared["macro_f1"]["difference"]
    return {"model": model_name, "version": str(version), "run_id": run.info.run_id,
            "data_version": lineage["data_version"]["outs"],
            "training_days": lineage["training_days"], "seed": seed, "rounds": rounds,
            "params": params,
            "training_set": {"rows": rows, "registered_digest":
                             lineage.get("training_set_digest"), "reproduced_digest": digest,
                             "identical": digest == lineage.get("training_set_digest")},
            "holdout_rows": len(splits.test), "metrics": compared,
            "reproduced": f1_gap is not None and abs(f1_gap) <= TOLERANCE,
            "tolerance": TOLERANCE, "home": str(scratch) if (keep or workdir) else None}


def render(result: dict[str, Any]) -> str:
    """The comparison as a person reads it."""
    lines = [f"{result['model']} v{result['version']} (run {result['run_id']}), trained on "
             f"{result['training_days']}",
             "data version: " + ", ".join(f"{k} {v}" for k, v in result["data_version"].items()),
             f"training set: {result['training_set']['rows']} rows, digest "
             f"{result['training_set']['reproduced_digest']} "
             + ("(identical to the registered run's)" if result["training_set"]["identical"]
                else f"(registered {result['training_set']['registered_digest']}: DIFFERENT)"),
             f"{'metric':<10} {'registered':>11} {'reproduced':>11} {'difference':>11}"]
    for name, row in result["metrics"].items():
        cells = [f"{row[k]:>11.4f}" if row[k] is not None else f"{'-':>11}"
                 for k in ("registered", "reproduced", "difference")]
        lines.append(f"{name:<10} {' '.join(cells)}")
    lines.append(f"reproduced: macro-F1 within {result['tolerance']}" if result["reproduced"]
                 else f"NOT reproduced: macro-F1 differs by more than {result['tolerance']}")
    if result.get("home"):
        lines.append(f"scratch home kept: {result['home']}")
    return "\n".join(lines)
