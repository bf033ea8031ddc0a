"""The drift report's header says what the run did in one sentence that reads as one
decision (it read "...drift; no trigger for this window or within the cooldown Retraining
triggered.")."""

from __future__ import annotations

from pathlib import Path

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
