"""The calibration saved with a champion at training (issue 15): computed on the reference
exactly as the daily check reads it, stored with the model's run, and used by the check."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flowguard.config import PROJECT_ROOT

DAY = date(2017, 7, 7)
NOW = datetime(2017, 7, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, synthetic_week: Path
             ) -> Iterator[tuple[Path, str]]:
    """A champion from one synthetic day, with a monitoring config small enough for it."""
    from tests.chain import champion_from_one_day

    root = tmp_path_factory.mktemp("champion-calibration")
    config = root / "monitoring.yaml"
    text = (PROJECT_ROOT / "config" / "monitoring.yaml").read_text()
    for old, new in (("sample_size: 1000", "sample_size: 100"),
                     ("reference_size: 1000", "reference_size: 100"),
                     ("calibration_draws: 99", "calibration_draws: 9")):
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWGUARD_HOME", str(root / "home"))
        mp.setenv("FLOWGUARD_MONITORING_CONFIG", str(config))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        _frame, version = champion_from_one_day(root / "home", synthetic_week, DAY, NOW,
                                                "calibration-test")
        yield root / "home", version


def test_a_promoted_champion_gets_the_calibration_the_daily_check_uses(champion) -> None:
    from flowguard.config import get_settings
    from flowguard.pipeline import (
        _mlflow,
        calibrate_champion,
        prepare_monitoring,
        saved_calibration,
    )

    home, version = champion
    assert calibrate_champion({"promoted": False, "version": version}) == {
        "calibrated": False, "why": "not promoted"}
    done = calibrate_champion({"promoted": True, "version": version})
    assert done["calibrated"] and done["draws"] == 9
    client = _mlflow(get_settings())
    saved = saved_calibration(client, done["run_id"])
    assert saved["key"] == done["key"] and len(saved["null"]["mmd"]) == 9
    # the daily check: a fresh cache, so the null can only come from the champion's run
    for cached in (home / "work" / "calibration").glob("calibration-*.json"):
        cached.unlink()
    prepared = prepare_monitoring(f"{DAY}T00:00:00+00:00", f"{DAY}T23:59:59+00:00",
                                  "monitor-calibration-test")
    assert prepared["calibration"]["source"] == "champion"
    assert prepared["calibration"]["key"] == done["key"]
    assert prepared["calibration"]["null"] == saved["null"]
