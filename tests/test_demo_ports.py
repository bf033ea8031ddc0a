"""The demo and `flowguard airflow` check their ports before they start or wipe anything,
and say which port, what uses it and which setting moves it; ports are settings."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowguard.airflow_env import PortInUse, airflow_environment, airflow_ports, check_ports_free
from tests.conftest import HANG_GUARD_S


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other server listens on (on 127.0.0.1 only, as `make airflow` does)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ports_are_settings(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("FLOWGUARD_WORKER_LOG_PORT", "18793")
    monkeypatch.setenv("FLOWGUARD_TRIGGERER_LOG_PORT", "18794")
    assert airflow_ports(18080) == {"api": 18080, "worker log server": 18793,
                                    "triggerer log server": 18794}
    env = airflow_environment(home, 18080)
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "18793"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "18794"
    assert env["AIRFLOW__API__PORT"] == "18080"
    monkeypatch.setenv("FLOWGUARD_WORKER_LOG_PORT", "eighty")
    with pytest.raises(ValueError, match="FLOWGUARD_WORKER_LOG_PORT='eighty' is not a port"):
        airflow_ports(18080)


def test_a_taken_port_is_named_with_its_setting(busy_port: int) -> None:
    free = _free_port()
    check_ports_free({"api": free})  # a free port passes
    with pytest.raises(PortInUse, match=rf"{busy_port} \(worker log server; set "
                                        r"FLOWGUARD_WORKER_LOG_PORT to move it\)"):
        check_ports_free({"api": free, "worker log server": busy_port})


def test_demo_stops_before_wiping_or_starting(busy_port: int, home: Path, capsys) -> None:
    from flowguard.demo import Demo

    keep = home / "mlflow" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("the previous demo's state")
    assert Demo(port=busy_port).run() == 1
    out = capsys.readouterr().out
    assert f"FAILED before starting: port(s) in use: {busy_port} (api; set " \
           "FLOWGUARD_AIRFLOW_PORT to move it)" in out
    assert keep.exists() and not (home / "airflow" / "standalone.log").exists()


def test_flowguard_airflow_refuses_a_taken_port(busy_port: int, home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "flowguard.cli", "airflow", "--port",
                          str(busy_port)], capture_output=True, text=True, timeout=HANG_GUARD_S,
                         check=False)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"port(s) in use: {busy_port} (api" in out.stderr and "Traceback" not in out.stderr
