"""Dependency audit of both locks (requirements.txt, requirements-drift.txt) with pip-audit.

Offline-tolerant and honest: when no advisory database answers (no network, or a mirror that
serves packages but not their advisories), it prints ``audit skipped: <why>`` and exits 0;
it never reports "no known vulnerabilities" after auditing nothing. Before the locks, a
canary pin with a published advisory (Pillow 9.5.0, CVE-2023-4863) must come back
vulnerable: otherwise the service's answers mean nothing. With a working service, an
advisory fails the audit (exit 1) unless config/audit-accepted.txt lists its id with a
reason. Run through `make audit` (pip-audit lives in its own .venv-audit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ["requirements.txt", "requirements-drift.txt"]
ACCEPTED = ROOT / "config" / "audit-accepted.txt"
CANARY = "pillow==9.5.0"  # CVE-2023-4863 (libwebp) and later Pillow advisories
SERVICES = ["pypi", "osv"]


def pip_audit(requirements: Path, service: str) -> dict:
    """pip-audit's JSON report of one requirements file (pins only, no resolution)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "-r",
             str(requirements), "-s", service, "-f", "json", "-o", out.name,
             "--progress-spinner", "off", "--timeout", "30"],
            capture_output=True, text=True, check=False)
        text = Path(out.name).read_text()
    if not text.strip():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip-audit -s {service} failed (exit {done.returncode}): {tail}")
    return json.loads(text)


def accepted() -> dict[str, str]:
    """Advisory id -> reason, from config/audit-accepted.txt (``ID package reason``)."""
    entries = {}
    for number, line in enumerate(ACCEPTED.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            sys.exit(f"{ACCEPTED}:{number}: expected `ID package reason`, got {line!r}")
        entries[parts[0]] = f"{parts[1]}: {parts[2]}"
    return entries


def working_service() -> tuple[str | None, str]:
    """The first service that reports the canary's advisory, or None and why none did."""
    why = []
    with tempfile.TemporaryDirectory() as work:
        canary = Path(work) / "canary.txt"
        canary.write_text(CANARY + "\n")
        for service in SERVICES:
            try:
                dep = pip_audit(canary, service)["dependencies"][0]
            except (RuntimeError, ValueError, KeyError, IndexError) as exc:
                why.append(f"{service}: {exc}")
                continue
            if dep.get("vulns"):
                return service, ""
            why.append(f"{service}: {dep.get('skip_reason') or 'answers, but reports no advisory'}"
                       f" for {CANARY}, which has published ones")
    return None, "; ".join(why)


def main() -> int:
    service, why = working_service()
    if service is None:
        print(f"audit skipped: no advisory database answered ({why}). Nothing was audited; "
              "run `make audit` where pypi.org or api.osv.dev is reachable")
        return 0
    ok = accepted()
    audited = skipped = 0
    failures, waived, skips = [], [], []
    for lock in LOCKS:
        for dep in pip_audit(ROOT / lock, service)["dependencies"]:
            if "skip_reason" in dep:
                skipped += 1
                skips.append(f"{lock}: {dep['name']} {dep.get('version', '')}: "
                             f"{dep['skip_reason']}")
                continue
            audited += 1
            for vuln in dep.get("vulns", []):
                ids = [vuln["id"], *vuln.get("aliases", [])]
                line = (f"{lock}: {dep['name']} {dep['version']}: {vuln['id']} "
                        f"(aliases {vuln.get('aliases', [])}, fixed in "
                        f"{vuln.get('fix_versions') or 'no release'})")
                reason = next((ok[i] for i in ids if i in ok), None)
                (waived if reason else failures).append(
                    f"{line}; accepted: {reason}" if reason else line)
    for line in skips:
        print(f"not audited: {line}")
    for line in waived:
        print(f"accepted: {line}")
    if not audited:
        print(f"audit skipped: the {service} service audited none of the {skipped} pins")
        return 0
    for line in failures:
        print(f"ADVISORY: {line}")
    print(f"audit ({service}): {audited} pins audited, {skipped} not audited, "
          f"{len(failures)} advisories open, {len(waived)} accepted")
    if failures:
        print(f"upgrade the pins, or list the ids in {ACCEPTED} with a reason")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
