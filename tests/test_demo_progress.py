"""The demo says how far it is: "stage k of N", N growing when drift adds a retrain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowguard.demo import Demo

if TYPE_CHECKING:
    import pytest


def test_stages_count_up_and_a_retrain_raises_the_total(capsys: pytest.CaptureFixture) -> None:
    demo = Demo()
    for what in ("generate", "airflow", "ingest Mon"):
        demo.stage(what)
    demo.stages_total += 1  # what the drift branch does before announcing the retrain
    demo.stage("retrain")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "stage 1 of 10: generate", "stage 2 of 10: airflow", "stage 3 of 10: ingest Mon",
        "stage 4 of 11: retrain"]
    for _ in range(10):  # never "stage 12 of 11"
        demo.stage("more")
    assert capsys.readouterr().out.splitlines()[-1].endswith("stage 14 of 14: more")
