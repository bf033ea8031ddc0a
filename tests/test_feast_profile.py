"""Selecting the Feast configuration of a profile: FLOWGUARD_FEAST_YAML, placeholders checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowguard.config import feast_yaml
from tests.conftest import PROJECT

REPO = PROJECT / "feature_repo"


def test_embedded_yaml_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWGUARD_FEAST_YAML", raising=False)
    assert feast_yaml(REPO) == REPO / "feature_store.yaml"


def test_production_yaml_needs_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGUARD_FEAST_YAML", "feature_store.production.yaml")
    monkeypatch.delenv("FLOWGUARD_FEAST_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FLOWGUARD_FEAST_REDIS", raising=False)
    with pytest.raises(KeyError, match="FLOWGUARD_FEAST_REDIS, FLOWGUARD_FEAST_REGISTRY_URL"):
        feast_yaml(REPO)
    monkeypatch.setenv("FLOWGUARD_FEAST_YAML", "no_such.yaml")
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        feast_yaml(REPO)


def test_get_store_reads_the_production_yaml(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    from flowguard.features import get_store

    monkeypatch.setenv("FLOWGUARD_FEAST_YAML", str(REPO / "feature_store.production.yaml"))
    monkeypatch.setenv("FLOWGUARD_FEAST_REGISTRY_URL", "postgresql+psycopg://u@db.example:5432/feast")
    monkeypatch.setenv("FLOWGUARD_FEAST_REDIS", "redis.example:6379,db=1,password=p")
    store = get_store(REPO, home)  # connects lazily: nothing is contacted here
    assert store.config.registry.path == "postgresql+psycopg://u@db.example:5432/feast"
    assert store.config.online_store.type == "redis"
    assert store.config.online_store.connection_string == "redis.example:6379,db=1,password=p"
    assert store.config.offline_store.type == "duckdb"
    assert store.config.project == "flowguard"
