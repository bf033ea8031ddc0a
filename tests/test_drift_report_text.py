"""The drift report's header says what the run did in one sentence that reads as one
decision (it read "...drift; no trigger for this window or within the cooldown Retraining
triggered.")."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowguard.monitoring import action_sentence, retrain_decision


def test_each_ledger_outcome_reads_as_one_sentence(tmp_path: Path) -> None:
    ledger = tmp_path / "triggers.json"
    first = retrain_decision(ledger, "2017-07-06", "1", True, 3, "run-a")
    again = retrain_decision(ledger, "2017-07-06", "1", True, 3, "run-b")
    cooled = retrain_decision(ledger, "2017-07-07", "1", True, 3, "run-c")
    calm = retrain_decision(ledger, "2017-07-08", "1", False, 3, "run-d")
    assert action_sentence(first) == ("Retraining triggered (no trigger for this window or "
                                      "within the cooldown).")
    assert action_sentence(again) == ("Retraining not triggered: already triggered for window "
                                      "2017-07-06 (run run-a).")
    assert action_sentence(cooled).startswith("Retraining not triggered: cooldown: ")
    assert action_sentence(calm) == "Retraining not triggered: no drift."
    for action in (first, again, cooled, calm):
        sentence = action_sentence(action)
        assert sentence.count("Retraining") == 1 and sentence.endswith(".")


def sample_report(window: str = "2017-07-07") -> dict:
    """A drift report's content as report_and_decide assembles it (detectors, features, mix)."""
    return {
        "window": window, "decision": "drift (all of mmd p=0, classifier p=0)",
        "champion_version": "1", "n_window": 4716, "policy": "all",
        "voters": ["mmd", "classifier"], "config": {"p_value": 0.01, "sample_size": 1000},
        "action": {"retrain": True,
                   "why": "drift; no trigger for this window or within the cooldown"},
        "detectors": {"mmd": {"p_value": 0.0, "is_drift": True, "seconds": 1.2},
                      "classifier": {"p_value": 0.0, "is_drift": True, "seconds": 2.0},
                      "prediction": {"p_value": 0.2, "is_drift": False},
                      "performance": None, "n_ref": 1000, "n_cur": 1000, "p_val": 0.01},
        "top_features": [],
        "prediction_drift": {"p_value": 0.2, "reference_mix": {"BENIGN": 0.8, "PortScan": 0.2},
                             "window_mix": {"BENIGN": 0.7, "PortScan": 0.3}},
    }


def test_report_header_history_and_width(tmp_path: Path) -> None:
    from flowguard.monitoring import write_report

    history = [{"window": "2017-07-06", "mmd_p_value": 0.3, "classifier_p_value": 0.2,
                "prediction_p_value": 0.5, "drift": False, "retrain": False},
               {"window": "2017-07-07", "mmd_p_value": 0.0, "classifier_p_value": 0.0,
                "prediction_p_value": 0.2, "drift": True, "retrain": True}]
    page = Path(write_report(sample_report(), tmp_path, history)["html"]).read_text()
    assert ("Retraining triggered (no trigger for this window or within the cooldown)."
            in page)
    assert "Retraining triggered." not in page.replace("cooldown).", "")
    history_svg = page[page.index("<h2>p-value history</h2>"):page.index("<h2>Top drifted")]
    assert "matplotlib" in history_svg and "p &lt; 0.0001" in history_svg  # p = 0 drawn
    # nothing forces the page wider than its column: long lines wrap, figures scale
    assert "pre{white-space:pre-wrap" in page and "svg{max-width:100%" in page


@pytest.mark.parametrize(("source", "says"), [
    ("champion", "Saved with the champion at training."),
    ("cache", "Read from this home's calibration cache."),
    ("computed", "Computed by this check")])
def test_report_says_where_the_calibrated_null_came_from(source: str, says: str) -> None:
    from flowguard.monitoring import _calibration_html

    calibration = {"draws": 99, "block_hours": 24.0, "period_hours": 72.0, "source": source}
    det = {"mmd": {"p_value_permutation": 0.0, "p_value_calibrated": 0.47}}
    text = _calibration_html(calibration, det)
    assert says in text and "mmd: permutation p=0, calibrated p=0.47" in text
