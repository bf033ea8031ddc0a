"""One day through the real stages to a promoted champion: what the scoring and serving
tests both start from."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowguard.config import PROJECT_ROOT
from flowguard.ingest import read_day

if TYPE_CHECKING:
    import pandas as pd

REPO = PROJECT_ROOT / "feature_repo"


def flow_record(frame: pd.DataFrame, label: str) -> tuple[dict, pd.Series]:
    """The host's last flow of ``label`` as a scoring request (its host has a window in the
    flow's past), and the flow."""
    from flowguard.schema import FEATURE_COLUMNS

    flow = frame[frame["label"] == label].iloc[-1]
    record = {c: float(flow[c]) for c in FEATURE_COLUMNS} | {
        "src_ip": flow["src_ip"], "flow_id": flow["flow_id"],
        "event_timestamp": flow["event_timestamp"].isoformat()}
    return record, flow


def last_scan_time(frame: pd.DataFrame) -> datetime:
    return frame.loc[frame["label"] == "PortScan", "event_timestamp"].iloc[-1].to_pydatetime()


def champion_from_one_day(home: Path, landing: Path, day: date, now: datetime, run: str,
                          tuning: dict[str, Any] | None = None) -> tuple[pd.DataFrame, str]:
    """``day`` ingested into ``home`` (``FLOWGUARD_HOME`` set by the caller), applied,
    materialized (SQLite) up to the day's last PortScan flow, so the online store holds what
    serving would have had then; a champion trained and promoted. Returns the day's valid
    flows and the champion's version."""
    from flowguard.features import (
        apply_definitions,
        get_store,
        materialize,
        write_host_activity,
        write_valid_flows,
    )
    from flowguard.pipeline import build_training_set, promote_if_better, train_model

    frame = read_day(landing, day)
    frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                  & frame["flow_byts_s"].notna() & (frame["tot_fwd_pkts"] >= 0)]
    write_valid_flows(frame, home / "lake" / "flows", day, now)
    write_host_activity(frame, home / "lake" / "hosts", day, now)
    apply_definitions(REPO, home)
    materialize(get_store(REPO, home), datetime(day.year, day.month, day.day, tzinfo=UTC),
                last_scan_time(frame))
    built = build_training_set(f"{now:%Y-%m-%d}", 1, run)
    trained = train_model(built["path"], {"dag_run_id": run, "trigger_reason": "test"},
                          tuning=tuning)
    assert promote_if_better(trained["version"])["promoted"]
    return frame, trained["version"]
