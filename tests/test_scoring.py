"""Online scoring on the embedded profile: host features from the SQLite online store, the
champion from a real MLflow registry, and the CLI's JSON in and out."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flowguard.config import PROJECT_ROOT
from flowguard.ingest import read_day
from flowguard.schema import FEATURE_COLUMNS, TRAFFIC_LABELLING_HEADERS
from flowguard.scoring import InvalidFlow, canonical_flow

DAY = date(2017, 7, 7)


def test_canonical_flow_accepts_published_headers_and_names_bad_fields() -> None:
    record = {f" {h}": 1 for h in TRAFFIC_LABELLING_HEADERS}
    assert set(FEATURE_COLUMNS) <= set(canonical_flow(record))
    with pytest.raises(InvalidFlow, match="lacks fields.*flow_duration"):
        canonical_flow({k: v for k, v in record.items() if k != " Flow Duration"})
    with pytest.raises(InvalidFlow, match="'flow_byts_s' is not finite"):
        canonical_flow({**record, " Flow Bytes/s": "Infinity"})


@pytest.mark.slow
def test_score_cli_with_online_host_features(home: Path, synthetic_week: Path) -> None:
    from flowguard.features import (
        apply_definitions,
        get_store,
        materialize,
        write_host_activity,
        write_valid_flows,
    )
    from flowguard.pipeline import build_training_set, promote_if_better, train_model

    frame = read_day(synthetic_week, DAY)
    frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                  & frame["flow_byts_s"].notna() & (frame["tot_fwd_pkts"] >= 0)]
    now = datetime(2017, 7, 8, tzinfo=UTC)
    write_valid_flows(frame, home / "lake" / "flows", DAY, now)
    write_host_activity(frame, home / "lake" / "hosts", DAY, now)
    repo = PROJECT_ROOT / "feature_repo"
    apply_definitions(repo, home)
    materialize(get_store(repo, home), datetime(2017, 7, 7, tzinfo=UTC), now)
    built = build_training_set("2017-07-08", 1, "score-test")
    trained = train_model(built["path"], {"dag_run_id": "score-test", "trigger_reason": "test"})
    assert promote_if_better(trained["version"])["promoted"]

    scan = frame[frame["label"] == "PortScan"].iloc[-1]
    record = {c: float(scan[c]) for c in FEATURE_COLUMNS} | {"src_ip": scan["src_ip"],
                                                             "flow_id": scan["flow_id"]}
    out = subprocess.run([sys.executable, "-m", "flowguard.cli", "score", "-"],
                         input=json.dumps(record), capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["model_version"] == trained["version"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["label"] == "PortScan"
    assert result["host_features"]["host_flows_1h"] > 0  # served by the online store

    bad = subprocess.run([sys.executable, "-m", "flowguard.cli", "score", "-"],
                         input=json.dumps({"src_ip": "x"}), capture_output=True, text=True)
    assert bad.returncode == 2 and "lacks fields" in bad.stderr
