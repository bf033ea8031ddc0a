"""Environment of the Airflow processes of the embedded profile (demo, tests, `make airflow`).

The committed ``airflow.cfg`` is used through ``AIRFLOW_CONFIG``; everything that depends on
where the project lives is passed as ``AIRFLOW__*`` variables, which override that file.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flowguard.config import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

# Ports of the embedded profile, each a setting (environment variable, default).
PORT_SETTINGS = {
    "api": ("FLOWGUARD_AIRFLOW_PORT", 8080),  # api-server: UI, REST API, execution API
    "worker log server": ("FLOWGUARD_WORKER_LOG_PORT", 8793),  # binds all interfaces
    "triggerer log server": ("FLOWGUARD_TRIGGERER_LOG_PORT", 8794),  # binds all interfaces
    "mlflow": ("FLOWGUARD_MLFLOW_PORT", 5000),  # `make mlflow`
}


class PortInUse(RuntimeError):
    """A port the embedded profile needs is taken (another Airflow, often `make airflow`)."""


def port_setting(name: str) -> int:
    """The port of ``name`` (a key of :data:`PORT_SETTINGS`) from its environment variable."""
    variable, default = PORT_SETTINGS[name]
    value = os.environ.get(variable) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{variable}={value!r} is not a port number (1-65535)")
    return int(value)


def airflow_ports(api_port: int | None = None) -> dict[str, int]:
    """The ports ``airflow standalone`` listens on: the API's and the two log servers'."""
    return {"api": api_port or port_setting("api"),
            "worker log server": port_setting("worker log server"),
            "triggerer log server": port_setting("triggerer log server")}


def check_ports_free(ports: dict[str, int]) -> None:
    """Raise :class:`PortInUse` naming every taken port and the setting that moves it.

    Binds each port on all interfaces (the log servers bind there whatever the API's host),
    so a server on 127.0.0.1 or 0.0.0.0 is found before Airflow starts and answers a health
    check that was meant for ours.
    """
    import socket

    taken = []
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # a closed connection's TIME_WAIT is no user; a listener still refuses the bind
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - probing, not serving
            except OSError:
                variable = PORT_SETTINGS[name][0]
                taken.append(f"{port} ({name}; set {variable} to move it)")
    if taken:
        raise PortInUse(
            "port(s) in use: " + ", ".join(taken) + ". Another Airflow may be running (`make "
            "airflow` serves the demo's state on these ports): stop it, or pick free ports, "
            "e.g. FLOWGUARD_AIRFLOW_PORT=8090 FLOWGUARD_WORKER_LOG_PORT=8893 "
            "FLOWGUARD_TRIGGERER_LOG_PORT=8894 make demo")


def airflow_environment(home: Path, port: int = 8080) -> dict[str, str]:
    """Variables for Airflow on SQLite under ``home/airflow`` with this project's DAGs."""
    airflow_home = home / "airflow"
    ports = airflow_ports(port)
    return {
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker log server"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["triggerer log server"]),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(airflow_home / "bundles"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(airflow_home),
        # connection secrets (a Slack token, an SMTP password) are stored encrypted
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(airflow_home),
        "FLOWGUARD_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FEAST_USAGE": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def airflow_process_env(home: Path, port: int = 8080, **extra: str) -> dict[str, str]:
    """The whole environment of an Airflow process: this one's, the profile's variables, and
    the runtime's bin folder first on PATH (standalone starts its components as `airflow`)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **airflow_environment(home, port), **extra,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


# Files under AIRFLOW_HOME that hold secrets: the metadata database (connections, variables),
# the generated admin password and standalone's log (which prints that password).
PRIVATE_FILES = ("airflow.db", "simple_auth_manager_passwords.json.generated", "standalone.log",
                 "jwt_secret", "fernet_key")


def secure_airflow_home(airflow_home: Path) -> None:
    """AIRFLOW_HOME owner-only (0700), and its secret-bearing files 0600: Airflow creates them
    with the process umask (world-readable), the folder's mode keeps other users out."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    airflow_home.chmod(0o700)
    for name in PRIVATE_FILES:
        path = airflow_home / name
        if path.is_file() and not path.is_symlink():
            path.chmod(0o600)


def _private_secret(path: Path, make: Callable[[], str]) -> str:
    """A per-home random secret kept in a 0600 file (created on first use, never committed)."""
    if not path.exists():
        secure_airflow_home(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created by a concurrent process meanwhile
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


def jwt_secret(airflow_home: Path) -> str:
    """A per-home random JWT secret, kept in a 0600 file (created on first use)."""
    secure_airflow_home(airflow_home)
    return _private_secret(airflow_home / "jwt_secret", lambda: secrets.token_urlsafe(48))


def fernet_key(airflow_home: Path) -> str:
    """A per-home Fernet key (32 random bytes, url-safe base64), kept in a 0600 file created
    on first run: the committed airflow.cfg leaves ``fernet_key`` empty, which would store
    connection passwords in clear. Losing the file makes the stored secrets unreadable."""
    import base64

    return _private_secret(airflow_home / "fernet_key",
                           lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
