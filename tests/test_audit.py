"""`make audit` (scripts/audit.py) is offline-tolerant and honest (issue 19).

pip-audit itself is replaced by canned reports here (no advisory database answers on this
machine: the reachable package index serves no advisories); what is tested is the decision:
a skip is said as one and passes, "audited nothing" is never reported as clean, an advisory
fails unless accepted with a reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import PROJECT


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("audit", PROJECT / "scripts" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ACCEPTED", tmp_path / "accepted.txt")
    (tmp_path / "accepted.txt").write_text("# none\n")
    return module


def _dep(name: str, vulns: list | None = None, skip: str | None = None) -> dict:
    dep = {"name": name, "version": "1.0"}
    if skip:
        dep["skip_reason"] = skip
    else:
        dep["vulns"] = vulns or []
    return dep


VULN = {"id": "PYSEC-2023-175", "aliases": ["CVE-2023-4863"], "fix_versions": ["10.0.1"]}


def _fake(monkeypatch, audit, canary: dict, locks: list[dict]) -> None:
    def pip_audit(requirements: Path, service: str) -> dict:
        if requirements.name == "canary.txt":
            return {"dependencies": [canary]}
        return {"dependencies": locks}

    monkeypatch.setattr(audit, "pip_audit", pip_audit)


def test_no_advisory_database_is_a_clear_skip(audit, monkeypatch, capsys) -> None:
    _fake(monkeypatch, audit, _dep("pillow", skip="Dependency not found on PyPI"),
          [_dep("numpy", skip="Dependency not found on PyPI")])
    assert audit.main() == 0
    out = capsys.readouterr().out
    assert out.startswith("audit skipped: no advisory database answered")
    assert "no known vulnerabilities" not in out.lower()


def test_a_mirror_without_advisories_is_not_clean(audit, monkeypatch, capsys) -> None:
    _fake(monkeypatch, audit, _dep("pillow"), [_dep("numpy")])  # answers, but nothing known
    assert audit.main() == 0
    assert "reports no advisory for pillow==9.5.0" in capsys.readouterr().out


def test_an_advisory_fails_unless_accepted_with_a_reason(audit, monkeypatch, capsys) -> None:
    _fake(monkeypatch, audit, _dep("pillow", [VULN]), [_dep("pillow", [VULN]), _dep("numpy")])
    assert audit.main() == 1
    assert "ADVISORY: requirements.txt: pillow 1.0: PYSEC-2023-175" in capsys.readouterr().out
    audit.ACCEPTED.write_text("CVE-2023-4863 pillow no WebP is ever decoded\n")
    assert audit.main() == 0
    assert "accepted: no WebP is ever decoded" in capsys.readouterr().out.replace(
        "pillow: ", "")
    audit.ACCEPTED.write_text("CVE-2023-4863 pillow\n")  # no reason: refused
    with pytest.raises(SystemExit, match="expected `ID package reason`"):
        audit.main()


def test_pins_it_could_not_audit_are_listed(audit, monkeypatch, capsys) -> None:
    _fake(monkeypatch, audit, _dep("pillow", [VULN]),
          [_dep("torch", skip="Dependency not found on PyPI"), _dep("numpy")])
    assert audit.main() == 0
    out = capsys.readouterr().out
    assert "not audited: requirements.txt: torch" in out
    assert "2 pins audited, 2 not audited, 0 advisories open" in out
