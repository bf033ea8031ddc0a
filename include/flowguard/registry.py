"""Model registry: register every trained model, promote only one that proves it is better.

Aliases, not stages: ``champion`` serves; ``previous`` keeps the champion it replaced, so a
rollback is one alias move (:func:`rollback`, ``flowguard rollback``).

The gate compares challenger and champion on two sets of labelled flows:

- the **frozen holdout**: the holdout of the first model ever promoted. Its run id is kept
  as the registered model's tag ``frozen_holdout_run_id`` and its parquet is an artifact of
  that (immutable) run; training removes its flows from every later training set, so no
  model is gated on flows it learned from. It keeps answering "is the new model still good
  at the traffic we already handled?"
- the **newest labelled window**: the challenger's own holdout (the newest 20 % of each
  class in its training window), which holds the traffic that made us retrain.

On each set the challenger passes if its macro-F1 is not lower than the champion's by more
than ``tolerance`` and no class (with at least ``min_support`` flows in the set) loses more
than ``recall_margin`` of recall. A first model must clear ``floor`` (macro-F1 on its
holdout). All of it happens under a registry lock (:func:`promotion_lock`), which also
re-reads the champion, so two training runs gating at once are serialised and the second is
compared with the first's result, never with a stale champion.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowguard.evaluation import evaluate
from flowguard.locks import file_lock
from flowguard.training import predict_labels, predict_proba

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
FROZEN_HOLDOUT_TAG = "frozen_holdout_run_id"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"


class RegistryLockTimeout(TimeoutError):
    """Another promotion held the registry lock for longer than the timeout."""


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must show. Defaults come from ``FLOWGUARD_GATE_*`` settings."""

    tolerance: float = 0.005
    recall_margin: float = 0.05
    floor: float = 0.5
    min_support: int = 10


@dataclass
class GateDecision:
    version: str
    promoted: bool
    reason: str
    challenger_macro_f1: float
    champion_version: str | None
    champion_macro_f1: float | None
    checks: list[dict[str, Any]] = field(default_factory=list)
    frozen_holdout_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- lock


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"flowguard-registry:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def promotion_lock(name: str, lock_uri: str, lock_dir: Path, timeout: float = 600.0
                   ) -> Iterator[None]:
    """Hold the registry lock of model ``name`` (alias moves happen only inside it).

    PostgreSQL (``lock_uri`` ``postgresql://...``, the production MLflow database): a session
    advisory lock, shared by every host that reaches the database; it is released when the
    connection closes, so a killed task cannot leave it held. Anything else (SQLite, file
    store): an ``flock`` on ``lock_dir/<name>.lock``, which covers every process of this
    host (the embedded profile is one host). Raises :class:`RegistryLockTimeout`.
    """
    if lock_uri.startswith(("postgresql", "postgres")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(lock_uri.replace("postgres://", "postgresql://", 1),
                                          poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(f"SET lock_timeout = '{int(timeout * 1000)}ms'"))
                try:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"),
                                 {"k": _lock_key(name)})
                except sqlalchemy.exc.OperationalError as exc:
                    raise RegistryLockTimeout(
                        f"registry lock of {name!r} not acquired in {timeout:.0f} s") from exc
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": _lock_key(name)})
                    conn.commit()
        finally:
            engine.dispose()
        return
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    path = lock_dir / f"registry-{safe}.lock"
    with file_lock(path, timeout, lambda: RegistryLockTimeout(
            f"registry lock {path} held for more than {timeout:.0f} s")):
        yield


# ---------------------------------------------------------------- registry access


def register(client: MlflowClient, name: str, model_uri: str, run_id: str,
             description: str | None = None) -> str:
    """Register ``model_uri`` as a new version of ``name`` and return the version number."""
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        try:
            client.create_registered_model(name, description="Network-flow intrusion classifier "
                                           "(CICIDS2017 taxonomy), XGBoost on Feast features.")
        except mlflow.exceptions.MlflowException:  # a concurrent run created it meanwhile
            client.get_registered_model(name)
    # MLflow 3 logged models are addressed as models:/m-<id>; the tracking server (unlike a
    # direct database store) rejects such a source unless model_id comes with it.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(name, model_uri, run_id=run_id, description=description,
                                          model_id=model_id)
    log.info("registered %s version %s from run %s", name, version.version, run_id)
    return str(version.version)


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    import mlflow

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_version(client: MlflowClient, name: str) -> str | None:
    return _alias(client, name, CHAMPION)


def load_model(client: MlflowClient, name: str, version: str) -> tuple[Any, list[str]]:
    """The XGBClassifier of a version (probabilities available) and its class names."""
    import mlflow

    uri = f"models:/{name}/{version}"
    classes = mlflow.models.get_model_info(uri).metadata["classes"]
    return mlflow.xgboost.load_model(uri), list(classes)


def load_run_frame(client: MlflowClient, run_id: str, artifact: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(client.download_artifacts(run_id, artifact, tmp))


def frozen_holdout(client: MlflowClient, name: str) -> tuple[str, pd.DataFrame] | None:
    """The frozen holdout's run id and flows, once a first model has been promoted."""
    import mlflow

    try:
        run_id = client.get_registered_model(name).tags.get(FROZEN_HOLDOUT_TAG)
    except mlflow.exceptions.MlflowException:
        return None
    if not run_id:
        return None
    return run_id, load_run_frame(client, run_id, HOLDOUT_ARTIFACT)


def score(model: Any, classes: list[str], frame: pd.DataFrame) -> dict[str, float]:
    proba = predict_proba(model, frame)
    return evaluate(frame["label"].to_numpy(), predict_labels(model, classes, frame), classes,
                    proba)


# ---------------------------------------------------------------- gate


def compare(ours: dict[str, float], theirs: dict[str, float], rows: int, label: str,
            policy: GatePolicy) -> dict[str, Any]:
    """One gate check: macro-F1 within tolerance and per-class recall within margin."""
    drops = {}
    for key, value in theirs.items():
        if not key.startswith("recall."):
            continue
        cls = key.removeprefix("recall.")
        if theirs.get(f"support.{cls}", 0) < policy.min_support:
            continue
        drops[cls] = round(value - ours.get(key, 0.0), 6)
    lost = {cls: d for cls, d in drops.items() if d > policy.recall_margin}
    f1_ok = ours["macro_f1"] >= theirs["macro_f1"] - policy.tolerance
    worst = max(drops.items(), key=lambda kv: kv[1]) if drops else (None, 0.0)
    # better at all (6 decimals: float noise is no improvement); see gate_and_promote
    improved = round(ours["macro_f1"], 6) > round(theirs["macro_f1"], 6)
    return {"set": label, "rows": rows, "challenger_macro_f1": ours["macro_f1"],
            "champion_macro_f1": theirs["macro_f1"], "macro_f1_ok": f1_ok,
            "improved": improved,
            "worst_recall_drop": {"class": worst[0], "drop": worst[1]},
            "recall_drops_over_margin": lost, "passed": f1_ok and not lost}


def _describe(check: dict[str, Any], policy: GatePolicy) -> str:
    text = (f"{check['set']} ({check['rows']} flows): macro-F1 {check['challenger_macro_f1']:.4f}"
            f" vs {check['champion_macro_f1']:.4f}")
    if not check["macro_f1_ok"]:
        text += f" [lower by more than {policy.tolerance}]"
    if check["recall_drops_over_margin"]:
        text += (f" [recall drops over {policy.recall_margin}: "
                 + ", ".join(f"{c} -{d:.3f}" for c, d in check["recall_drops_over_margin"].items())
                 + "]")
    return text


def gate_and_promote(client: MlflowClient, name: str, version: str,
                     policy: GatePolicy | None = None, *, lock_uri: str = "",
                     lock_dir: Path | None = None, tolerance: float | None = None,
                     floor: float | None = None) -> GateDecision:
    """Gate ``version`` against the champion; move the aliases (under the lock) if it wins.

    A failed gate tags the version and leaves every alias untouched.
    """
    policy = policy or GatePolicy()
    if tolerance is not None or floor is not None:  # the skeleton's keyword arguments
        policy = GatePolicy(tolerance=policy.tolerance if tolerance is None else tolerance,
                            recall_margin=policy.recall_margin,
                            floor=policy.floor if floor is None else floor,
                            min_support=policy.min_support)
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "flowguard-locks"
    challenger = client.get_model_version(name, version)
    newest = load_run_frame(client, challenger.run_id, HOLDOUT_ARTIFACT)
    model, classes = load_model(client, name, version)
    ours_newest = score(model, classes, newest)
    with promotion_lock(name, lock_uri, lock_dir):
        current = champion_version(client, name)  # re-read under the lock
        frozen = frozen_holdout(client, name)
        checks: list[dict[str, Any]] = []
        theirs_f1 = None
        if current is None or current == version:
            promoted = ours_newest["macro_f1"] >= policy.floor
            reason = (f"first model: macro-F1 {ours_newest['macro_f1']:.4f} "
                      f"{'>=' if promoted else '<'} floor {policy.floor} on {len(newest)} "
                      "holdout flows")
        else:
            champ_model, champ_classes = load_model(client, name, current)
            theirs_newest = score(champ_model, champ_classes, newest)
            theirs_f1 = theirs_newest["macro_f1"]
            checks.append(compare(ours_newest, theirs_newest, len(newest), "newest window", policy))
            if frozen is not None:
                frame = frozen[1]
                checks.append(compare(score(model, classes, frame),
                                      score(champ_model, champ_classes, frame), len(frame),
                                      f"frozen holdout (run {frozen[0][:8]})", policy))
            floor_ok = ours_newest["macro_f1"] >= policy.floor
            # The tolerance lets a challenger be slightly worse on one set; it must still be
            # better on some set, or a tie (same data, same model) would replace the champion
            # and push the real previous champion out of `previous`.
            improved = any(c["improved"] for c in checks)
            promoted = floor_ok and improved and all(c["passed"] for c in checks)
            reason = (f"challenger v{version} vs champion v{current}: "
                      + "; ".join(_describe(c, policy) for c in checks)
                      + ("" if floor_ok else f"; below floor {policy.floor}")
                      + ("" if improved else "; no better than the champion on any set "
                         "(a tie does not replace it)"))
        decision = GateDecision(version, promoted, reason, ours_newest["macro_f1"], current,
                                theirs_f1, checks, frozen[0] if frozen else None)
        client.set_model_version_tag(name, version, "gate", "passed" if promoted else "failed")
        client.set_model_version_tag(name, version, "gate_reason", reason[:5000])
        client.set_model_version_tag(name, version, "gate_compared_with", current or "none")
        if promoted:
            if current is not None and current != version:
                client.set_registered_model_alias(name, PREVIOUS, current)
            client.set_registered_model_alias(name, CHAMPION, version)
            if frozen is None:
                client.set_registered_model_tag(name, FROZEN_HOLDOUT_TAG, challenger.run_id)
                decision.frozen_holdout_run_id = challenger.run_id
    log.info("gate %s: %s", "passed" if promoted else "failed", reason)
    return decision


LAST_ROLLBACK_TAG = "last_rollback"


def rollback_to(client: MlflowClient, name: str, version: str | None = None, *,
                lock_uri: str = "", lock_dir: Path | None = None) -> dict[str, Any]:
    """Make ``version`` (default: ``previous``) the champion; idempotent.

    ``previous`` then names the demoted version (so ``rollback_to(<it>)`` undoes this), and
    the registered model's ``last_rollback`` tag records the move: a second call without a
    version finds the champion already rolled back and changes nothing (before, it swapped
    the two back). A version must exist and have passed the gate. Returns the champion, the
    previous version, whether anything changed and a sentence saying what happened.
    Raises :class:`LookupError` naming what is missing.
    """
    import json

    import mlflow

    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "flowguard-locks"
    with promotion_lock(name, lock_uri, lock_dir):
        current = champion_version(client, name)
        prior = _alias(client, name, PREVIOUS)
        try:
            last = json.loads(client.get_registered_model(name).tags.get(LAST_ROLLBACK_TAG)
                              or "{}")
        except mlflow.exceptions.MlflowException as exc:
            raise LookupError(f"no registered model {name!r}: train one first") from exc
        if version is None:
            if current is not None and last.get("to") == current and last.get("from") == prior:
                return {"champion": current, "previous": prior, "changed": False,
                        "message": f"already rolled back from v{prior} to v{current}; "
                                   f"`flowguard rollback {prior}` undoes it"}
            if prior is None:
                raise LookupError(f"{name!r} has no '{PREVIOUS}' version to roll back to "
                                  "(name a version: flowguard rollback VERSION)")
            target = prior
        else:
            target = str(version)
            try:
                gate = client.get_model_version(name, target).tags.get("gate")
            except mlflow.exceptions.MlflowException as exc:
                raise LookupError(f"{name!r} has no version {target}") from exc
            if gate != "passed":
                raise LookupError(f"{name!r} v{target} did not pass the promotion gate "
                                  f"(gate: {gate or 'never run'}); only a version that "
                                  "passed it can serve")
            if target == current:
                return {"champion": current, "previous": prior, "changed": False,
                        "message": f"v{current} is already the champion"}
        client.set_registered_model_alias(name, CHAMPION, target)
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current)
            client.set_model_version_tag(name, current, "rolled_back",
                                         f"demoted to v{target} by a rollback")
        client.set_registered_model_tag(name, LAST_ROLLBACK_TAG,
                                        json.dumps({"from": current, "to": target}))
    log.info("rolled back %s: champion v%s -> v%s", name, current, target)
    return {"champion": target, "previous": current, "changed": True,
            "message": f"champion v{current} -> v{target}; previous is now v{current}"}


def rollback(client: MlflowClient, name: str, *, lock_uri: str = "",
             lock_dir: Path | None = None, version: str | None = None) -> str:
    """:func:`rollback_to` returning only the champion's version."""
    return rollback_to(client, name, version, lock_uri=lock_uri, lock_dir=lock_dir)["champion"]


def summarise_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every version, oldest first: its run (id, experiment, name, macro-F1, trigger, the
    newest training day), gate outcome and reason, rollback mark and aliases. The demo's
    summary and the health page both read this."""
    from datetime import UTC, datetime

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
        rows.append({
            "version": str(mv.version), "run_id": mv.run_id,
            "experiment_id": run.info.experiment_id, "run_name": run.info.run_name,
            "macro_f1": run.data.metrics.get("macro_f1"),
            # the newest training day (the DAG's lineage), else the day the run started
            "trained_through": ((run.data.tags.get("lineage.training_days") or "").split(",")[-1]
                                or datetime.fromtimestamp(run.info.start_time / 1000, UTC)
                                .date().isoformat()),
            "gate": mv.tags.get("gate", ""), "gate_reason": mv.tags.get("gate_reason", ""),
            "rolled_back": mv.tags.get("rolled_back", ""),
            "aliases": sorted(aliases.get(str(mv.version), [])),
            "trigger": run.data.tags.get("lineage.trigger_reason", "")})
    return rows
