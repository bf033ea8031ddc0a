"""Data docs that read as what they are and work offline: a day with a few quarantined rows
shows as Succeeded (row-level rules carry `mostly`; Failed means the batch was refused), and
every page loads its scripts and styles from the site itself, also through the plugin."""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest

from flowguard.datadocs import make_offline
from flowguard.ingest import read_day
from flowguard.validation import BatchRejected, build_data_docs, get_context, validate_batch
from tests.conftest import PROJECT

pytestmark = pytest.mark.slow
INTERVAL = (datetime(2017, 7, 4, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC))
ASSET = re.compile(r'(?:src|href)="([^"#]+\.(?:js|css|png|ico))"')


@pytest.fixture(scope="module")
def site(synthetic_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gx_dir = tmp_path_factory.mktemp("home") / "gx"
    context = get_context(gx_dir)
    tuesday = read_day(synthetic_week, date(2017, 7, 4))
    accepted = validate_batch(tuesday, context, INTERVAL, run_name="accepted-day")
    assert len(accepted.quarantined) > 0 and accepted.success
    spoiled = tuesday.copy()
    spoiled.loc[spoiled.index[: len(spoiled) * 2 // 3], "tot_fwd_pkts"] = -1
    with pytest.raises(BatchRejected):
        validate_batch(spoiled, context, INTERVAL, run_name="refused-day")
    build_data_docs(context)
    root = gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert make_offline(root) > 0
    return root


def _pages(site: Path, run_name: str) -> list[str]:
    return [p.read_text() for p in (site / "validations").rglob("*.html")
            if run_name in str(p)]


def test_status_failed_means_the_batch_was_refused(site: Path) -> None:
    accepted, refused = _pages(site, "accepted-day"), _pages(site, "refused-day")
    assert accepted and refused
    assert all("Succeeded" in page for page in accepted)
    assert all("Failed" in page for page in refused)


def test_every_page_loads_its_assets_from_the_site(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 3
    assert make_offline(site) == 0  # already rewritten: nothing to do
    for page in pages:
        text = page.read_text()
        remote = [u for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', text)
                  if re.search(r"\.(js|css)(\?|$)", u) or "web-assets" in u]
        assert remote == [], (page, remote)
        for ref in ASSET.findall(text):
            assert (page.parent / ref).resolve().is_file(), (page, ref)


def test_the_plugin_serves_the_site_with_its_assets(site: Path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("FLOWGUARD_HOME", str(site.parents[4]))
    spec = importlib.util.spec_from_file_location("flowguard_reports_docs",
                                                  PROJECT / "plugins" / "flowguard_reports.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    plugin.reports_app.dependency_overrides[plugin.LOGIN] = lambda: None  # login: elsewhere
    client = TestClient(plugin.reports_app)
    index = client.get("/docs/index.html")
    assert index.status_code == 200 and "bootstrap-table" in index.text
    refs = ASSET.findall(index.text)
    assert any(r.endswith("jquery-3.7.1.min.js") for r in refs)
    for ref in refs:
        url = urljoin("/docs/index.html", ref)
        assert client.get(url).status_code == 200, url
    assert client.get("/docs/static/vendor/webfonts/fa-solid-900.woff2").status_code == 200
