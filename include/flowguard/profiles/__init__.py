"""Dataset profiles: everything that differs between datasets, as data.

One YAML file per dataset in this folder (``cicids2017.yaml``, ``unsw_nb15.yaml``), chosen by
``FLOWGUARD_DATASET`` (default ``cicids2017``; the train and monitor DAGs also take it as a
Param). A profile names:

- ``datasets``: the layouts' datasets (:data:`flowguard.schema.LAYOUTS`) its ingest accepts,
  each validated by its own Great Expectations suite (:data:`flowguard.validation.CONTRACTS`);
  ``contract`` the main one;
- ``feature_block``: the flow statistics (:data:`flowguard.schema.FEATURE_BLOCKS`), and
  ``encoded``: categorical fields turned into ``<field>_code`` features for XGBoost;
- ``labels``, ``benign``, ``families``: the label taxonomy and its shared families;
- ``host``: what the per-source-host aggregates are made of in this dataset's fields;
- ``landing``, ``lake``, ``quarantine``: its folders under ``FLOWGUARD_HOME``;
- ``feast``: its sources, views and versioned feature services (``feature_repo/`` declares
  every profile's; the entities ``flow`` and ``src_host`` are shared);
- ``model_name``: its registered model; ``monitoring``: monitoring settings it sets otherwise;
- ``synth``: the module that writes its synthetic week (``WEEK_START``, ``generate_week``),
  which ``make demo`` runs.

The rules (row accounting, quarantine, point-in-time joins, the promotion gate, the drift
check) are one implementation that reads the active profile. A third dataset is a new file
here plus its loader mapping in :mod:`flowguard.schema` and :mod:`flowguard.ingest`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PROFILE_DIR = Path(__file__).resolve().parent
DEFAULT = "cicids2017"


class ProfileError(ValueError):
    """An unknown dataset or a profile file that does not hold what a profile needs."""


@dataclass(frozen=True)
class FeastNames:
    flow_source: str
    host_source: str
    flow_view: str
    host_view: str
    feature_service: str
    flows_only_service: str
    host_features: tuple[str, ...]
    host_view_features: tuple[str, ...]

    @property
    def service_version(self) -> str:
        return self.feature_service.rsplit("_", 1)[-1]


@dataclass(frozen=True)
class Profile:
    """One dataset's profile (see the module docstring for each field)."""

    name: str
    title: str
    datasets: tuple[str, ...]
    contract: str
    feature_block: str
    encoded: dict[str, tuple[str, ...]]
    labels: tuple[str, ...]
    benign: str
    families: dict[str, str]
    host: dict[str, Any]
    landing: str
    lake: str
    quarantine: str
    feast: FeastNames
    model_name: str
    monitoring: dict[str, Any] = field(default_factory=dict)
    synth: str = "flowguard.synth"

    @property
    def block_features(self) -> list[str]:
        """The dataset's numeric flow statistics, as the loader writes them."""
        from flowguard.schema import FEATURE_BLOCKS

        return list(FEATURE_BLOCKS[self.feature_block])

    @property
    def code_features(self) -> list[str]:
        return [f"{name}_code" for name in self.encoded]

    @property
    def flow_features(self) -> list[str]:
        """The per-flow features of the model and of the flow view: statistics, then codes."""
        return self.block_features + self.code_features

    @property
    def host_features(self) -> list[str]:
        return list(self.feast.host_features)

    @property
    def model_features(self) -> list[str]:
        """The model's inputs in the model's order (the feature service's)."""
        return self.flow_features + self.host_features

    @property
    def host_inputs(self) -> list[str]:
        """The columns of a validated partition the host aggregates read."""
        spec = self.host
        cols = ["src_ip", "event_timestamp", spec["dst_port"], *spec["bytes"], *spec["packets"],
                spec["duration"]]
        for key in ("syn_only", "rst"):
            cols += [v for k, v in spec[key].items() if k in ("positive", "zero", "column")]
        return list(dict.fromkeys(cols))

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the ``<field>_code`` columns (float: Feast's and XGBoost's type).

        A value not in the profile's list gets the "other" code ``len(list)``; a missing
        field (NaN, empty) gets NaN, which XGBoost routes as missing.
        """
        import numpy as np

        for name, values in self.encoded.items():
            if name not in frame:
                frame[f"{name}_code"] = np.nan
                continue
            index = {v: float(i) for i, v in enumerate(values)}
            text = frame[name].astype("string").str.strip()
            present = (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)
            known = text.astype(object).map(index).to_numpy(dtype="float64")
            frame[f"{name}_code"] = np.where(present, np.where(np.isnan(known), len(values),
                                                               known), np.nan)
        return frame

    def indicator(self, frame: pd.DataFrame, key: str) -> pd.Series:
        """The ``syn_only`` or ``rst`` indicator of each flow (1.0 or 0.0), from ``host``."""
        spec = self.host[key]
        if "column" in spec:
            text = frame[spec["column"]].astype("string").str.strip()
            return text.isin(list(spec["in"])).fillna(False).astype(float)
        hit = frame[spec["positive"]] > 0
        if "zero" in spec:
            hit &= frame[spec["zero"]] == 0
        return hit.astype(float)

    def synthetic_week(self) -> Any:
        """The module of the profile's synthetic week (``WEEK_START``, ``generate_week``)."""
        import importlib

        return importlib.import_module(self.synth)

    def summary(self) -> dict[str, Any]:
        """What a person or a run's lineage needs to know about the profile."""
        return {"dataset": self.name, "title": self.title, "model_name": self.model_name,
                "feature_service": self.feast.feature_service,
                "flow_features": len(self.flow_features),
                "host_features": len(self.host_features), "labels": list(self.labels)}


def names() -> list[str]:
    """The datasets that have a profile (a ``<name>.yaml`` here)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


_REQUIRED = ("name", "title", "datasets", "contract", "feature_block", "labels", "benign",
             "families", "host", "landing", "lake", "quarantine", "feast", "model_name")


@lru_cache(maxsize=8)
def load(name: str) -> Profile:
    """The profile of dataset ``name``; :class:`ProfileError` names what is wrong."""
    import yaml

    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ProfileError(f"FLOWGUARD_DATASET={name!r}: no such dataset profile; known: "
                           f"{', '.join(names())} (a new dataset is a {PROFILE_DIR}/<name>.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProfileError(f"{path}: missing {', '.join(missing)}")
    if data["name"] != name:
        raise ProfileError(f"{path}: name {data['name']!r} differs from the file's {name!r}")
    unfamilied = [label for label in data["labels"] if label not in data["families"]]
    if unfamilied or data["benign"] not in data["labels"]:
        raise ProfileError(f"{path}: labels without a family {unfamilied} or benign "
                           f"{data['benign']!r} not among the labels")
    feast = dict(data["feast"])
    for key in ("host_features", "host_view_features"):
        feast[key] = tuple(feast[key])
    return Profile(
        name=name, title=data["title"], datasets=tuple(data["datasets"]),
        contract=data["contract"], feature_block=data["feature_block"],
        encoded={k: tuple(str(v) for v in vs) for k, vs in (data.get("encoded") or {}).items()},
        labels=tuple(data["labels"]), benign=data["benign"], families=dict(data["families"]),
        host=dict(data["host"]), landing=data["landing"], lake=data["lake"],
        quarantine=data["quarantine"], feast=FeastNames(**feast),
        model_name=data["model_name"], monitoring=dict(data.get("monitoring") or {}),
        synth=data.get("synth") or "flowguard.synth")


def active_name() -> str:
    return (os.environ.get("FLOWGUARD_DATASET") or DEFAULT).strip().lower()


def active() -> Profile:
    """The profile ``FLOWGUARD_DATASET`` selects (read at each call: a task may set it)."""
    return load(active_name())


def all_profiles() -> list[Profile]:
    return [load(name) for name in names()]


def for_dataset(dataset: str) -> Profile:
    """The profile whose ingest accepts a layout's ``dataset`` (``cicids2017_improved`` ->
    ``cicids2017``)."""
    for profile in all_profiles():
        if dataset in profile.datasets:
            return profile
    raise ProfileError(f"no dataset profile accepts {dataset!r} files")


@contextlib.contextmanager
def selected(name: str | None) -> Iterator[Profile]:
    """Run a block under dataset ``name`` (a DAG run's ``dataset`` Param); ``None`` or empty
    keeps ``FLOWGUARD_DATASET``. Checked first, so a wrong name fails before any work."""
    from flowguard.config import environment

    if not name:
        yield active()
        return
    profile = load(str(name).strip().lower())
    with environment(FLOWGUARD_DATASET=profile.name):
        yield profile
