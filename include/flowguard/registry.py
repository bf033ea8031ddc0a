"""Model registry: register every trained model, promote only one that beats the champion.

Aliases, not stages: ``champion`` serves; ``previous`` keeps the champion it replaced, so a
rollback is one alias move (:func:`rollback`). The gate compares challenger and champion on
the challenger's holdout, the newest labelled data: the challenger must not be worse in
macro-F1 by more than ``tolerance`` and a first model must clear ``floor``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowguard.evaluation import evaluate
from flowguard.training import predict_labels

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"


@dataclass
class GateDecision:
    version: str
    promoted: bool
    reason: str
    challenger_macro_f1: float
    champion_version: str | None
    champion_macro_f1: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def register(client: MlflowClient, name: str, model_uri: str, run_id: str) -> str:
    """Register ``model_uri`` as a new version of ``name`` and return the version number."""
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="Network-flow intrusion classifier "
                                       "(CICIDS2017 taxonomy), XGBoost on Feast features.")
    version = client.create_model_version(name, model_uri, run_id=run_id)
    log.info("registered %s version %s from run %s", name, version.version, run_id)
    return str(version.version)


def champion_version(client: MlflowClient, name: str) -> str | None:
    import mlflow

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def load_model(client: MlflowClient, name: str, version: str) -> tuple[Any, list[str]]:
    """The XGBClassifier of a version (probabilities available) and its class names."""
    import mlflow

    uri = f"models:/{name}/{version}"
    classes = mlflow.models.get_model_info(uri).metadata["classes"]
    return mlflow.xgboost.load_model(uri), list(classes)


def load_run_frame(client: MlflowClient, run_id: str, artifact: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(client.download_artifacts(run_id, artifact, tmp))


def score(model: Any, classes: list[str], frame: pd.DataFrame) -> dict[str, float]:
    return evaluate(frame["label"].to_numpy(), predict_labels(model, classes, frame), classes)


def gate_and_promote(client: MlflowClient, name: str, version: str, tolerance: float = 0.005,
                     floor: float = 0.5) -> GateDecision:
    """Compare ``version`` with the champion on its holdout; move the aliases if it wins."""
    challenger = client.get_model_version(name, version)
    holdout = load_run_frame(client, challenger.run_id, "holdout/holdout.parquet")
    model, classes = load_model(client, name, version)
    ours = score(model, classes, holdout)["macro_f1"]
    current = champion_version(client, name)
    theirs = None
    if current is None:
        promoted = ours >= floor
        reason = f"first model: macro-F1 {ours:.4f} {'>=' if promoted else '<'} floor {floor}"
    else:
        champ_model, champ_classes = load_model(client, name, current)
        theirs = score(champ_model, champ_classes, holdout)["macro_f1"]
        promoted = ours >= theirs - tolerance and ours >= floor
        reason = (f"challenger v{version} macro-F1 {ours:.4f} vs champion v{current} "
                  f"{theirs:.4f} on {len(holdout)} newest labelled flows (tolerance {tolerance})")
    decision = GateDecision(version, promoted, reason, ours, current, theirs)
    client.set_model_version_tag(name, version, "gate", "passed" if promoted else "failed")
    client.set_model_version_tag(name, version, "gate_reason", reason)
    if promoted:
        if current is not None and current != version:
            client.set_registered_model_alias(name, PREVIOUS, current)
        client.set_registered_model_alias(name, CHAMPION, version)
    log.info("gate %s: %s", "passed" if promoted else "failed", reason)
    return decision


def rollback(client: MlflowClient, name: str) -> str:
    """Point ``champion`` back at ``previous`` (and ``previous`` at the demoted version)."""
    current = champion_version(client, name)
    prior = str(client.get_model_version_by_alias(name, PREVIOUS).version)
    client.set_registered_model_alias(name, CHAMPION, prior)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    log.info("rolled back %s: champion v%s -> v%s", name, current, prior)
    return prior


def summarise_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every version with its run's macro-F1, gate outcome and aliases, oldest first."""
    import mlflow

    try:
        model = client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        run = client.get_run(mv.run_id)
        rows.append({"version": str(mv.version), "macro_f1": run.data.metrics.get("macro_f1"),
                     "gate": mv.tags.get("gate"), "gate_reason": mv.tags.get("gate_reason", ""),
                     "aliases": aliases.get(str(mv.version), []),
                     "trigger": run.data.tags.get("lineage.trigger_reason", "")})
    return rows
