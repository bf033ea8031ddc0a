from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from flowguard.config import PROJECT_ROOT
from flowguard.features import (
    TrainingSetIncomplete,
    apply_definitions,
    entity_rows,
    get_store,
    historical_features,
    materialize,
    write_valid_flows,
)
from flowguard.ingest import read_day

pytestmark = pytest.mark.slow
REPO = PROJECT_ROOT / "feature_repo"


def test_apply_materialize_and_point_in_time_retrieval(home: Path, synthetic_week: Path) -> None:
    lake = home / "lake" / "flows"
    days = [date(2017, 7, 3), date(2017, 7, 4)]
    for day in days:
        frame = read_day(synthetic_week, day)
        frame = frame[frame["parse_error"].eq("") & frame["label"].notna()
                      & frame["flow_byts_s"].notna()]
        write_valid_flows(frame, lake, day, datetime(2017, 7, 8, tzinfo=UTC))
    assert apply_definitions(REPO, home) == ["flow_stats"]
    assert apply_definitions(REPO, home) == ["flow_stats"]  # idempotent
    store = get_store(REPO, home)
    materialize(store, datetime(2017, 7, 3, tzinfo=UTC),
                datetime(2017, 7, 5, tzinfo=UTC))

    entities = entity_rows(lake, days)
    training = historical_features(store, entities)
    assert len(training) == len(entities)  # no row lost
    assert training["flow_uid"].tolist() == entities["flow_uid"].tolist()  # input order kept
    source = pd.read_parquet(lake / "date=2017-07-03" / "part-0.parquet").set_index("flow_uid")
    joined = training.set_index("flow_uid").loc[source.index]
    pd.testing.assert_series_equal(joined["flow_duration"], source["flow_duration"],
                                   check_names=False)

    # point in time: asking for a flow *before* its event time finds nothing -> loud failure
    early = entities.head(3).assign(
        event_timestamp=entities.head(3)["event_timestamp"] - pd.Timedelta(hours=1))
    with pytest.raises(TrainingSetIncomplete, match="3 of 3"):
        historical_features(store, early)

    uid = int(entities["flow_uid"].iloc[0])
    online = store.get_online_features(
        features=store.get_feature_service("flow_classifier_v1"),
        entity_rows=[{"flow_uid": uid}]).to_dict()
    assert online["flow_duration"][0] == pytest.approx(source.loc[uid, "flow_duration"])
