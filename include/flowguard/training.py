"""Train the XGBoost flow classifier, tune it under a time budget, log everything to MLflow.

Split: per class, flows ordered by time; the earliest 70 % train, the next 10 % drive early
stopping and the hyperparameter search, the newest 20 % are the evaluation holdout. Ordering
within each class keeps future flows of a class out of its training data while every class
that has enough rows still appears in each split (attacks in CICIDS2017 happen in short
windows, so a single global cut in time would leave whole classes out of training or out of
evaluation). Flows of the registry's frozen holdout are removed before the split, so no
model ever trains on the flows it is gated on.
Imbalance: sample weights ~ 1/sqrt(class frequency), normalised to mean 1, so rare attacks
count without letting 40 Heartbleed flows dominate a 500 k benign day.
Scale: the final fits see at most ``max_class_rows`` flows of any class (drawn at random,
seeded); the rows kept carry the weight of those left out, so each class weighs what it
weighs in the whole split (importance-weighted down-sampling). Only the big classes
(BENIGN, DoS Hulk, PortScan, DDoS at full scale) are thinned; every attack flow of a rare
class is used.
Search: Optuna TPE (seeded) on the validation split's macro-F1, stopped by a wall-clock
budget or a trial cap, whichever comes first; trial 0 is the hand-picked default, so the
search never returns something worse than the default on validation. Each trial is a nested
MLflow run. The winning parameters are fitted once on train + validation with the round
count early stopping found in the winning trial (without a search: an early-stopping fit
on the training split first, then that refit; :func:`final_fit`).
Reproducibility: seeds for the row sampling, the sampler and XGBoost are fixed and
XGBoost uses a fixed thread count, so the same data and the same number of completed trials
give the same model. Under a binding time budget the number of trials depends on the
machine's speed; it is logged (``tuning_trials``) and ``max_trials`` pins it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flowguard.evaluation import evaluate, metric_key, plot_confusion
from flowguard.lineage import code_version, frame_digest
from flowguard.profiles import active
from flowguard.schema import is_attempted

if TYPE_CHECKING:
    from xgboost import XGBClassifier

log = logging.getLogger(__name__)

EXPERIMENT = "flowguard-flow-classifier"
REFERENCE_ROWS = 25_000  # saved with the model: 5000 fit drift preprocessing, x_ref <= 20 000
PIP_REQUIREMENTS = ["xgboost-cpu==3.2.0", "scikit-learn", "pandas", "numpy"]
# colsample_bynode 0.5: each split sees half the features, so the trees cannot lean on the
# source host's hourly counters alone. Those counters climb through an attack, and an
# attacker runs several attacks in a row, so the newest flows of one attack carry the
# counters the next attack was trained with (docs/training.md, "Host counters").
DEFAULT_PARAMS: dict[str, Any] = {"max_depth": 8, "learning_rate": 0.15, "min_child_weight": 1.0,
                                  "subsample": 1.0, "colsample_bytree": 1.0,
                                  "colsample_bynode": 0.5, "reg_lambda": 1.0}
N_THREADS = 2
# Share of training rows fitted again with their host features hidden. Without it a model scored a
# real flow whose host window is unknown (NaN) as if the window were empty, and real benign
# flows became attacks (docs/training.md, "Unknown host context").
HOST_DROPOUT = 0.3


@dataclass
class TuningConfig:
    """Hyperparameter search settings. ``max_trials=0`` or ``budget_seconds=0``: no search."""

    budget_seconds: float = 60.0
    max_trials: int = 20
    max_rows: int = 100_000  # trials fit on a per-class sample of at most this many rows
    n_estimators: int = 300
    early_stopping_rounds: int = 20
    max_class_rows: int = 150_000  # final fits: larger classes down-sampled, weights kept; 0: all
    host_dropout: float = HOST_DROPOUT  # share of rows fitted again with host features hidden
    # A budget that fits the data (the training DAG sets it): a trial's cost follows its rows
    # (at most ``max_rows``), so the budget becomes ``budget_per_100k_rows`` s per 100 k trial
    # rows, at least ``min_budget_seconds``, at most ``budget_seconds``. 0: ``budget_seconds``
    # as given (docs/training.md, "Search budget").
    budget_per_100k_rows: float = 0.0
    min_budget_seconds: float = 10.0


def search_budget(config: TuningConfig, train_rows: int) -> float:
    """The search's wall-clock budget for a training split of ``train_rows`` rows.

    45 s spent on 5 000 rows (the demo's windows) bought nothing a 10 s search does not: a
    trial there takes about a second, so ten of them fit; at 100 k trial rows and more
    (every window of a real week) the requested budget applies unchanged.
    """
    if config.budget_seconds <= 0 or config.budget_per_100k_rows <= 0:
        return max(0.0, config.budget_seconds)
    scaled = config.budget_per_100k_rows * min(train_rows, config.max_rows) / 100_000
    return round(min(config.budget_seconds, max(config.min_budget_seconds, scaled)), 1)


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    classes: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    trials: int = 0


# What training reads of a training set: the keys the split, the frozen holdout and the
# monitor's reference need, and the model's features (as float32: XGBoost casts every feature
# to float32 itself, so the model is the same; the saved drift reference is re-read in
# float64, :func:`reference_rows`).
KEY_COLUMNS = ["flow_uid", "event_timestamp", "label", "src_ip"]
READ_BATCH_ROWS = 200_000


def model_features() -> list[str]:
    """The model's inputs under the active dataset profile, in the feature service's order."""
    return active().model_features


def features_of(model: Any) -> list[str]:
    """The features a fitted model was trained on, in its order (its booster keeps them):
    a champion of either dataset profile predicts on its own inputs."""
    names = model.get_booster().feature_names
    return list(names) if names else model_features()


def read_training_set(path: Path) -> pd.DataFrame:
    """The training set's keys and model features, features as float32.

    About 0.4 KB a row instead of the whole file in float64 (every provenance column and
    83 features at 8 bytes): what the split, the search and the fits need, nothing more.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    features = model_features()
    columns = [c for c in KEY_COLUMNS + features if c in names]
    missing = [c for c in features if c not in names]
    if missing:
        raise ValueError(f"{path}: the training set lacks the model's features {missing}")
    source = pq.ParquetFile(path)
    stored = source.schema_arrow
    schema = pa.schema([pa.field(c, pa.float32()) if c in features else stored.field(c)
                        for c in columns])
    # Read and cast batch by batch (never the float64 table: 1.9 GB on the full week), then
    # into pandas' own memory column by column; Arrow's allocator keeps what it freed, so
    # it is asked to hand that back (the read cost 3.4 GB of RSS for a 1.3 GB frame).
    table = pa.Table.from_batches([batch.select(columns).cast(schema) for batch in
                                   source.iter_batches(batch_size=READ_BATCH_ROWS,
                                                       columns=columns)], schema=schema)
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    release_arrow_memory()
    return frame


def release_arrow_memory() -> None:
    """Hand the memory Arrow's allocator has freed back to the system: the frames read from
    parquet live in it, and it keeps freed pages for reuse by Arrow only."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def reference_rows(path: Path, train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The drift reference: a seeded sample of the training split, every column of the
    training set in its stored precision (float64), re-read for the sampled flows only.

    The sample is drawn from the (float32) training split exactly as before; its values come
    from the file, so the detectors' reference is not rounded (docs/training.md).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sample = train.sample(min(rows, len(train)), random_state=seed)
    source = pq.ParquetFile(path)
    uids = pa.array(sample["flow_uid"].to_numpy()).cast(source.schema_arrow.field("flow_uid").type)
    # batch by batch: the whole file in float64 is what training no longer holds
    kept = [batch.filter(pc.is_in(batch["flow_uid"], value_set=uids))
            for batch in source.iter_batches(batch_size=100_000)]
    full = pa.Table.from_batches(kept, schema=source.schema_arrow).to_pandas()
    full = full.drop_duplicates("flow_uid").set_index("flow_uid")
    full = full.reindex(sample["flow_uid"].to_numpy()).rename_axis("flow_uid").reset_index()
    return full[source.schema_arrow.names]


class StagePeaks:
    """Peak resident memory of each stage of one training run, in MB.

    Linux's ``VmHWM`` (the process's peak RSS) is read at the end of a stage and reset for
    the next (``/proc/self/clear_refs``); where it cannot be reset the figures are the peak
    so far. Logged as ``peak_rss_mb.<stage>`` metrics, read by benchmarks/bench_training.py.
    """

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._reset()

    @staticmethod
    def _reset() -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def mark(self, stage: str) -> None:
        try:
            with open("/proc/self/status") as fh:
                kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return
        self.peaks[stage] = round(kb / 1024, 1)
        self._reset()


def training_rows(frame: pd.DataFrame, include_attempted: bool = False
                  ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows a model trains and is evaluated on, and the attempted-attack rows left out.

    Improved-CICIDS2017 ``X - Attempted`` flows are excluded unless ``include_attempted``
    (``Settings.train_on_attempted``): with them in, the label set would gain a class per
    attempted attack, each of flows that are benign-looking by construction.
    """
    if include_attempted or "label" not in frame:
        return frame, {}
    attempted = frame["label"].map(is_attempted).to_numpy(dtype=bool)
    if not attempted.any():
        return frame, {}
    left_out = {str(k): int(v) for k, v in frame.loc[attempted, "label"].value_counts().items()}
    log.info("left %d attempted-attack rows out of training: %s", int(attempted.sum()), left_out)
    return frame[~attempted].reset_index(drop=True), left_out


def time_aware_split(frame: pd.DataFrame, valid: float = 0.1, test: float = 0.2,
                     withheld: dict[str, int] | None = None,
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split per class in time order: oldest -> train, then early-stopping, newest -> test.

    ``withheld``: flows per class already removed as the frozen holdout (the newest flows
    of the window the first champion trained on). They count towards the class's test
    share, so a class with no new flows since then is not withheld a second time: without
    this, a retrain trained on the oldest 55 % of such a class only (docs/training.md).
    """
    withheld = withheld or {}
    # Positions, not copies: one stable ordering by (time, flow) then by class gives each
    # class's flows in time order; each split is then one ``take`` of the frame (the sorted
    # copy of the whole frame this used to make was a full extra frame at peak).
    # Times as datetime64 and classes as sorted codes: sorting a tz-aware column's Timestamp
    # objects and the label strings in Python took 35 of the 60 s this split cost on the
    # full week (2.8 M rows); the order is the same.
    times = pd.to_datetime(frame["event_timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
    order = np.lexsort((frame["flow_uid"].to_numpy(), times))
    codes, names = pd.factorize(frame["label"].to_numpy()[order], sort=True)
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} training rows have no label")
    by_class = np.argsort(codes, kind="stable")
    order = order[by_class]
    _, starts, counts = np.unique(codes[by_class], return_index=True, return_counts=True)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for label, start, n in zip(names, starts, counts, strict=True):
        group = order[start:start + n]
        held = int(withheld.get(str(label), 0))
        total = n + held
        n_test = max(0, int(round(total * test)) - held) if total >= 5 else 0
        n_valid = min(int(round(total * valid)) if total >= 10 else 0, n - n_test)
        cut_train = n - n_test - n_valid
        parts["train"].append(group[:cut_train])
        parts["valid"].append(group[cut_train:cut_train + n_valid])
        parts["test"].append(group[cut_train + n_valid:])
    return tuple(_take(frame, np.concatenate(parts[k]) if parts[k] else np.array([], dtype=int))
                 for k in ("train", "valid", "test"))


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.take(rows).reset_index(drop=True)`` without the second copy reset_index makes."""
    part = frame.take(rows)
    part.index = pd.RangeIndex(len(part))
    return part


def class_weights(labels: pd.Series) -> np.ndarray:
    counts = labels.value_counts()
    weights = labels.map(1.0 / np.sqrt(counts)).to_numpy(dtype=float)
    return weights / weights.mean()


def cap_per_class(frame: pd.DataFrame, max_rows: int, seed: int,
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``max_rows`` rows of each class, and the sample weights that keep each class's
    total weight what :func:`class_weights` gives it on the whole ``frame``.

    A class with more rows is down-sampled uniformly at random (seeded, so across its whole
    time span); each row it keeps stands for ``n / max_rows`` of its rows. ``max_rows <= 0``
    or no class above it: the frame as it is with :func:`class_weights`.
    """
    counts = frame["label"].value_counts()
    if max_rows <= 0 or counts.max() <= max_rows:
        return frame, class_weights(frame["label"])
    kept = pd.concat([g.sample(n=max_rows, random_state=seed) if len(g) > max_rows else g
                      for _, g in frame.groupby("label", sort=True)]).sort_index()
    per_row = (1.0 / np.sqrt(counts)) * counts / kept["label"].value_counts()
    weights = kept["label"].map(per_row).to_numpy(dtype=float)
    return kept, weights / weights.mean()


CHUNK_ROWS = 100_000  # rows per batch handed to XGBoost's QuantileDMatrix


def _batches(features: pd.DataFrame, target: np.ndarray, weights: np.ndarray,
             copies: np.ndarray, chunk_rows: int = CHUNK_ROWS):  # noqa: ANN202 - a generator
    """(X, y, w) float32 chunks: the rows as they are, then the host-dropout copies with their
    host features hidden. Only one chunk is ever copied out of the frame at a time."""
    host = [features.columns.get_loc(c) for c in active().host_features]
    for start in range(0, len(features), chunk_rows):
        rows = slice(start, start + chunk_rows)
        yield (features.iloc[rows].to_numpy(dtype=np.float32), target[rows], weights[rows])
    for start in range(0, len(copies), chunk_rows):
        rows = copies[start:start + chunk_rows]
        chunk = features.iloc[rows].to_numpy(dtype=np.float32)
        chunk[:, host] = np.nan
        yield chunk, target[rows], weights[rows]


def _quantile_dmatrix(batches: list | Any, max_bin: int, ref: Any = None) -> Any:
    """A QuantileDMatrix built chunk by chunk from ``batches`` (an iterable of (X, y, w))."""
    import xgboost as xgb

    names = model_features()

    class Chunks(xgb.DataIter):
        def __init__(self) -> None:
            self._it = None
            super().__init__(cache_prefix=None, release_data=True)

        def next(self, input_data: Any) -> bool:  # noqa: A003 - XGBoost's interface
            if self._it is None:
                self._it = iter(batches())
            try:
                x, y, w = next(self._it)
            except StopIteration:
                return False
            input_data(data=x, label=y, weight=w, feature_names=names)
            return True

        def reset(self) -> None:
            self._it = None

    return xgb.QuantileDMatrix(Chunks(), max_bin=max_bin, ref=ref, nthread=N_THREADS)


def fit_model(train: pd.DataFrame, valid: pd.DataFrame, classes: list[str], seed: int = 42,
              n_estimators: int = 300, params: dict[str, Any] | None = None,
              early_stopping_rounds: int = 20, weights: np.ndarray | None = None,
              host_dropout: float = HOST_DROPOUT) -> XGBClassifier:
    """Fit a multi-class XGBoost (hist, 64 bins) with early stopping on ``valid``.

    ``weights``: per-row sample weights (default :func:`class_weights` of ``train``).
    ``host_dropout``: share of training rows (seeded) fitted a second time with their host
    features hidden (NaN), so the trees learn to classify a flow whose host context is
    unknown: a host seen for the first time, a stale online window, a flow scored out of its
    day (docs/training.md, "Unknown host context").
    The training matrix is built chunk by chunk (QuantileDMatrix from an iterator): the
    copies and the float32 matrix are never materialised as frames. The result is an
    ordinary ``XGBClassifier`` (the booster ``xgboost.train`` fitted, with the wrapper's
    parameters), so logging, loading and ``predict_proba`` are unchanged.
    """
    import xgboost as xgb
    from xgboost import XGBClassifier

    index = {c: i for i, c in enumerate(classes)}
    model = XGBClassifier(
        n_estimators=n_estimators, tree_method="hist", max_bin=64,
        objective="multi:softprob" if len(classes) > 2 else "binary:logistic",
        eval_metric="mlogloss" if len(classes) > 2 else "logloss", n_jobs=N_THREADS,
        random_state=seed, early_stopping_rounds=early_stopping_rounds if len(valid) else None,
        **{**DEFAULT_PARAMS, **(params or {})},
    )
    features = train[model_features()]
    target = train["label"].map(index).to_numpy(dtype=np.float32)
    weights = class_weights(train["label"]) if weights is None else np.asarray(weights)
    copies = np.flatnonzero(np.random.default_rng(seed).random(len(features)) < host_dropout) \
        if host_dropout > 0 and len(features) else np.array([], dtype=np.int64)
    dtrain = _quantile_dmatrix(lambda: _batches(features, target, weights, copies), 64)
    evals = []
    if len(valid):
        vtarget = valid["label"].map(index).to_numpy(dtype=np.float32)
        dvalid = _quantile_dmatrix(
            lambda: _batches(valid[model_features()], vtarget, np.ones(len(valid)),
                             np.array([], dtype=np.int64)), 64, ref=dtrain)
        evals = [(dvalid, "validation_0")]
    xgb_params = model.get_xgb_params()
    if len(classes) > 2:
        xgb_params["num_class"] = len(classes)
    booster = xgb.train(xgb_params, dtrain, num_boost_round=n_estimators, evals=evals,
                        early_stopping_rounds=early_stopping_rounds if evals else None,
                        verbose_eval=False)
    del dtrain, evals
    model._Booster = booster
    model.n_classes_ = len(classes) if len(classes) > 2 else 2
    return model


def predict_proba(model: XGBClassifier, frame: pd.DataFrame) -> np.ndarray:
    proba = model.predict_proba(frame[features_of(model)])
    return proba if proba.ndim == 2 else np.column_stack([1 - proba, proba])


def predict_labels(model: XGBClassifier, classes: list[str], frame: pd.DataFrame) -> np.ndarray:
    """Class names predicted for ``frame`` (the model works on class indices)."""
    return np.asarray(classes)[model.predict(frame[features_of(model)]).astype(int)]


def final_fit(train: pd.DataFrame, valid: pd.DataFrame, classes: list[str],
              params: dict[str, Any], tuning: TuningConfig, seed: int,
              rounds: int | None = None) -> tuple[XGBClassifier, int, dict[str, float]]:
    """The model that ships: fitted on train + validation with an early-stopped round count.

    The round count is ``rounds`` when the search has already found it (the chosen trial's
    early-stopped best iteration: one fit here); otherwise early stopping on the validation
    split picks it (and gives the ``valid_*`` metrics) and the model is then refitted (two
    fits). Why train + validation: the validation split holds the newest 10 % of each class
    before the holdout. Withholding it from the final model cost a rare class whose flows
    drift in time (DoS slowloris: the attacker's host counters climb through the attack)
    all its recall on the frozen holdout (docs/training.md, "Final fit").
    Fits see at most ``tuning.max_class_rows`` rows of a class (:func:`cap_per_class`).
    Returns the model, the best iteration and the validation metrics (empty when
    ``rounds`` was given or there is no validation split).
    """
    valid_metrics: dict[str, float] = {}
    if rounds is None:
        fitted, weights = cap_per_class(train, tuning.max_class_rows, seed)
        model = fit_model(fitted, valid, classes, seed=seed, params=params,
                          n_estimators=tuning.n_estimators,
                          early_stopping_rounds=tuning.early_stopping_rounds, weights=weights,
                          host_dropout=tuning.host_dropout)
        rounds = int(getattr(model, "best_iteration", 0) or 0)
        if not len(valid):
            return model, rounds, {}
        valid_metrics = evaluate(valid["label"].to_numpy(),
                                 predict_labels(model, classes, valid), classes)
        del model, fitted, weights
    fitted, weights = cap_per_class(pd.concat([train, valid], ignore_index=True),
                                    tuning.max_class_rows, seed)
    refit = fit_model(fitted, valid.iloc[:0], classes, seed=seed, params=params,
                      n_estimators=rounds + 1, weights=weights, host_dropout=tuning.host_dropout)
    return refit, rounds, valid_metrics


def dataset_input(frame: pd.DataFrame, source: str, name: str, digest: str) -> Any:
    """``mlflow.data.from_pandas`` with its schema worked out per column, not per cell.

    MLflow infers a pandas dataset's schema by testing every cell for None/NaN in Python:
    about a minute per million rows here, more than the model fit. The types come from the
    dtypes (inferred on the first rows) and "required" from a vectorised null check: the
    same schema (tests/test_training_registry.py).
    """
    import mlflow
    from mlflow.types import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    dataset = mlflow.data.from_pandas(frame, source=source, targets="label", name=name,
                                      digest=digest)
    head, nulls = _infer_schema(frame.head(1000)), frame.isna().any()
    # PandasDataset.schema is a functools.cached_property: setting it spares the inference
    dataset.__dict__["schema"] = Schema([ColSpec(c.type, c.name, required=not bool(nulls[c.name]))
                                         for c in head.inputs])
    return dataset


EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(name: str, artifact_root: Path) -> str:
    """Experiment id, creating it with an explicit artifact root (never ./mlruns)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        try:
            mlflow.create_experiment(name, artifact_location=artifact_root.as_uri())
        except mlflow.exceptions.MlflowException:  # created by a concurrent run meanwhile
            pass
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise LookupError(f"MLflow experiment {name!r} could not be created")
    # MLflow 3's UI opens an experiment without this tag on an empty GenAI page
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                                 EXPERIMENT_KIND)
    return experiment.experiment_id


def sample_per_class(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, same share per class, but never fewer than 200 of a class."""
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    parts = [g.sample(n=min(len(g), max(200, int(round(len(g) * share)))), random_state=seed)
             for _, g in frame.groupby("label", sort=True)]
    return pd.concat(parts).sort_index()


def tune(train: pd.DataFrame, valid: pd.DataFrame, classes: list[str], config: TuningConfig,
         seed: int) -> tuple[dict[str, Any], int, dict[str, float] | None]:
    """Optuna search on validation macro-F1; each trial is a nested MLflow run.

    Returns the best parameters, the number of completed trials and the chosen trial's
    ``best_iteration`` and ``valid_macro_f1`` (``None`` when no search ran).
    """
    import mlflow
    import optuna

    if config.max_trials <= 0 or config.budget_seconds <= 0 or not len(valid):
        return dict(DEFAULT_PARAMS), 0, None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parent = mlflow.active_run()
    subset = sample_per_class(train, config.max_rows, seed)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "colsample_bynode": trial.suggest_float("colsample_bynode", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
        started = time.perf_counter()
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True,
                              experiment_id=parent.info.experiment_id):
            mlflow.set_tag("flowguard.trial", str(trial.number))
            mlflow.log_params({**params, "rows_train": len(subset)})
            model = fit_model(subset, valid, classes, seed=seed, params=params,
                              n_estimators=config.n_estimators,
                              early_stopping_rounds=config.early_stopping_rounds,
                              host_dropout=config.host_dropout)
            proba = predict_proba(model, valid)  # once: the labels are its argmax
            metrics = evaluate(valid["label"].to_numpy(), np.asarray(classes)[proba.argmax(axis=1)],
                               classes, proba)
            score = metrics["macro_f1"]
            trial.set_user_attr("best_iteration", int(getattr(model, "best_iteration", 0) or 0))
            trial.set_user_attr("valid_log_loss", metrics["log_loss"])
            seconds = time.perf_counter() - started
            mlflow.log_metrics({"valid_macro_f1": score, "valid_log_loss": metrics["log_loss"],
                                "best_iteration": trial.user_attrs["best_iteration"],
                                "seconds": seconds})
        log.info("tuning trial %d: valid macro-F1 %.4f, log-loss %.4f, %d trees, %.1f s",
                 trial.number, score, metrics["log_loss"], trial.user_attrs["best_iteration"],
                 seconds)
        return score

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                study_name=f"flowguard-{seed}")
    study.enqueue_trial(dict(DEFAULT_PARAMS))
    study.optimize(objective, n_trials=config.max_trials, timeout=config.budget_seconds)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # macro-F1 ties (common: validation is small) go to the lower log-loss, then the earlier
    best = max(done, key=lambda t: (t.value, -t.user_attrs["valid_log_loss"], -t.number))
    log.info("tuning: %d trials in budget %.0f s, best #%d valid macro-F1 %.4f",
             len(done), config.budget_seconds, best.number, best.value)
    return dict(best.params), len(done), {"best_iteration": best.user_attrs["best_iteration"],
                                          "valid_macro_f1": float(best.value)}


@dataclass
class Splits:
    """A training set's rows as a run uses them (:func:`prepare_splits`)."""

    frame: pd.DataFrame  # the rows trained and evaluated on (frozen holdout removed)
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    attempted: dict[str, int]
    excluded: int
    holdout_source: str


def prepare_splits(frame: pd.DataFrame, exclude_uids: pd.Series | None = None,
                   include_attempted: bool = False, source: str = "training set") -> Splits:
    """Rows to train on, the frozen holdout's flows removed, split in time order.

    The one place a run's rows are chosen: :func:`train_and_log` and ``flowguard reproduce``
    (:mod:`flowguard.reproduce`) both call it, so a reproduction uses the same rows.
    """
    frame, attempted = training_rows(frame, include_attempted)
    excluded, withheld, removed = 0, {}, frame.iloc[0:0]
    if exclude_uids is not None and len(exclude_uids):
        keep = ~frame["flow_uid"].isin(set(exclude_uids))
        excluded = int((~keep).sum())
        withheld = {str(k): int(v) for k, v in frame.loc[~keep, "label"].value_counts().items()}
        removed = frame[~keep].reset_index(drop=True)
        frame = frame[keep].reset_index(drop=True)
    train, valid, test = time_aware_split(frame, withheld=withheld)
    holdout_source = "newest flows of the window"
    if not len(test):  # decided before the search, so a hopeless run costs nothing
        if not len(removed):
            raise ValueError(f"{source}: {len(frame)} flows leave no holdout (a class "
                             "needs 5 flows for one): train on a wider window")
        # A window that ends where the first champion's did (a retrain for an early day):
        # the frozen holdout already took its newest flows, so they are what is left.
        log.warning("no flow of this window is newer than the frozen holdout's: evaluating on "
                    "the window's %d frozen-holdout flows (kept out of training) instead",
                    len(removed))
        test, holdout_source = removed, "frozen holdout (no newer flows in the window)"
    return Splits(frame, train, valid, test, attempted, excluded, holdout_source)


def train_and_log(training_set: Path, artifact_root: Path, model_name: str,
                  lineage: dict[str, Any], seed: int = 42, tuning: TuningConfig | None = None,
                  exclude_uids: pd.Series | None = None,
                  include_attempted: bool = False) -> TrainResult:
    """Train on a point-in-time training set, log the run (lineage, metrics, model, card).

    ``lineage`` values become ``lineage.*`` tags (non-strings as JSON) and the
    ``lineage.json`` artifact. ``exclude_uids`` are the frozen holdout's flows. Attempted-attack
    rows are left out unless ``include_attempted`` (:func:`training_rows`).
    """
    import mlflow
    from mlflow.models import infer_signature

    tuning = tuning or TuningConfig()
    np.random.seed(seed)
    peaks = StagePeaks()
    splits = prepare_splits(read_training_set(training_set), exclude_uids, include_attempted,
                            str(training_set))
    frame, train, valid, test = splits.frame, splits.train, splits.valid, splits.test
    attempted, excluded, holdout_source = splits.attempted, splits.excluded, splits.holdout_source
    del splits  # it holds the whole window, which is dropped below
    classes = sorted(frame["label"].unique())
    requested_budget = tuning.budget_seconds
    tuning = replace(tuning, budget_seconds=search_budget(tuning, len(train)))
    # the splits are copies: keep only what the model card reads of the whole window
    frame = frame[["event_timestamp"]]
    release_arrow_memory()
    peaks.mark("read_split")
    experiment_id = ensure_experiment(EXPERIMENT, artifact_root / EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=str(lineage.get("run_name") or lineage.get("dag_run_id")
                                       or "train")) as run:
        code = code_version()
        tags = {f"lineage.{k}": v if isinstance(v, str) else json.dumps(v, default=str)
                for k, v in lineage.items()}
        mlflow.set_tags({k: v if len(v) <= 5000 else "(long: see lineage.json)"
                         for k, v in tags.items()})
        mlflow.set_tags({"lineage.code_version": code, "mlflow.source.git.commit":
                         code.split("+g")[-1].removesuffix(".dirty") if "+g" in code else code})
        mlflow.log_dict({**lineage, "code_version": code}, "lineage.json")
        digests = {}
        for name, part, context in (("train", train, "training"), ("validation", valid, "validation"),
                                    ("holdout", test, "testing")):
            digests[name] = frame_digest(part)
            mlflow.log_input(dataset_input(part, str(training_set), name, digests[name]),
                             context=context)
        mlflow.set_tags({f"lineage.digest.{k}": v for k, v in digests.items()})
        mlflow.log_params({"rows_train": len(train), "rows_valid": len(valid),
                           "rows_test": len(test), "classes": len(classes), "seed": seed,
                           "features": len(model_features()), "frozen_holdout_excluded": excluded,
                           "attempted_rows_excluded": sum(attempted.values()),
                           "split": "per-class time order 70/10/20",
                           "holdout_source": holdout_source,
                           "class_weighting": "1/sqrt(freq)", "tuning_budget_s": tuning.budget_seconds,
                           "tuning_budget_requested_s": requested_budget,
                           "max_class_rows": tuning.max_class_rows,
                           "host_dropout": tuning.host_dropout,
                           "tuning_max_trials": tuning.max_trials})
        peaks.mark("log_inputs")
        started = time.perf_counter()
        best, trials, chosen = tune(train, valid, classes, tuning, seed)
        tuning_seconds = time.perf_counter() - started
        peaks.mark("search")
        started = time.perf_counter()
        model, best_iteration, valid_metrics = final_fit(
            train, valid, classes, best, tuning, seed,
            rounds=chosen["best_iteration"] if chosen else None)
        fit_seconds = time.perf_counter() - started
        peaks.mark("final_fit")
        valid_f1 = chosen["valid_macro_f1"] if chosen else valid_metrics.get("macro_f1")
        mlflow.log_params({**best, "n_estimators": tuning.n_estimators, "max_bin": 64,
                           "final_fit": "train+validation, rounds from early stopping"
                                        + (" in the chosen trial" if chosen else "")})
        proba = predict_proba(model, test)
        predicted = np.asarray(classes)[proba.argmax(axis=1)]
        metrics = evaluate(test["label"].to_numpy(), predicted, classes, proba)
        mlflow.log_metrics({**metrics, "best_iteration": best_iteration, "tuning_trials": trials,
                            "tuning_seconds": tuning_seconds, "fit_seconds": fit_seconds,
                            **({"valid_macro_f1": valid_f1} if valid_f1 is not None else {})})
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_confusion(test["label"].to_numpy(), predicted, Path(tmp) / "confusion_matrix.png",
                                 f"holdout confusion ({len(test)} newest flows per class)")
            mlflow.log_artifact(str(png), artifact_path="evaluation")
        _log_frame(reference_rows(training_set, train, REFERENCE_ROWS, seed),
                   "reference/reference.parquet")
        _log_frame(test, "holdout/holdout.parquet")
        mlflow.log_dict({"classes": classes, "features": model_features()}, "model_schema.json")
        sample = test[model_features()].head(5)
        info = mlflow.xgboost.log_model(
            model, name="model", pip_requirements=PIP_REQUIREMENTS,
            signature=infer_signature(sample, model.predict_proba(sample)),
            input_example=sample, metadata={"classes": classes},
        )
        card = model_card(model_name, run.info.run_id, lineage, code, classes, frame, train,
                          valid, test, best, trials, tuning, best_iteration, metrics, digests,
                          excluded)
        mlflow.log_text(card, "model_card.md")
        peaks.mark("evaluate_log_model")
        mlflow.log_metrics({f"peak_rss_mb.{k}": v for k, v in peaks.peaks.items()})
        log.info("trained run %s: %s", run.info.run_id,
                 {k: round(v, 4) for k, v in metrics.items() if "." not in k})
        return TrainResult(run.info.run_id, info.model_uri, metrics, classes, best, trials)


def model_card(model_name: str, run_id: str, lineage: dict[str, Any], code: str,
               classes: list[str], frame: pd.DataFrame, train: pd.DataFrame,
               valid: pd.DataFrame, test: pd.DataFrame, params: dict[str, Any], trials: int,
               tuning: TuningConfig, best_iteration: int, metrics: dict[str, float],
               digests: dict[str, str], excluded: int) -> str:
    """A markdown model card: what the model is for, how it was made, how well it does."""
    stamps = frame["event_timestamp"]
    rows = "\n".join(
        f"| {c} | {int((train.label == c).sum())} | {int((test.label == c).sum())} | "
        f"{metrics.get('precision.' + metric_key(c), float('nan')):.3f} | "
        f"{metrics.get('recall.' + metric_key(c), float('nan')):.3f} | "
        f"{metrics.get('f1.' + metric_key(c), float('nan')):.3f} |" for c in classes)
    validations = lineage.get("validation_results") or []
    vrows = "\n".join(f"| {v.get('day')} | `{v.get('id')}` | {v.get('success')} |"
                      for v in validations) or "| - | none recorded | - |"
    trigger = lineage.get("trigger") or {"reason": lineage.get("trigger_reason", "")}
    return f"""# Model card: {model_name} (run `{run_id}`)

## Intended use
Multi-class classification of network flow records (CICFlowMeter statistics plus the
source host's activity in the previous clock hour) into the CICIDS2017 taxonomy, to rank
flows for an analyst. Not for blocking traffic automatically. Attack families absent from
the training window (see the class table) are not recognised: they are typically called
BENIGN, which the monitor's drift checks are there to catch.

## Data
- Flows from {stamps.min()} to {stamps.max()}: {len(frame)} rows, {len(classes)} classes;
  {excluded} flows of the frozen holdout removed before splitting.
- Features: feature service `{lineage.get('feature_service', '?')}` (version
  `{lineage.get('feature_service_version', '?')}`), {len(model_features())} features.
- Split per class in time order: train {len(train)}, early stopping / tuning {len(valid)},
  holdout (newest) {len(test)}. Digests: {json.dumps(digests)}.
- Imbalance: sample weights ~ 1/sqrt(class frequency), mean 1; a class above
  {tuning.max_class_rows} rows is down-sampled to that many for the fits, its rows weighted
  up so that it keeps its share of the weight.

| day | validation result (Great Expectations) | success |
|---|---|---|
{vrows}

## Training
XGBoost hist (64 bins), early stopping on the validation split (best iteration
{best_iteration} of at most {tuning.n_estimators}, in the chosen search trial when there was
a search), then fitted on train + validation with that many rounds. Optuna TPE search: {trials} trials within
{tuning.budget_seconds:.0f} s (cap {tuning.max_trials}); chosen parameters:
`{json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in params.items()})}`.
Code version `{code}`. Triggered by: {trigger.get('reason', '')} (DAG run
`{lineage.get('dag_run_id', '')}`).

## Holdout results (newest 20 % of each class)
Macro-F1 **{metrics['macro_f1']:.4f}**, accuracy {metrics['accuracy']:.4f} (dominated by
BENIGN; not a success measure here), log-loss {metrics.get('log_loss', float('nan')):.4f}.

| class | train rows | holdout rows | precision | recall | F1 |
|---|---|---|---|---|---|
{rows}

Confusion matrix: `evaluation/confusion_matrix.png`.

## Limitations
Synthetic or lab traffic (CICIDS2017) differs from any production network; per-class
numbers on classes with few holdout flows are noisy. Promotion to `champion` is decided by
the registry gate (frozen holdout and newest window), recorded on the model version.
"""


def _log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent))


def tuning_config(values: dict[str, Any] | None) -> TuningConfig:
    """A :class:`TuningConfig` from a JSON-able dict (DAG params), unknown keys rejected."""
    values = dict(values or {})
    unknown = set(values) - set(asdict(TuningConfig()))
    if unknown:
        raise ValueError(f"unknown tuning settings {sorted(unknown)}")
    return TuningConfig(**values)
