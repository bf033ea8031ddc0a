"""
### Backtest the retraining policy (on demand)

Replays a week of flows day by day (the synthetic week by default, or a landing folder of
real CICIDS2017 files) through the pipeline's own functions, in a throwaway home per policy:
`static` (train once after the warm-up), `drift` (retrain when monitoring says drift) and
`always` (retrain daily), optionally with controlled shifts injected from a given day on
(the `shifts` Param). Records each day's detector p-values, decisions, retrains and the
serving model's macro-F1 / per-class recall, plus the compute each policy spent; writes a
JSON/CSV table, a PNG and an HTML page, and logs them to the MLflow experiment
`flowguard-backtest`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from flowguard.dag_common import default_args


@dag(
    dag_id="flowguard_backtest",
    schedule=None,
    start_date=datetime(2017, 7, 3),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["flowguard", "backtest", "drift"],
    default_args=default_args(retries=1),
    params={
        "landing_dir": Param(None, type=["null", "string"], title="Landing folder",
                             description="Daily CSVs to replay; empty = generate the synthetic week."),
        "scale": Param(0.01, type="number", minimum=0.001, maximum=1.0, title="Synthetic scale",
                       description="Share of the published CICIDS2017 counts (synthetic week only)."),
        "seed": Param(7, type="integer", title="Seed"),
        "policies": Param(["static", "drift", "always"], type="array",
                          items={"type": "string", "enum": ["static", "drift", "always"]},
                          title="Policies"),
        "warmup_days": Param(2, type="integer", minimum=1, maximum=5, title="Warm-up days",
                             description="Days the first model trains on."),
        "sample_size": Param(1000, type="integer", minimum=100, maximum=20000,
                             title="Monitoring sample size"),
        "shifts": Param([], type=["null", "array"], items={"type": "string",
                                                 "pattern": "^[a-z_]+(:[^@]*)?@\\d{4}-\\d{2}-\\d{2}$"},
                        title="Injected shifts",
                        description="Controlled shifts applied from their day on, e.g. "
                                    "byte_scale:factor=2@2017-07-05 or "
                                    "new_class:label=PortScan,share=0.05@2017-07-05."),
    },
)
def flowguard_backtest() -> None:
    @task
    def replay(params=None, run_id=None) -> dict:
        from pathlib import Path

        from flowguard.backtest import run_backtest
        from flowguard.config import get_settings
        from flowguard.pipeline import _run_dir

        out = _run_dir(get_settings().work_dir / "backtest", run_id)
        result = run_backtest(Path(params["landing_dir"]) if params["landing_dir"] else None, out,
                              scale=float(params["scale"]), seed=int(params["seed"]),
                              policies=tuple(params["policies"]),
                              warmup_days=int(params["warmup_days"]),
                              sample_size=int(params["sample_size"]),
                              shifts=list(params["shifts"] or []))
        return {"summary": result["summary"], "paths": result["paths"]}

    replay()


flowguard_backtest()
