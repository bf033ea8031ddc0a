"""Feast imported without typeguard's instrumentation (flowguard.feastload), and the repo's
definitions still passing Feast's checks when they are on (FLOWGUARD_FEAST_TYPECHECKS=on).

Each case runs in a fresh interpreter: whether Feast is instrumented is decided when it is
first imported, and the test session may have imported it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, PROJECT

PROBE = """
import json, sys
from pathlib import Path
import typeguard
real = typeguard.typechecked
from flowguard.feastload import load_feast
load_feast()
import feast.feature_view, feast.infra.offline_stores.file_source
from flowguard.features import apply_definitions
applied = apply_definitions(Path(sys.argv[1]), Path(sys.argv[2]))
bad = None
try:
    feast.Entity(name=3, join_keys=["host"])
except typeguard.TypeCheckError as exc:
    bad = str(exc)
except Exception as exc:
    bad = "other: " + type(exc).__name__
print(json.dumps({
    "restored": typeguard.typechecked is real,
    "view_checked": "check_argument_types_internal"
                    in feast.feature_view.FeatureView.__init__.__code__.co_names,
    "source_checked": "check_argument_types_internal"
                      in feast.infra.offline_stores.file_source.FileSource.__init__
                      .__code__.co_names,
    "applied": applied, "bad_entity": bad}))
"""


def _probe(home: Path, typechecks: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "include")}
    env.pop("FLOWGUARD_FEAST_TYPECHECKS", None)
    if typechecks is not None:
        env["FLOWGUARD_FEAST_TYPECHECKS"] = typechecks
    done = subprocess.run([sys.executable, "-c", PROBE, str(PROJECT / "feature_repo"), str(home)],
                          capture_output=True, text=True, env=env, timeout=HANG_GUARD_S,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("typechecks", [None, "off"])
def test_feast_loads_uninstrumented_by_default(tmp_path: Path, typechecks: str | None) -> None:
    out = _probe(tmp_path / "home", typechecks)
    assert out["restored"], "typeguard.typechecked must be put back after the import"
    assert not out["view_checked"] and not out["source_checked"]
    assert out["bad_entity"] is None  # no run-time check: Feast takes the bad name as it is
    assert out["applied"], "feast apply of the repo registered nothing"


def test_repo_definitions_pass_feasts_checks(tmp_path: Path) -> None:
    out = _probe(tmp_path / "home", "on")
    assert out["view_checked"] and out["source_checked"]
    assert out["bad_entity"] and "name" in out["bad_entity"]  # the checks are really on
    assert out["applied"], "feast apply of the repo registered nothing"
