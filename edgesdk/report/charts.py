"""Chart geometry for the HTML report: data mapped to SVG pixel coordinates here, drawn by the template (which
escapes every label). No JavaScript and no chart library: the page is one file that opens anywhere offline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44  # plot margins: axis labels and ticks live there
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"]


@dataclass
class Chart:
    id: str
    title: str
    x_label: str
    y_label: str
    width: int = WIDTH
    height: int = HEIGHT
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    bars: list[dict] = field(default_factory=list)  # x, y, w, h, tip
    lines: list[dict] = field(default_factory=list)  # points "x,y x,y", color, label
    rules: list[dict] = field(default_factory=list)  # vertical x, label, color
    bands: list[dict] = field(default_factory=list)  # x, w, label
    dots: list[dict] = field(default_factory=list)  # x, y, r, color, label, tip, frontier

    @property
    def plot(self) -> dict[str, float]:
        return {"left": LEFT, "top": TOP, "right": self.width - RIGHT, "bottom": self.height - BOTTOM}


class Scale:
    """Linear map from [lo, hi] to pixels [a, b], widened to round tick values."""

    def __init__(self, lo: float, hi: float, a: float, b: float, ticks: int = 5):
        if not math.isfinite(lo) or not math.isfinite(hi):
            lo, hi = 0.0, 1.0
        if hi <= lo:
            pad = abs(lo) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        step = _nice_step((hi - lo) / ticks)
        self.lo, self.hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
        self.a, self.b, self.step = a, b, step

    def __call__(self, value: float) -> float:
        return self.a + (value - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self) -> list[tuple[float, str]]:
        count = int(round((self.hi - self.lo) / self.step))
        digits = max(0, -int(math.floor(math.log10(self.step)))) if self.step < 1 else 0
        return [(self(self.lo + i * self.step), f"{self.lo + i * self.step:.{digits}f}") for i in range(count + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _axes(chart: Chart, xs: Scale, ys: Scale) -> Chart:
    chart.x_ticks, chart.y_ticks = xs.ticks(), ys.ticks()
    return chart


def _scales(chart: Chart, x: tuple[float, float], y: tuple[float, float]) -> tuple[Scale, Scale]:
    p = chart.plot
    return Scale(*x, p["left"], p["right"]), Scale(*y, p["bottom"], p["top"])


def latency_histogram(chart_id: str, latencies_ms: list[float], color: str = PALETTE[0]) -> Chart:
    """Bins from the fastest run to p99; the slower 1 % (a tail that would crush the rest into one bin) in one
    bar of its own at the right, labelled."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    chart = Chart(chart_id, "Latency distribution", "latency (ms)", "runs")
    bins = int(min(40, max(5, math.ceil(math.sqrt(values.size)))))
    top = float(np.percentile(values, 99))
    tail = values[values > top]
    counts, edges = np.histogram(values[values <= top], bins=bins, range=(float(values.min()), top))
    width = (edges[-1] - edges[0]) / bins if edges[-1] > edges[0] else 1.0
    right = float(edges[-1]) + (2 * width if tail.size else 0.0)
    xs, ys = _scales(chart, (float(edges[0]), right), (0.0, float(max(counts.max(), tail.size))))
    spans = [(int(c), float(a), float(b), f"{a:.3f}–{b:.3f} ms") for c, a, b in zip(counts, edges[:-1], edges[1:])]
    if tail.size:
        spans.append((int(tail.size), float(edges[-1]) + width, right, f"> p99 ({top:.3f}–{tail.max():.3f} ms)"))
    for count, left, end, what in spans:
        if count:
            x0, x1, height = xs(left), xs(end), ys(float(count))
            chart.bars.append({"x": x0, "y": height, "w": max(x1 - x0 - 1, 1), "h": ys(0.0) - height,
                               "color": "#9ca3af" if what.startswith(">") else color, "count": count,
                               "tip": f"{what}: {count} runs"})
    return _axes(chart, xs, ys)


def latency_cdf(chart_id: str, series: list[tuple[str, list[float]]]) -> Chart:
    """One step curve per run (label, latencies), with p50/p90/p99 rules when there is a single run."""
    chart = Chart(chart_id, "Latency CDF", "latency (ms)", "fraction of runs ≤ x")
    everything = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in series])
    xs, ys = _scales(chart, (float(everything.min()), float(everything.max())), (0.0, 1.0))
    for index, (label, values) in enumerate(series):
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        fraction = np.arange(1, ordered.size + 1) / ordered.size
        points, previous = [], 0.0
        for value, f in zip(ordered, fraction):
            points += [f"{xs(value):.1f},{ys(previous):.1f}", f"{xs(value):.1f},{ys(f):.1f}"]
            previous = f
        chart.lines.append({"points": " ".join(points), "color": PALETTE[index % len(PALETTE)], "label": label})
    if len(series) == 1:
        values = np.asarray(series[0][1], dtype=np.float64)
        for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
            value = float(np.percentile(values, q))
            chart.rules.append({"x": xs(value), "label": f"{name} {value:.3f} ms", "color": "#6b7280"})
    return _axes(chart, xs, ys)


def power_trace(chart_id: str, t: list[float], watts: list[float], window: tuple[float, float] | None,
                idle_w: float | None) -> Chart:
    """Total power over time (seconds from the first sample), the timed runs' window shaded."""
    chart = Chart(chart_id, "Power", "time (s)", "power (W)")
    t0 = t[0]
    xs, ys = _scales(chart, (0.0, t[-1] - t0), (0.0, max(watts) * 1.1))
    chart.lines.append({"points": " ".join(f"{xs(a - t0):.1f},{ys(w):.1f}" for a, w in zip(t, watts)),
                        "color": PALETTE[1], "label": "total"})
    if window is not None:
        start, end = xs(window[0] - t0), xs(window[1] - t0)
        chart.bands.append({"x": start, "w": max(end - start, 1), "label": "timed runs"})
    if idle_w is not None:
        y = ys(idle_w)
        chart.lines.append({"points": f"{chart.plot['left']},{y:.1f} {chart.plot['right']},{y:.1f}",
                            "color": "#6b7280", "label": f"idle {idle_w:.2f} W", "dashed": True})
    return _axes(chart, xs, ys)


def pareto(chart_id: str, title: str, x_label: str, y_label: str,
           points: list[tuple[str, float, float]]) -> Chart:
    """Scatter of (label, cost, accuracy): smaller cost and higher accuracy are better; the points no other point
    beats on both are the frontier, joined by a line."""
    chart = Chart(chart_id, title, x_label, y_label)
    x_values, y_values = [p[1] for p in points], [p[2] for p in points]
    xs, ys = _scales(chart, (min(x_values), max(x_values)), (min(y_values), max(y_values)))
    frontier = pareto_front(points)
    for index, (label, x, y) in enumerate(points):
        chart.dots.append({"x": xs(x), "y": ys(y), "color": PALETTE[index % len(PALETTE)], "label": label,
                           "tip": f"{label}: {x:.4g} {x_label}, {y:.6f} {y_label}", "frontier": index in frontier})
    ordered = sorted(frontier, key=lambda i: points[i][1])
    if len(ordered) > 1:
        chart.lines.append({"points": " ".join(f"{xs(points[i][1]):.1f},{ys(points[i][2]):.1f}" for i in ordered),
                            "color": "#111827", "label": "Pareto frontier", "dashed": True})
    return _axes(chart, xs, ys)


def pareto_front(points: list[tuple[str, float, float]]) -> set[int]:
    """Indices of the points that no other point matches or beats on both cost (lower) and accuracy (higher)."""
    front = set()
    for i, (_, cost, accuracy) in enumerate(points):
        if not any((c <= cost and a >= accuracy) and (c < cost or a > accuracy)
                   for j, (_, c, a) in enumerate(points) if j != i):
            front.add(i)
    return front
