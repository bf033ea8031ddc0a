"""The health page: the system day by day, on one page (``/flowguard/health`` in Airflow).

What it shows, each from the place that owns it:

- rows in / valid / quarantined per day: the lake's and the quarantine's partitions
  (parquet metadata, no data read); each day links to the data docs;
- drift per window: the monitor's history (``reports/drift/history.json``): detector
  p-values, the decision, whether it retrained; each window links to its drift report;
- models: the registry (every version's macro-F1, gate outcome, aliases, rollbacks), each
  linking to its MLflow run;
- alerts sent: ``alerts/sent.jsonl`` (:func:`flowguard.alerts.send_alert`).

The figure is drawn by matplotlib as SVG with a link on every point (``set_urls``); a p-value
of 0 (below the permutation test's resolution) is drawn on the axis floor with its own
marker rather than dropped by the log scale.
"""

from __future__ import annotations

import html
import io
import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

P_FLOOR = 1e-4  # the log axis' floor: a p-value below it (often exactly 0) is drawn here
DETECTORS = ("mmd", "classifier", "novelty", "prediction")
COLORS = {"mmd": "#1f77b4", "classifier": "#ff7f0e", "novelty": "#9467bd",
          "prediction": "#2ca02c"}


def _day(iso: str) -> datetime:
    """A day as a datetime at midnight: matplotlib places it exactly, and the detectors'
    side-by-side offsets (hours) stay within their day (a ``date`` drops fractions)."""
    return datetime.combine(date.fromisoformat(iso[:10]), datetime.min.time())


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in sorted(path.glob("*.parquet")))


def ingest_days(settings: Any) -> list[dict[str, Any]]:
    """Rows valid and quarantined per ingested day, from the partitions' metadata."""
    days: dict[str, dict[str, Any]] = {}
    for kind, root in (("valid", settings.flows_source),
                       ("quarantined", settings.quarantine_dir / "flows")):
        for part in sorted(root.glob("date=*")) if root.exists() else []:
            if not any(part.glob("*.parquet")):
                continue  # an aborted run's empty folder is no ingested day
            day = part.name.split("=", 1)[1]
            days.setdefault(day, {"day": day, "valid": 0, "quarantined": 0})[kind] = _rows(part)
    for entry in days.values():
        entry["rows_in"] = entry["valid"] + entry["quarantined"]
    return [days[d] for d in sorted(days)]


def drift_history(settings: Any) -> list[dict[str, Any]]:
    path = settings.reports_dir / "drift" / "history.json"
    return json.loads(path.read_text()) if path.exists() else []


def model_versions(settings: Any) -> list[dict[str, Any]]:
    """Every registered version with its run, newest training day, macro-F1, gate, aliases."""
    from flowguard.pipeline import _mlflow
    from flowguard.registry import summarise_versions

    return summarise_versions(_mlflow(settings), settings.model_name)


def collect(settings: Any) -> dict[str, Any]:
    from flowguard.alerts import sent_alerts

    return {"days": ingest_days(settings), "drift": drift_history(settings),
            "models": model_versions(settings),
            "alerts": sent_alerts(settings.home / "alerts")}


def draw_p_values(ax: Any, history: list[dict[str, Any]], link: Any = None,
                  p_value: float | None = None) -> None:
    """Each detector's p-value per window on a log axis. A p below :data:`P_FLOOR` (often
    exactly 0: no permutation beat the statistic) is drawn on the floor as a hollow triangle;
    detectors sit side by side within a window, so equal values do not hide each other."""
    from datetime import timedelta

    windows = [_day(e["window"]) for e in history]
    offsets = {"mmd": -4.5, "classifier": -1.5, "novelty": 1.5,
               "prediction": 4.5}  # hours, side by side
    for name in DETECTORS:
        points = [(w + timedelta(hours=offsets[name]), float(e[f"{name}_p_value"]), w)
                  for w, e in zip(windows, history, strict=True)
                  if e.get(f"{name}_p_value") is not None]
        if not points:
            continue
        xs = [x for x, _, _ in points]
        ys = [max(p, P_FLOOR) for _, p, _ in points]
        ax.plot(xs, ys, color=COLORS[name], alpha=0.45, linewidth=1)
        above = [(x, y, w) for (x, p, w), y in zip(points, ys, strict=True) if p >= P_FLOOR]
        below = [(x, w) for x, p, w in points if p < P_FLOOR]
        if above:
            dots = ax.scatter([x for x, _, _ in above], [y for _, y, _ in above], s=36,
                              color=COLORS[name], zorder=3, label=f"{name} p")
            if link:
                dots.set_urls([link(w.date().isoformat()) for _, _, w in above])
        if below:
            low = ax.scatter([x for x, _ in below], [P_FLOOR] * len(below), marker="v", s=70,
                             facecolors="none", edgecolors=COLORS[name], zorder=4,
                             label=None if above else f"{name} p")
            if link:
                low.set_urls([link(w.date().isoformat()) for _, w in below])
    if p_value is None:
        p_value = (history[-1].get("p_value") if history else None) or 0.05
    ax.axhline(p_value, color="grey", linestyle="--", linewidth=1)
    ax.text(0.995, p_value, f" p = {p_value:g}", transform=ax.get_yaxis_transform(),
            ha="right", va="bottom", fontsize=8, color="grey")
    for w, e in zip(windows, history, strict=True):
        label = "RETRAIN" if e.get("retrain") else ("drift" if e.get("drift") else "ok")
        ax.annotate(label, (w, 1.0), ha="center", va="bottom", fontsize=8, xytext=(0, 3),
                    textcoords="offset points",
                    color="#c44e52" if e.get("drift") else "#555555")
    ax.set_yscale("log")
    ax.set_ylim(P_FLOOR / 2, 2.0)
    ax.set_ylabel("detector p-value")
    if windows:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def p_value_history_svg(history: list[dict[str, Any]], p_value: float) -> str:
    """The drift report's p-value history (the health page's drift panel, alone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    if not history:
        return "<p>No history yet.</p>"
    fig, ax = plt.subplots(figsize=(8, 2.8), layout="constrained")
    draw_p_values(ax, history, p_value=p_value)
    ax.set_title(f"hollow triangle: p < {P_FLOOR:g} (often exactly 0)", loc="left",
                 fontsize=9)
    ax.xaxis.set_major_locator(mdates.DayLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %m-%d"))
    ax.margins(x=0.1)
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


def figure_svg(data: dict[str, Any], links: dict[str, Any]) -> str:
    """Three panels on one day axis: rows, drift p-values, model macro-F1; every point links."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (rows_ax, drift_ax, model_ax) = plt.subplots(
        3, 1, figsize=(11, 8.4), sharex=True, gridspec_kw={"height_ratios": [1, 1.2, 1]},
        layout="constrained")
    days = [_day(d["day"]) for d in data["days"]]
    if days:
        valid = [d["valid"] for d in data["days"]]
        quarantined = [d["quarantined"] for d in data["days"]]
        bars = rows_ax.bar(days, valid, width=0.5, color="#4c72b0", label="valid")
        top = rows_ax.bar(days, quarantined, bottom=valid, width=0.5, color="#dd8452",
                          label="quarantined")
        for bar in [*bars, *top]:
            bar.set_url(links["data_docs"])
        for day, v, q in zip(days, valid, quarantined, strict=True):
            rows_ax.annotate(f"{q} quarantined", (day, v + q), ha="center", va="bottom",
                             fontsize=8, xytext=(0, 2), textcoords="offset points")
    if days:
        rows_ax.set_ylim(0, max(v + q for v, q in zip(valid, quarantined, strict=True)) * 1.3)
    rows_ax.set_ylabel("flows per day")
    rows_ax.set_title("Ingest: rows valid and quarantined (links: data docs)", loc="left")
    rows_ax.legend(loc="upper left", fontsize=8, frameon=False)

    draw_p_values(drift_ax, data["drift"], links["report"])
    drift_ax.set_title(f"Drift per window (links: drift report; hollow triangle: p < {P_FLOOR:g}, "
                       "often exactly 0)", loc="left")

    trained = [(m, _day(m["trained_through"])) for m in data["models"]
               if m.get("trained_through") and m.get("macro_f1") is not None]
    for m, day in trained:
        champion = "champion" in m["aliases"]
        dot = model_ax.scatter([day], [m["macro_f1"]], s=90 if champion else 50, zorder=3,
                               marker="*" if champion else ("o" if m["gate"] == "passed"
                                                            else "x"),
                               color="#55a868" if m["gate"] == "passed" else "#c44e52")
        dot.set_urls([links["mlflow"](m["experiment_id"], m["run_id"])])
        note = f"v{m['version']}" + (" champion" if champion else "") + (
            " (rolled back)" if m["rolled_back"] else "") + (
            "" if m["gate"] == "passed" else " refused")
        model_ax.annotate(note, (day, m["macro_f1"]), fontsize=8, xytext=(6, -3),
                          textcoords="offset points")
    # the champion's macro-F1 per window: estimated without labels (CBPE-style), and measured
    # where the window had labels
    for key, style, label in (("estimated_macro_f1", "s--", "estimated macro-F1 (no labels)"),
                              ("measured_macro_f1", "d:", "measured macro-F1 (labels)")):
        series = [(_day(e["window"]), e[key]) for e in data["drift"] if e.get(key) is not None]
        if series:
            model_ax.plot([d for d, _ in series], [v for _, v in series], style, markersize=5,
                          color="#8172b3" if key.startswith("est") else "#937860",
                          label=f"{label}, per window")
    if any(e.get("estimated_macro_f1") is not None for e in data["drift"]):
        model_ax.legend(loc="lower left", fontsize=8, frameon=False)
    model_ax.set_ylabel("macro-F1")
    model_ax.set_title("Models by last training day (links: MLflow run; green passed the gate, "
                       "red x refused, star = champion)", loc="left")
    model_ax.margins(x=0.08, y=0.25)
    model_ax.xaxis.set_major_locator(mdates.DayLocator())
    model_ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %m-%d"))
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _f1(model: dict[str, Any]) -> str:
    return "-" if model["macro_f1"] is None else f"{model['macro_f1']:.4f}"


def render(data: dict[str, Any], links: dict[str, Any]) -> str:
    """The page: the figure and, below it, the same facts as tables with their links."""
    esc = html.escape
    figure = figure_svg(data, links) if (data["days"] or data["drift"] or data["models"]) else (
        "<p>Nothing yet: run the demo or the DAGs.</p>")
    day_rows = "".join(
        f"<tr><td>{esc(d['day'])}</td><td>{d['rows_in']}</td><td>{d['valid']}</td>"
        f"<td>{d['quarantined']}</td><td><a href=\"{esc(links['data_docs'])}\">data docs</a>"
        "</td></tr>" for d in data["days"])

    def p(entry: dict[str, Any], name: str) -> str:
        value = entry.get(f"{name}_p_value")
        return "-" if value is None else f"{value:.3g}"

    drift_rows = "".join(
        f"<tr><td>{esc(e['window'])}</td><td>{p(e, 'mmd')}</td><td>{p(e, 'classifier')}</td>"
        f"<td>{p(e, 'novelty')}</td><td>{p(e, 'prediction')}</td>"
        f"<td>{_num(e.get('estimated_macro_f1'))}</td>"
        f"<td>{'drift' if e.get('drift') else 'no drift'}</td>"
        f"<td>{'yes' if e.get('retrain') else 'no'}</td><td>v{esc(str(e.get('champion_version')))}"
        f"</td><td><a href=\"{esc(links['report'](e['window']))}\">report</a></td></tr>"
        for e in data["drift"])
    model_rows = "".join(
        f"<tr><td>v{esc(m['version'])}</td><td>{esc(m['trained_through'] or '-')}</td><td>"
        f"{_f1(m)}</td>"
        f"<td>{esc(m['gate'] or '-')}</td><td>{esc(', '.join(m['aliases']) or '-')}</td>"
        f"<td>{esc(m['rolled_back'] or '-')}</td><td>{esc(m['trigger'] or '-')}</td>"
        f"<td><a href=\"{esc(links['mlflow'](m['experiment_id'], m['run_id']))}\">"
        f"{esc(m['run_name'] or 'run')}</a></td></tr>" for m in data["models"])
    alert_rows = "".join(
        f"<tr><td>{esc(a['time'])}</td><td>{esc(a['subject'])}</td>"
        f"<td>{esc(', '.join(f'{k}: {v}' for k, v in a['outcome'].items()))}</td></tr>"
        for a in data["alerts"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flowguard health</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }}
svg {{ width: 100%; height: auto; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }}
h2 {{ margin-top: 1.5rem; font-size: 1.1rem; }}
</style></head><body>
<h1>flowguard health</h1>
<p>The system day by day: ingest, drift checks, models and alerts. Every point and row links
to its data docs, drift report or MLflow run.</p>
{figure}
<h2>Ingest</h2>
<table><tr><th>day</th><th>rows in</th><th>valid</th><th>quarantined</th><th></th></tr>
{day_rows}</table>
<h2>Drift checks</h2>
<table><tr><th>window</th><th>MMD p</th><th>classifier p</th><th>novelty p</th><th>prediction p</th><th>estimated macro-F1</th>
<th>decision</th><th>retrained</th><th>champion</th><th></th></tr>{drift_rows}</table>
<h2>Models</h2>
<table><tr><th>version</th><th>trained through</th><th>macro-F1</th><th>gate</th>
<th>aliases</th><th>rolled back</th><th>trigger</th><th>MLflow run</th></tr>{model_rows}</table>
<h2>Alerts sent ({len(data['alerts'])})</h2>
<table><tr><th>time (UTC)</th><th>subject</th><th>channels</th></tr>{alert_rows}</table>
</body></html>"""


def page(settings: Any, url_prefix: str = "/flowguard") -> str:
    """The health page's HTML for the current state."""
    from flowguard.alerts import mlflow_run_url

    links = {"data_docs": f"{url_prefix}/docs/index.html",
             "report": lambda w: f"{url_prefix}/reports/drift/{w}/drift_report.html",
             "mlflow": mlflow_run_url}
    return render(collect(settings), links)
