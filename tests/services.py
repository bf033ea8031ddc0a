"""Throwaway PostgreSQL databases and Redis databases for the production-profile tests.

Each test run creates its own databases (random suffix) on the PostgreSQL of this machine or
CI (127.0.0.1:5432, user postgres, trust) and claims an empty Redis database (a db number of
its own on 127.0.0.1:6379), and drops / flushes them afterwards. A service that cannot be
reached skips the test with the reason, except when ``CI`` is set: CI must prove the profile,
so there the test fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

PG_HOST = os.environ.get("FLOWGUARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FLOWGUARD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("FLOWGUARD_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("FLOWGUARD_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("FLOWGUARD_TEST_REDIS_PORT", "6379"))
CLAIM_KEY = "flowguard:test-claim"


def unavailable(reason: str) -> None:
    """Skip on a laptop without the service; fail in CI, where the service must exist."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}: .ci/run starts PostgreSQL and Redis", pytrace=False)
    pytest.skip(reason)


def pg_url(database: str, driver: str = "psycopg2") -> str:
    return f"postgresql+{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                connect_timeout=3)
    except psycopg2.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER} ({exc})".strip())
    conn.autocommit = True
    return conn


def pg_query(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query on one of the test's databases."""
    import psycopg2

    with psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as conn:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()


@contextmanager
def pg_databases(*purposes: str) -> Iterator[dict[str, str]]:
    """Create one database per purpose (``flowguard_<purpose>_<suffix>``); drop them after."""
    suffix = secrets.token_hex(4)
    names = {p: f"flowguard_{p}_{suffix}" for p in purposes}
    admin = pg_admin()
    try:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        yield names
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass(frozen=True)
class RedisDb:
    host: str
    port: int
    db: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    @property
    def feast_connection_string(self) -> str:
        return f"{self.host}:{self.port},db={self.db}"

    def client(self):
        import redis

        return redis.Redis(host=self.host, port=self.port, db=self.db)


@contextmanager
def redis_db() -> Iterator[RedisDb]:
    """Claim an empty Redis database (1-15) for this run; flush it afterwards.

    Feast's Redis keys carry no configurable prefix (entity key + project name), so a database
    of its own is what keeps a test run apart from everything else on the server.
    """
    import redis

    token = secrets.token_hex(8)
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc})")
    claimed = None
    for db in secrets.SystemRandom().sample(range(1, 16), 15):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        # Empty and claimed atomically by us (a concurrent run picks another database).
        if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=3600):
            claimed = RedisDb(REDIS_HOST, REDIS_PORT, db)
            break
    if claimed is None:
        unavailable(f"no empty Redis database (1-15) on {REDIS_HOST}:{REDIS_PORT}")
    try:
        yield claimed
    finally:
        client = claimed.client()
        if client.get(CLAIM_KEY) == token.encode():
            client.flushdb()


def production_environment(databases: dict[str, str], redis: RedisDb) -> dict[str, str]:
    """The variables that switch the code to the production profile (docker-compose's
    ``x-airflow-common`` environment, with this machine's hosts and this run's databases)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(databases["airflow"]),
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "flowguard.celery_config.CELERY_CONFIG",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(databases["airflow"]).replace(
            "postgresql+psycopg2", "postgresql"),
        "MLFLOW_TRACKING_URI": pg_url(databases["mlflow"]),
        "FLOWGUARD_FEAST_YAML": "feature_store.production.yaml",
        "FLOWGUARD_FEAST_REGISTRY_URL": pg_url(databases["feast"], driver="psycopg"),
        "FLOWGUARD_FEAST_REDIS": redis.feast_connection_string,
    }
