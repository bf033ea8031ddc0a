"""Train the XGBoost flow classifier, evaluate it by macro-F1 and log everything to MLflow.

Split: per class, flows ordered by time; the earliest 70 % train, the next 10 % drive early
stopping, the newest 20 % are the evaluation holdout. Ordering within each class keeps
future flows of a class out of its training data while every class that has enough rows
still appears in each split (attacks in CICIDS2017 happen in short windows, so a single
global cut in time would leave whole classes out of training or out of evaluation).
Imbalance: sample weights ~ 1/sqrt(class frequency), normalised to mean 1, so rare attacks
count without letting 40 Heartbleed flows dominate a 500 k benign day.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowguard.evaluation import evaluate
from flowguard.schema import MODEL_FEATURES

if TYPE_CHECKING:
    from xgboost import XGBClassifier

log = logging.getLogger(__name__)

EXPERIMENT = "flowguard-flow-classifier"
REFERENCE_ROWS = 2000  # saved with the model: half fits drift preprocessing, half is x_ref
PIP_REQUIREMENTS = ["xgboost-cpu==3.2.0", "scikit-learn", "pandas", "numpy"]


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    classes: list[str]


def time_aware_split(frame: pd.DataFrame, valid: float = 0.1, test: float = 0.2,
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split per class in time order: oldest -> train, then early-stopping, newest -> test."""
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "valid": [], "test": []}
    for _, group in frame.sort_values(["event_timestamp", "flow_uid"]).groupby("label", sort=True):
        n = len(group)
        n_test = int(round(n * test)) if n >= 5 else 0
        n_valid = int(round(n * valid)) if n >= 10 else 0
        cut_train = n - n_test - n_valid
        parts["train"].append(group.iloc[:cut_train])
        parts["valid"].append(group.iloc[cut_train:cut_train + n_valid])
        parts["test"].append(group.iloc[cut_train + n_valid:])
    return tuple(pd.concat(parts[k], ignore_index=True) for k in ("train", "valid", "test"))


def class_weights(labels: pd.Series) -> np.ndarray:
    counts = labels.value_counts()
    weights = labels.map(1.0 / np.sqrt(counts)).to_numpy(dtype=float)
    return weights / weights.mean()


def fit_model(train: pd.DataFrame, valid: pd.DataFrame, classes: list[str], seed: int = 42,
              n_estimators: int = 300) -> XGBClassifier:
    """Fit a multi-class XGBoost (hist, 64 bins) with early stopping on ``valid``."""
    from xgboost import XGBClassifier

    index = {c: i for i, c in enumerate(classes)}
    model = XGBClassifier(
        n_estimators=n_estimators, max_depth=8, learning_rate=0.15, tree_method="hist",
        max_bin=64, objective="multi:softprob" if len(classes) > 2 else "binary:logistic",
        eval_metric="mlogloss" if len(classes) > 2 else "logloss", n_jobs=2,
        random_state=seed, early_stopping_rounds=20 if len(valid) else None,
    )
    eval_set = [(valid[MODEL_FEATURES], valid["label"].map(index))] if len(valid) else None
    model.fit(train[MODEL_FEATURES], train["label"].map(index),
              sample_weight=class_weights(train["label"]), eval_set=eval_set, verbose=False)
    return model


def predict_labels(model: XGBClassifier, classes: list[str], frame: pd.DataFrame) -> np.ndarray:
    """Class names predicted for ``frame`` (the model works on class indices)."""
    return np.asarray(classes)[model.predict(frame[MODEL_FEATURES]).astype(int)]


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ensure_experiment(name: str, artifact_root: Path) -> str:
    """Experiment id, creating it with an explicit artifact root (never ./mlruns)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifact_root.as_uri())


def train_and_log(training_set: Path, artifact_root: Path, model_name: str,
                  lineage: dict[str, str], seed: int = 42) -> TrainResult:
    """Train on a point-in-time training set, log the run and register the model version."""
    import mlflow
    from mlflow.models import infer_signature

    frame = pd.read_parquet(training_set)
    train, valid, test = time_aware_split(frame)
    classes = sorted(frame["label"].unique())
    experiment_id = ensure_experiment(EXPERIMENT, artifact_root / EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=lineage.get("dag_run_id")) as run:
        mlflow.set_tags({f"lineage.{k}": v for k, v in lineage.items()})
        mlflow.set_tag("lineage.code_version", code_version())
        mlflow.log_input(mlflow.data.from_pandas(frame.drop(columns=MODEL_FEATURES),
                                                 source=str(training_set), name="training_set"),
                         context="training")
        mlflow.log_params({"rows_train": len(train), "rows_valid": len(valid),
                           "rows_test": len(test), "classes": len(classes), "seed": seed,
                           "features": len(MODEL_FEATURES), "split": "per-class time order 70/10/20",
                           "class_weighting": "1/sqrt(freq)"})
        model = fit_model(train, valid, classes, seed=seed)
        mlflow.log_params({k: v for k, v in model.get_params().items()
                           if k in ("max_depth", "learning_rate", "n_estimators", "max_bin")})
        mlflow.log_metric("best_iteration", float(getattr(model, "best_iteration", 0) or 0))
        metrics = evaluate(test["label"].to_numpy(), predict_labels(model, classes, test), classes)
        mlflow.log_metrics(metrics)
        reference = train.sample(min(REFERENCE_ROWS, len(train)), random_state=seed)
        _log_frame(reference, "reference/reference.parquet")
        _log_frame(test, "holdout/holdout.parquet")
        mlflow.log_dict({"classes": classes, "features": MODEL_FEATURES}, "model_schema.json")
        sample = test[MODEL_FEATURES].head(5)
        info = mlflow.xgboost.log_model(
            model, name="model", pip_requirements=PIP_REQUIREMENTS,
            signature=infer_signature(sample, model.predict_proba(sample)),
            input_example=sample, metadata={"classes": classes},
        )
        log.info("trained run %s: %s", run.info.run_id,
                 {k: round(v, 4) for k, v in metrics.items() if not k.startswith("f1.")})
        return TrainResult(run.info.run_id, info.model_uri, metrics, classes)


def _log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent))
