"""Embedded profile secrets (issue 19): a Fernet key generated on first run (not committed),
and AIRFLOW_HOME's secret-bearing files readable by their owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from flowguard.airflow_env import airflow_environment, airflow_process_env
from tests.conftest import HANG_GUARD_S, PROJECT


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fernet_key_generated_once_and_owner_only(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    home = tmp_path / "var"
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True)
    for name in ("airflow.db", "simple_auth_manager_passwords.json.generated", "standalone.log"):
        (airflow_home / name).write_text("secret")
        (airflow_home / name).chmod(0o644)  # as Airflow leaves them under umask 022
    first = airflow_environment(home)["AIRFLOW__CORE__FERNET_KEY"]
    assert Fernet(first.encode()).decrypt(Fernet(first.encode()).encrypt(b"x")) == b"x"
    assert airflow_environment(home)["AIRFLOW__CORE__FERNET_KEY"] == first  # stable
    assert airflow_environment(tmp_path / "other")["AIRFLOW__CORE__FERNET_KEY"] != first
    assert _mode(airflow_home) == 0o700
    for name in ("fernet_key", "jwt_secret", "airflow.db",
                 "simple_auth_manager_passwords.json.generated", "standalone.log"):
        assert _mode(airflow_home / name) == 0o600, name
    cfg = (PROJECT / "airflow.cfg").read_text()
    assert first not in cfg


def test_airflow_encrypts_connection_secrets_with_it(tmp_path: Path) -> None:
    env = airflow_process_env(tmp_path / "var")
    code = ("from airflow.models.crypto import get_fernet; f = get_fernet(); "
            "print(f.is_encrypted, f.decrypt(f.encrypt(b'token')).decode())")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": os.pathsep.join(
        sys.path)}, capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
    assert done.stdout.split()[-2:] == ["True", "token"], done.stderr[-2000:]
