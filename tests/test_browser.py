"""A real headless browser (Debian's chromium, driven by playwright) against the real Airflow
api-server on a free port: an unauthenticated request to /flowguard is refused, a user logs in
through Airflow's login page, then the health page and the data docs render with no console
errors and fit a 1,400 px window. Screenshots go to $FLOWGUARD_SCREENSHOTS (if set)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowguard.airflow_env import airflow_process_env
from tests.conftest import HANG_GUARD_S
from tests.test_health_page import state  # noqa: F401 - the fixture: days, drift, a model

pytestmark = pytest.mark.slow
CHROMIUM = Path(os.environ.get("FLOWGUARD_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = secrets.token_urlsafe(16)  # a throwaway login for the test server, new each run


def _need_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (requirements.txt)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_server(state, synthetic_week: Path, tmp_path: Path):  # noqa: F811 - imported fixture
    """`airflow api-server` over the fixture's home (plus data docs of a validated Tuesday),
    its own database, on a free port."""
    _need_browser()
    from datetime import UTC, date, datetime

    import httpx

    from flowguard.config import get_settings
    from flowguard.datadocs import make_offline
    from flowguard.ingest import read_day
    from flowguard.monitoring import write_report
    from flowguard.validation import build_data_docs, get_context, validate_batch
    from tests.test_drift_report_text import sample_report

    home, _ = state
    context = get_context(get_settings().gx_dir)
    validate_batch(read_day(synthetic_week, date(2017, 7, 4)), context,
                   (datetime(2017, 7, 4, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC)),
                   "browser-day")
    build_data_docs(context)
    make_offline(get_settings().data_docs_index.parent)
    history = json.loads((home / "reports" / "drift" / "history.json").read_text())
    write_report(sample_report("2017-07-04"), home / "reports" / "drift" / "2017-07-04", history)
    port = _free_port()
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = airflow_process_env(home, port, FLOWGUARD_WORKER_LOG_PORT=str(_free_port()),
                              FLOWGUARD_TRIGGERER_LOG_PORT=str(_free_port()),
                              AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
                              AIRFLOW__API__WORKERS="1")
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=HANG_GUARD_S)
    log = (tmp_path / "api-server.log").open("wb")
    proc = subprocess.Popen([airflow, "api-server", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 1200  # generous: only a bound on a broken start
        while True:
            assert proc.poll() is None, (tmp_path / "api-server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "api-server did not answer"
            time.sleep(1)
        yield base, home
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        log.close()


def _shot(page, name: str) -> None:
    folder = os.environ.get("FLOWGUARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_health_page_and_data_docs_in_a_real_browser(api_server) -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    base, home = api_server
    assert httpx.get(f"{base}/flowguard/health", timeout=300).status_code == 401
    assert httpx.get(f"{base}/flowguard/docs/index.html", timeout=30).status_code == 401

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        response = page.goto(f"{base}/flowguard/health")
        assert response.status == 401  # the browser, not logged in, is refused too
        errors.clear()  # the refusal's own console line

        page.goto(f"{base}/auth/login/?next={base}/flowguard/health")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/flowguard/health", timeout=120_000)
        assert page.title() == "flowguard health"
        page.wait_for_selector("svg")
        links = page.eval_on_selector_all("svg a", "els => els.map(e => "
                                          "e.getAttribute('xlink:href') || e.getAttribute('href'))")
        assert any("/flowguard/reports/drift/" in u for u in links), links
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        _shot(page, "health")

        page.goto(f"{base}/flowguard/reports/drift/2017-07-04/drift_report.html")
        assert page.locator("h1").inner_text() == "Drift report: window 2017-07-04"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        _shot(page, "drift-report")

        page.goto(f"{base}/flowguard/docs/index.html")
        page.wait_for_selector("table tbody tr", timeout=60_000)  # bootstrap-table filled it
        assert page.evaluate("typeof window.jQuery") == "function"
        _shot(page, "data-docs")
        browser.close()
    assert errors == [], errors
