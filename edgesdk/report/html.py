"""The report as one self-contained HTML file: inline CSS and SVG, no script and nothing fetched."""

from __future__ import annotations

import datetime
from pathlib import Path

from . import charts
from .entries import ReportEntry


def render(entries: list[ReportEntry]) -> str:
    import jinja2

    from ..about import version
    from ..devices.runner import templates_dirs

    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in templates_dirs()]),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    runs = [e for e in entries if e.kind == "run"]
    return env.get_template("report.html.j2").render(
        entries=entries, runs=runs, sections=[_run_charts(i, e) for i, e in enumerate(runs)],
        comparison=_comparison_charts(entries), overlay=_overlay(runs), version=version(),
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(entries: list[ReportEntry], out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render(entries), encoding="utf-8")
    partial.replace(out)
    return out


def _run_charts(index: int, entry: ReportEntry) -> dict:
    section: dict = {"entry": entry, "charts": []}
    if entry.latencies_ms:
        section["charts"].append(charts.latency_histogram(f"latency-histogram-{index}", entry.latencies_ms))
        section["charts"].append(charts.latency_cdf(f"latency-cdf-{index}", [(entry.label, entry.latencies_ms)]))
    if entry.power_trace is not None:
        t, watts = entry.power_trace
        power = entry.power or {}
        window = ((power["timed_start"], power["timed_end"])
                  if isinstance(power.get("timed_start"), (int, float)) and isinstance(power.get("timed_end"), (int, float))
                  else None)
        section["charts"].append(charts.power_trace(f"power-{index}", t, watts, window, power.get("idle_w")))
    return section


def _overlay(runs: list[ReportEntry]) -> charts.Chart | None:
    measured = [(e.label, e.latencies_ms) for e in runs if e.latencies_ms]
    return charts.latency_cdf("latency-cdf-all", measured) if len(measured) > 1 else None


def _comparison_charts(entries: list[ReportEntry]) -> list[charts.Chart]:
    """Per model (two points at least): size and latency against accuracy, across recipes and targets."""
    out = []
    models = sorted({e.model for e in entries})
    for number, model in enumerate(models):
        rated = [e for e in entries if e.model == model and e.best_accuracy]
        if not rated:
            continue
        metric = rated[0].best_accuracy.metric  # one model: one kind of accuracy
        sized = [(e.label, e.size_bytes / 1e6, e.best_accuracy.value) for e in rated]
        timed = [(e.label, e.latency["p50"], e.best_accuracy.value) for e in rated
                 if isinstance(e.latency.get("p50"), (int, float))]
        if len(sized) > 1:
            out.append(charts.pareto(f"pareto-size-{number}", f"{model}: size against {metric}", "model size (MB)",
                                     metric, sized))
        if len(timed) > 1:
            out.append(charts.pareto(f"pareto-latency-{number}", f"{model}: latency against {metric}",
                                     "p50 latency (ms)", metric, timed))
    return out
