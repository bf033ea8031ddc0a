"""Dataset profiles: the files agree with the loaders' taxonomy, the encodings and host
indicators do what the profile says, and a bad setting or file is named, not a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowguard import profiles
from flowguard.profiles import ProfileError, active, for_dataset, load
from flowguard.schema import LABEL_FAMILIES, LABELS, LAYOUTS, UNSW_NB15_FEATURES, UNSW_NB15_LABELS
from flowguard.validation import CONTRACTS


def test_default_profile_is_cicids2017_with_the_names_it_always_had(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flowguard.config import get_settings
    from flowguard.features import FEATURE_SERVICE, FLOW_VIEW, HOST_VIEW
    from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES, MODEL_FEATURES

    monkeypatch.delenv("FLOWGUARD_DATASET", raising=False)
    profile = active()
    assert profile.name == "cicids2017"
    assert profile.model_features == MODEL_FEATURES
    assert profile.flow_features == FEATURE_COLUMNS and profile.host_features == HOST_FEATURES
    assert (profile.feast.feature_service, profile.feast.flow_view, profile.feast.host_view) == (
        FEATURE_SERVICE, FLOW_VIEW, HOST_VIEW)
    settings = get_settings()
    assert settings.lake_dir == settings.home / "lake"
    assert settings.quarantine_dir == settings.home / "quarantine"
    assert settings.model_name == "flow-classifier"


@pytest.mark.parametrize("name", profiles.names())
def test_every_profile_matches_the_loaders_and_contracts(name: str) -> None:
    profile = load(name)
    for dataset in profile.datasets:
        assert any(layout.dataset == dataset for layout in LAYOUTS.values()), dataset
        assert dataset in CONTRACTS
    assert profile.contract in profile.datasets
    layout_labels = {label for layout in LAYOUTS.values() if layout.dataset == profile.contract
                     for label in layout.labels}
    assert set(profile.labels) == layout_labels
    assert profile.families == {label: LABEL_FAMILIES[label] for label in profile.labels}
    features = profile.model_features
    assert len(features) == len(set(features)), "a feature listed twice"
    assert set(profile.host_features) <= set(profile.feast.host_view_features)


def test_unsw_profile_names_its_own_model_folders_and_features() -> None:
    profile = load("unsw_nb15")
    assert profile.labels == tuple(UNSW_NB15_LABELS) and profile.benign == "Normal"
    assert profile.flow_features == [*UNSW_NB15_FEATURES, "proto_code", "service_code",
                                     "state_code"]
    assert profile.model_name == "unsw-nb15-classifier" != load("cicids2017").model_name
    assert profile.feast.feature_service == "unsw_nb15_classifier_v1"
    assert profile.lake == "lake/unsw_nb15"
    assert for_dataset("unsw_nb15") is profile
    assert for_dataset("cse_cic_ids2018").name == "cicids2017"
    assert LABELS[0] == load("cicids2017").benign


def test_encoding_gives_list_positions_an_other_code_and_missing() -> None:
    profile = load("unsw_nb15")
    frame = pd.DataFrame({"proto": ["tcp", "udp", "no-such-proto", None],
                          "service": ["-", "http", "", "dns"],
                          "state": [" FIN ", "INT", "REQ", "XYZ"]})
    out = profile.encode(frame.copy())
    other = {name: float(len(values)) for name, values in profile.encoded.items()}
    assert out["proto_code"].tolist()[:3] == [0.0, 1.0, other["proto"]]
    assert np.isnan(out["proto_code"].iloc[3])
    assert out["service_code"].iloc[0] == profile.encoded["service"].index("-")
    assert np.isnan(out["service_code"].iloc[2])  # empty: missing, not "other"
    assert out["state_code"].tolist() == [profile.encoded["state"].index("FIN"),
                                          profile.encoded["state"].index("INT"),
                                          profile.encoded["state"].index("REQ"), other["state"]]


def test_host_indicators_follow_each_profile() -> None:
    unsw = load("unsw_nb15")
    frame = pd.DataFrame({"state": ["REQ", "FIN", "RST", None]})
    assert unsw.indicator(frame, "syn_only").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert unsw.indicator(frame, "rst").tolist() == [0.0, 0.0, 1.0, 0.0]
    cic = load("cicids2017")
    flags = pd.DataFrame({"syn_flag_cnt": [1, 1, 0], "ack_flag_cnt": [0, 1, 0],
                          "rst_flag_cnt": [0, 2, 0]})
    assert cic.indicator(flags, "syn_only").tolist() == [1.0, 0.0, 0.0]
    assert cic.indicator(flags, "rst").tolist() == [0.0, 1.0, 0.0]


def test_an_unknown_dataset_is_named_with_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGUARD_DATASET", "kddcup99")
    with pytest.raises(ProfileError, match=r"'kddcup99'.*cicids2017, unsw_nb15"):
        active()


def test_a_profile_file_missing_keys_is_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "third.yaml").write_text("name: third\ntitle: A third dataset\n")
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    profiles.load.cache_clear()
    try:
        with pytest.raises(ProfileError, match=r"third.yaml: missing datasets, contract"):
            load("third")
    finally:
        profiles.load.cache_clear()
