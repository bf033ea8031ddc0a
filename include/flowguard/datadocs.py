"""Great Expectations data docs that work without internet.

GX 1.x pages load jQuery, Bootstrap, bootstrap-table, Font Awesome and a logo from CDNs, so
without network the index's tables stay empty. :func:`make_offline` copies the same versions
(vendored under ``flowguard/static/datadocs``, licences beside them) into the site's
``static/vendor/`` folder and points every page at them with relative URLs, so the site works
opened from disk and served by the Airflow plugin (``/flowguard/docs/``). The charting
scripts (vega, used by expectation kinds this project's suites do not have) and GX's hosted
logo are dropped rather than fetched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

VENDOR = Path(__file__).parent / "static" / "datadocs"
MARKER = "<!-- flowguard: offline assets -->"
# CDN URL (as GX 1.x writes it) -> vendored file, relative to static/vendor/
ASSETS = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "js/jquery-3.7.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "js/popper-1.12.9.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "js/bootstrap-4.3.1.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "css/bootstrap-4.3.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "js/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "css/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": "js/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": "css/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": "css/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "css/fontawesome-6.6.0.min.css",
}
_DROPPED_SCRIPTS = re.compile(
    r'<script[^>]*src="https://cdn\.jsdelivr\.net/npm/vega[^"]*"[^>]*>\s*</script>\s*')
_SITE_STATIC = re.compile(r'(src|href)="(?:\./|(?:\.\./)+)static/')
_HOSTED_LOGO = re.compile(r'src="https://great-expectations-web-assets[^"]*"')
_REMOTE_ASSET = re.compile(r'(?:src|href)="(https://[^"]+\.(?:js|css)[^"]*)"|'
                           r'<script[^>]*src="(https://[^"]+)"')


def make_offline(site: Path) -> int:
    """Copy the vendored assets into ``site/static/vendor`` and rewrite the pages that still
    point at a CDN; returns how many pages were rewritten (pages already done are skipped)."""
    if not (site / "index.html").is_file():
        return 0
    vendor = site / "static" / "vendor"
    if not (vendor / ASSETS[next(iter(ASSETS))]).is_file():
        shutil.copytree(VENDOR, vendor, dirs_exist_ok=True)
    rewritten = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if MARKER in text:
            continue
        static = os.path.relpath(site / "static", page.parent).replace(os.sep, "/")
        # GX writes ../../../static/ on pages four folders deep (a broken favicon): fix depth
        text = _SITE_STATIC.sub(rf'\1="{static}/', text)
        prefix = os.path.relpath(vendor, page.parent).replace(os.sep, "/")
        for url, local in ASSETS.items():
            text = text.replace(url, f"{prefix}/{local}")
        text = _DROPPED_SCRIPTS.sub("", text)
        text = _HOSTED_LOGO.sub(
            f'src="{os.path.relpath(site / "static" / "images", page.parent)}/logo-long.png"',
            text)
        left = sorted({m.group(1) or m.group(2) for m in _REMOTE_ASSET.finditer(text)})
        if left:
            log.warning("data docs page %s still loads %s (a GX version with other assets?)",
                        page, left)
        page.write_text(text.replace("<head>", f"<head>\n{MARKER}", 1), encoding="utf-8")
        rewritten += 1
    return rewritten
