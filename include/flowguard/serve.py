"""``flowguard serve``: the champion behind HTTP (FastAPI + uvicorn).

One process loads the registry's ``champion`` once and keeps it in memory; a background
thread asks the registry every ``poll_seconds`` which version the alias points at (one
cheap query) and swaps the model in when the alias moved (a promotion or a rollback), so a
request never waits for a registry round trip or a model load. Requests are scored exactly
as ``flowguard score`` scores them (:func:`flowguard.scoring.score_flows`): the flow's own
statistics from the request, its source host's trailing-hour window from the Feast online
store (SQLite embedded, Redis in production, whatever ``FLOWGUARD_FEAST_YAML`` selects),
point in time, with the window's freshness in the answer.

Every scored flow is appended to the lake under ``served/date=YYYY-MM-DD/`` (the day the
flow was served, UTC) in batches (:class:`ServedLog`), so the monitor can compare what was
actually served with the champion's reference (:func:`served_flows`). See docs/serving.md.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd

from flowguard.schema import FEATURE_COLUMNS, HOST_FEATURES, PUBLISHED_TO_CANONICAL

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MAX_BATCH = 10_000  # flows per batch request; a bigger batch belongs to `flowguard score`
SERVED = "served"


class NoChampionYet(LookupError):
    """The registry has no ``champion`` alias yet: nothing to serve."""


class Champion:
    """The served model: loaded once, swapped when the registry's ``champion`` alias moves.

    :meth:`check` is the whole reload protocol (one alias lookup; a model load only when
    the version changed); :meth:`start` runs it every ``poll_seconds`` in a daemon thread.
    ``current`` is replaced as one tuple, so a request sees either the old or the new model,
    never a mix.
    """

    def __init__(self, client: Any, name: str, poll_seconds: float = 10.0,
                 threads: int = 1) -> None:
        self.client, self.name, self.poll_seconds = client, name, poll_seconds
        self.threads = threads
        self.current: tuple[Any, list[str], str] | None = None
        self.loaded_at: datetime | None = None
        self.checked_at: datetime | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Load the champion if the alias points elsewhere than the loaded one; True if so."""
        from flowguard.registry import champion_version, load_model

        version = champion_version(self.client, self.name)
        self.checked_at = datetime.now(UTC)
        if version is None or (self.current is not None and self.current[2] == version):
            return False
        model, classes = load_model(self.client, self.name, version)
        # one flow per request: OpenMP threads only contend (scale with --workers instead)
        model.get_booster().set_param({"nthread": self.threads})
        previous = self.current[2] if self.current else None
        self.current = (model, classes, version)
        self.loaded_at = datetime.now(UTC)
        log.info("serving %s version %s (was %s)", self.name, version, previous)
        return True

    def get(self) -> tuple[Any, list[str], str]:
        if self.current is None:
            raise NoChampionYet(f"no '{self.name}@champion' yet: run the training DAG first "
                                f"(checked {self.checked_at:%Y-%m-%dT%H:%M:%SZ})"
                                if self.checked_at else f"no '{self.name}@champion' yet")
        return self.current

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a registry outage must not stop serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("champion check failed (still serving the loaded model): %s",
                            self.last_error)

    def start(self) -> None:
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="champion-poll",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def served_rows(results: list[dict[str, Any]], rows: list[dict[str, float]],
                served_at: datetime) -> list[dict[str, Any]]:
    """The lake rows of scored flows: the features the model saw, its answer, when, which.

    Plain dicts: a DataFrame per request would cost more than scoring the flow; the frame
    is built once per flush (:func:`served_frame`)."""
    return [{"served_at": served_at, "event_timestamp": r["event_timestamp"], **row,
             "flow_id": r["flow_id"], "src_ip": r["src_ip"], "model_version": r["model_version"],
             "predicted_label": r["label"], "confidence": max(r["probabilities"].values()),
             "host_features_fresh": bool(r["host_features_fresh"])}
            for r, row in zip(results, rows, strict=True)]


def served_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Served rows as the lake's parquet schema (UTC timestamps, string ids, float features)."""
    frame = pd.DataFrame(rows)
    for name in ("served_at", "event_timestamp"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
    for name in FEATURE_COLUMNS + HOST_FEATURES + ["confidence"]:
        frame[name] = frame[name].astype("float64")
    for name in ("flow_id", "src_ip", "model_version", "predicted_label"):
        frame[name] = frame[name].map(lambda v: None if v is None else str(v)).astype("string")
    frame["host_features_fresh"] = frame["host_features_fresh"].astype(bool)
    return frame


class ServedLog:
    """Scored flows appended to ``root/date=YYYY-MM-DD/`` in batches, one parquet per flush.

    Rows are buffered and written every ``max_seconds`` and as soon as ``max_rows`` are
    waiting, by a daemon thread once :meth:`start` ran (by the caller of :meth:`add` before),
    and on :meth:`close`. Each flush writes new files (never rewrites
    one: served traffic only grows), named by time, process and a random suffix, so several
    server processes can share the folder. Written atomically (temporary name, then rename):
    a reader never sees half a file.
    """

    def __init__(self, root: Path, max_rows: int = 1000, max_seconds: float = 5.0) -> None:
        self.root, self.max_rows, self.max_seconds = Path(root), max_rows, max_seconds
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a full buffer: flush now, not at the next tick
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_rows
        if full:
            if self._thread is not None and self._thread.is_alive():
                # the writer thread flushes: no parquet write inside a request (one request
                # in 1,000 took 39-97 ms when it wrote the buffer itself)
                self._wake.set()
            else:
                self.flush()

    def flush(self) -> list[Path]:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return []
        frame = served_frame(rows)
        paths = []
        stamp = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        for day, part in frame.groupby(frame["served_at"].dt.strftime("%Y-%m-%d"), sort=True):
            path = self.root / f"date={day}" / f"part-{stamp}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            part.to_parquet(tmp, index=False)
            tmp.replace(path)
            paths.append(path)
        self.written += len(frame)
        return paths

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_seconds)
            self._wake.clear()
            try:
                self.flush()
            except OSError as exc:  # a full disk: keep serving, say so
                log.error("could not append served flows under %s: %s", self.root, exc)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="served-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()


def served_flows(lake_dir: Path, start: datetime | str, end: datetime | str) -> pd.DataFrame:
    """Flows served in ``[start, end)`` (by ``served_at``), for the monitor.

    One row per scored flow: the model's features as it saw them, ``predicted_label``,
    ``confidence``, ``model_version``, ``host_features_fresh``. The monitor can compare the
    predicted-label mix with the champion's reference (prediction drift on served traffic)
    or run its feature-drift tests on the features. An empty frame when nothing was served.
    """
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    lo = lo.tz_convert("UTC") if lo.tzinfo else lo.tz_localize("UTC")
    hi = hi.tz_convert("UTC") if hi.tzinfo else hi.tz_localize("UTC")
    root = Path(lake_dir) / SERVED
    days = pd.date_range(lo.normalize(), hi.normalize(), freq="D")
    files = [p for d in days for p in sorted((root / f"date={d:%Y-%m-%d}").glob("*.parquet"))]
    if not files:
        return pd.DataFrame(columns=["served_at", "event_timestamp", *FEATURE_COLUMNS,
                                     *HOST_FEATURES, "flow_id", "src_ip", "model_version",
                                     "predicted_label", "confidence", "host_features_fresh"])
    frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    frame = frame[(frame["served_at"] >= lo) & (frame["served_at"] < hi)]
    return frame.sort_values("served_at", kind="stable").reset_index(drop=True)


def _request_models() -> tuple[type, type]:
    """The pydantic models of a flow request: the 77 statistics as finite numbers (canonical
    names or the published CICIDS2017 headers, any whitespace), src_ip, optional event time
    and flow id; other fields (a label, the addresses) are ignored."""
    from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

    finite = Annotated[float, Field(allow_inf_nan=False)]

    class FlowBase(BaseModel):
        model_config = ConfigDict(extra="ignore")
        src_ip: str | None = Field(None, description="source address: the host-feature key")
        flow_id: str | None = None
        event_timestamp: datetime | None = Field(
            None, description="the flow's time (ISO 8601; naive = UTC; default now): host "
                              "windows are taken at or before it, within the view's ttl")

        @model_validator(mode="before")
        @classmethod
        def canonical_names(cls, data: Any) -> Any:
            if isinstance(data, dict):
                return {PUBLISHED_TO_CANONICAL.get(str(k).strip(), str(k).strip()): v
                        for k, v in data.items()}
            return data

    fields = {name: (finite, ...) for name in FEATURE_COLUMNS}
    flow = create_model("Flow", __base__=FlowBase, **fields)
    batch = create_model("FlowBatch", flows=(
        Annotated[list[flow], Field(min_length=1, max_length=MAX_BATCH)], ...))
    return flow, batch


def _record(flow: Any) -> dict[str, Any]:
    record = flow.model_dump()
    stamp = record.get("event_timestamp")
    record["event_timestamp"] = stamp.isoformat() if stamp is not None else None
    return record


def _with_age(result: dict[str, Any]) -> dict[str, Any]:
    end = result["host_window_end"]
    result["host_features_age_seconds"] = (
        None if end is None else round((pd.Timestamp(result["event_timestamp"])
                                        - pd.Timestamp(end)).total_seconds(), 3))
    return result


def create_app(champion: Champion, store: Any, served_log: ServedLog | None,
               store_kind: str = "") -> FastAPI:
    """The FastAPI app: ``POST /score`` (one flow), ``POST /score/batch`` (``{"flows":
    [...]}``), ``GET /health`` and ``GET /model``. Handlers are ``async`` and score inline:
    the work is CPU-bound and milliseconds long, so a thread hop would only add latency;
    scale out with more processes (``--workers``)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from flowguard import __version__
    from flowguard.scoring import InvalidFlow, score_flows

    flow_model, batch_model = _request_models()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        champion.start()
        if served_log is not None:
            served_log.start()
        yield
        champion.stop()
        if served_log is not None:
            served_log.close()

    app = FastAPI(title="flowguard", version=__version__, lifespan=lifespan,
                  description="Scores network flows with the registry's champion and the "
                              "source host's online features (docs/serving.md).")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"),
                   "message": e["msg"], **({"input": e["input"]} if "input" in e and
                                           not isinstance(e["input"], dict | list) else {})}
                  for e in exc.errors()]
        summary = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
        return JSONResponse(status_code=422, content={"error": summary, "errors": errors[:50]})

    @app.exception_handler(NoChampionYet)
    async def no_champion(request: Request, exc: NoChampionYet) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": str(exc)})

    @app.exception_handler(InvalidFlow)
    async def invalid_flow(request: Request, exc: InvalidFlow) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": str(exc)})

    def score(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model, classes, version = champion.get()
        now = datetime.now(UTC)
        results = score_flows(records, store, model, classes, version, now=now)
        if served_log is not None:
            rows = [{**{c: float(r[c]) for c in FEATURE_COLUMNS},
                     **{k: (math.nan if v is None else float(v))
                        for k, v in res["host_features"].items()}}
                    for r, res in zip(records, results, strict=True)]
            served_log.add(served_rows(results, rows, now))
        return [_with_age(r) for r in results]

    async def score_one(flow: Any) -> dict[str, Any]:
        return score([_record(flow)])[0]

    async def score_batch(batch: Any) -> dict[str, Any]:
        return {"results": score([_record(f) for f in batch.flows])}

    # the request models are built at run time: annotations postponed as text (this module's
    # ``from __future__ import annotations``) would not resolve, so they are set as objects
    score_one.__annotations__["flow"] = flow_model
    score_batch.__annotations__["batch"] = batch_model
    app.post("/score", summary="score one flow")(score_one)
    app.post("/score/batch", summary=f"score a batch of flows (at most {MAX_BATCH})")(score_batch)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        current = champion.current
        return {"status": "ok" if current else "no champion", "model": champion.name,
                "model_version": current[2] if current else None,
                "loaded_at": champion.loaded_at.isoformat() if champion.loaded_at else None,
                "checked_at": champion.checked_at.isoformat() if champion.checked_at else None,
                "registry_error": champion.last_error, "online_store": store_kind,
                "served_flows_written": served_log.written if served_log else None}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        _, classes, version = champion.get()
        return {"model": champion.name, "model_version": version, "classes": classes,
                "features": FEATURE_COLUMNS + HOST_FEATURES}

    return app


def app_from_env(poll_seconds: float | None = None) -> FastAPI:
    """The app on this process's settings (``FLOWGUARD_*``, ``MLFLOW_TRACKING_URI``): what
    ``flowguard serve`` and each of its worker processes run."""
    from flowguard.config import get_settings
    from flowguard.features import get_store
    from flowguard.pipeline import _mlflow

    settings = get_settings()
    poll = float(os.environ.get("FLOWGUARD_SERVE_POLL_SECONDS", 10)) if poll_seconds is None \
        else poll_seconds
    champion = Champion(_mlflow(settings), settings.model_name, poll,
                        threads=int(os.environ.get("FLOWGUARD_SERVE_THREADS", 1)))
    champion.check()  # load now if there is one: the first request does not wait for it
    store = get_store(settings.feature_repo, settings.home)
    log_served = os.environ.get("FLOWGUARD_SERVE_LOG", "1").strip().lower() not in {"0", "false",
                                                                                    "no"}
    served = ServedLog(settings.lake_dir / SERVED) if log_served else None
    return create_app(champion, store, served, store_kind=store.config.online_store.type)


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the app under uvicorn until interrupted (SIGINT/SIGTERM flush the served log)."""
    import uvicorn

    uvicorn.run("flowguard.serve:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)
