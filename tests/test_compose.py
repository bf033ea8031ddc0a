"""docker-compose.yaml, Dockerfile and .env.example checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (the copy
check-jsonschema ships), before and after variable interpolation; interpolation follows the
Compose rules (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
``${VAR?error}``, ``$$``). Every variable, service, volume, mounted path and COPY source the
files name must exist; no secret may have a default; published ports bind to 127.0.0.1 unless
FLOWGUARD_BIND_ADDRESS says otherwise; the Airflow environment must carry every variable of
the profile the production test runs. The PostgreSQL init script runs for real against the
machine's PostgreSQL with throwaway names.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import HANG_GUARD_S, PROJECT
from tests.services import PG_HOST, PG_PORT, PG_USER, RedisDb, pg_query, production_environment

COMPOSE = PROJECT / "docker-compose.yaml"
ENV_EXAMPLE = PROJECT / ".env.example"
DOCKERFILE = PROJECT / "Dockerfile"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-init"}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "mlflow", "flowguard-serve"}
SECRET = re.compile(r"PASSWORD|SECRET|FERNET")
_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_]\w*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


class MissingVariable(KeyError):
    pass


def _references(text: str) -> list[tuple[str, str | None, str]]:
    """(name, operator, argument) of every variable reference in one string."""
    found = []
    for match in _VAR.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            found.append((match["named"], None, ""))
            continue
        parts = _BRACED.match(match["braced"])
        assert parts, f"unparseable interpolation ${{{match['braced']}}} in {text!r}"
        found.append((parts["name"], parts["op"], parts["arg"] or ""))
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string."""
    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        parts = _BRACED.match(match["braced"])
        name, op, arg = parts["name"], parts["op"], parts["arg"] or ""
        value = env.get(name)
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return value
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        return value or ""
    return _VAR.sub(replace, text)


def _walk(node: Any, fn) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node


def _strings(node: Any) -> list[str]:
    out: list[str] = []
    _walk(node, lambda s: out.append(s) or s)
    return out


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def _filled_env() -> dict[str, str]:
    """.env.example with every empty (secret) value filled the way it tells the user to."""
    return {k: (v or secrets.token_hex(24)) for k, v in _env_example().items()}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def rendered(raw: dict) -> dict:
    return _walk(raw, lambda s: interpolate(s, _filled_env()))


def _schema(name: str) -> dict:
    path = files("check_jsonschema.builtin_schemas.vendor") / name
    return json.loads(path.read_text())


def _validate(document: dict, schema: dict) -> None:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                 for e in errors[:10])


def test_compose_file_matches_the_compose_specification(raw: dict, rendered: dict) -> None:
    schema = _schema("compose-spec.json")
    _validate(raw, schema)
    _validate(rendered, schema)
    assert set(raw["services"]) == SERVICES


def test_a_wrong_compose_file_fails_the_schema(raw: dict) -> None:
    # The schema check is not vacuous: a misspelt key and a wrong type are reported.
    broken = json.loads(json.dumps(raw))
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    broken["services"]["mlflow"]["ports"] = "5000:5000"
    with pytest.raises(AssertionError, match="healthchek|ports"):
        _validate(broken, _schema("compose-spec.json"))


def test_every_variable_is_in_env_example_and_no_secret_has_a_default(raw: dict) -> None:
    example = _env_example()
    references = [ref for s in _strings(raw) for ref in _references(s)]
    names = {name for name, _, _ in references}
    assert names <= set(example), f"not in .env.example: {sorted(names - set(example))}"
    for name, op, arg in references:
        if SECRET.search(name):
            assert op == ":?" and arg, f"secret {name} must be ${{{name}:?message}}"
            assert example[name] == "", f".env.example must not ship a value for {name}"
        else:
            assert op in (":?", ":-"), f"{name} needs :? (required) or :- (default), has {op}"
    required = {name for name, op, _ in references if op == ":?"}
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
            "AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"} <= required
    # Optional variables document their default in .env.example, the same as the file's.
    for name, op, arg in references:
        if op == ":-":
            assert example[name] == arg, f"{name}: .env.example {example[name]!r}, compose {arg!r}"


def test_a_missing_secret_stops_start_up_naming_it(raw: dict) -> None:
    env = _filled_env()
    env.pop("REDIS_PASSWORD")
    with pytest.raises(MissingVariable, match="REDIS_PASSWORD is missing.*set REDIS_PASSWORD in .env"):
        _walk(raw, lambda s: interpolate(s, env))
    env = {**_filled_env(), "AIRFLOW_ADMIN_PASSWORD": ""}  # empty counts as missing
    with pytest.raises(MissingVariable, match="AIRFLOW_ADMIN_PASSWORD"):
        _walk(raw, lambda s: interpolate(s, env))
    with pytest.raises(MissingVariable):  # .env.example as shipped does not start
        _walk(raw, lambda s: interpolate(s, _env_example()))


def test_services_volumes_and_mounts_exist(rendered: dict) -> None:
    services = rendered["services"]
    declared_volumes = set(rendered["volumes"])
    used_volumes = set()
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("."):
                assert (PROJECT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
                used_volumes.add(source)
            assert target.startswith("/")
    assert used_volumes == declared_volumes
    for name in AIRFLOW_SERVICES:
        targets = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        for folder in ("include", "dags", "plugins", "feature_repo"):
            assert targets[f"/opt/flowguard/{folder}"] == f"./{folder}", (name, folder)
        # The committed airflow.cfg is the configuration, as in the embedded profile.
        config = services[name]["environment"]["AIRFLOW_CONFIG"]
        assert targets[config] == "./airflow.cfg"
        assert services[name]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/flowguard/dags"
    assert services["airflow-init"]["depends_on"].keys() >= {"postgres", "redis"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == \
            "service_completed_successfully"


def test_published_ports_bind_to_localhost_by_default(raw: dict) -> None:
    env = {k: v for k, v in _filled_env().items() if k != "FLOWGUARD_BIND_ADDRESS"}
    document = _walk(raw, lambda s: interpolate(s, env))
    published = [(name, port) for name, service in document["services"].items()
                 for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"airflow-apiserver", "mlflow", "flowguard-serve"}
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)
    for name in ("postgres", "redis"):  # reachable by the other containers only
        assert "ports" not in document["services"][name]


def test_airflow_environment_is_the_tested_production_profile(rendered: dict) -> None:
    tested = production_environment({"airflow": "a", "mlflow": "m", "feast": "f"},
                                    RedisDb("127.0.0.1", 6379, 1))
    for name in AIRFLOW_SERVICES:
        env = rendered["services"][name]["environment"]
        assert set(tested) <= set(env), (name, sorted(set(tested) - set(env)))
        assert env["FLOWGUARD_FEAST_YAML"] == tested["FLOWGUARD_FEAST_YAML"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "FLOWGUARD_FEAST_REGISTRY_URL"):
            assert env[key].split("://")[0] == tested[key].split("://")[0], key
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
        assert env["FLOWGUARD_FEAST_REDIS"].startswith("redis:6379,db=1,")
    assert (PROJECT / "feature_repo" / tested["FLOWGUARD_FEAST_YAML"]).is_file()
    command = rendered["services"]["mlflow"]["command"]
    backend = command[command.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://mlflow:") and backend.endswith("@postgres:5432/mlflow")


def test_serve_reads_the_registry_and_online_store_the_dags_write(raw: dict) -> None:
    serve = raw["services"]["flowguard-serve"]["environment"]  # before interpolation: the
    airflow = raw["services"]["airflow-worker"]["environment"]  # same text, secrets included
    for key in ("MLFLOW_TRACKING_URI", "FLOWGUARD_HOME", "FLOWGUARD_FEAST_YAML",
                "FLOWGUARD_FEAST_REGISTRY_URL", "FLOWGUARD_FEAST_REDIS"):
        assert serve[key] == airflow[key], key
    assert raw["services"]["flowguard-serve"]["command"][:2] == ["flowguard", "serve"]


def _dockerfile_instructions() -> list[tuple[str, list[str]]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.split()))
    return out


def test_dockerfile_copies_only_what_exists_and_builds_from_the_locks() -> None:
    ignored = {line.strip() for line in (PROJECT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copies = [args for word, args in _dockerfile_instructions() if word in ("COPY", "ADD")]
    assert copies
    sources = set()
    for args in copies:
        assert not any(a.startswith("--from") for a in args)
        paths = [a for a in args if not a.startswith("--")]
        for source in paths[:-1]:
            assert (PROJECT / source).exists(), f"Dockerfile COPY source {source} missing"
            assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"
            sources.add(source)
    assert {"requirements.txt", "requirements-drift.txt", "pyproject.toml", "include",
            "dags", "plugins", "feature_repo", "airflow.cfg"} <= sources
    text = DOCKERFILE.read_text()
    assert "-r requirements.txt" in text and "-r requirements-drift.txt" in text
    # The drift runtime's torch is the CPU build, from PyTorch's CPU index.
    assert "download.pytorch.org/whl/cpu" in text and "--no-deps" in text
    torch = [line for line in (PROJECT / "requirements-drift.txt").read_text().splitlines()
             if line.startswith("torch==")]
    assert torch == ["torch==2.13.0+cpu"]
    assert {".venv", ".venv-drift", "var", ".env", ".git"} <= ignored


def test_postgres_init_script_creates_a_role_and_database_each() -> None:
    from tests.services import pg_admin

    admin = pg_admin()
    suffix = secrets.token_hex(3)
    names = [f"fgtest_{suffix}_{n}" for n in ("airflow", "mlflow")]
    env = {**os.environ, "PGHOST": PG_HOST, "PGPORT": str(PG_PORT), "POSTGRES_USER": PG_USER,
           "FLOWGUARD_DATABASES": " ".join(names),
           **{f"{n.upper()}_DB_PASSWORD": secrets.token_hex(8) for n in names}}
    try:
        done = subprocess.run(["bash", str(PROJECT / "deploy/postgres/init-databases.sh")],
                              env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
        assert done.returncode == 0, done.stderr
        for name in names:
            owner = pg_query("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                         "WHERE datname = %s", (name,))
            assert owner == [(name,)]
        missing = {k: v for k, v in env.items() if k != f"{names[0].upper()}_DB_PASSWORD"}
        missing["FLOWGUARD_DATABASES"] = names[0]
        failed = subprocess.run(["bash", str(PROJECT / "deploy/postgres/init-databases.sh")],
                                env=missing, capture_output=True, text=True, timeout=HANG_GUARD_S)
        assert failed.returncode != 0
        assert f"{names[0].upper()}_DB_PASSWORD must be set" in failed.stderr
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.close()


def test_mlflow_server_is_behind_basic_auth_with_credentials_from_env(raw: dict,
                                                                     rendered: dict) -> None:
    """Issue 19: without authentication any process on the network could move `champion`."""
    import configparser

    mlflow = rendered["services"]["mlflow"]
    command = mlflow["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = raw["services"]["mlflow"]["environment"]
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"].startswith("${MLFLOW_ADMIN_USER:?")
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SECRET_KEY:?")
    common = raw["x-airflow-common"]["environment"]
    assert common["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_AUTH_ADMIN_USERNAME"]
    assert common["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    ini = env["MLFLOW_AUTH_CONFIG_PATH"]
    mounted = {m.split(":")[1]: m.split(":")[0] for m in raw["services"]["mlflow"]["volumes"]
               if m.startswith("./")}
    config = configparser.ConfigParser()
    config.read(PROJECT / mounted[ini])
    assert config["mlflow"]["authorization_function"].endswith("authenticate_request_basic_auth")
    assert "admin_password" not in config["mlflow"]  # no credentials in the repo
    # the image installs the auth app's extra (Flask-WTF) for the server
    assert '"mlflow[auth]==' in DOCKERFILE.read_text()
