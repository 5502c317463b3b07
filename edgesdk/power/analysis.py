"""From a sampler trace to the numbers: idle power, mean/peak power and energy during the timed window.

All times are the device's clock (time.time() on the device, for the sampler and the runner alike), so
no clock offset between host and device enters. Power between two samples is taken as the straight line
between them (trapezoid rule); the window's edges are interpolated, so a window that starts or ends
between samples is integrated exactly over [start, end]. An energy counter (RAPL) is read, not integrated:
the window's energy is the counter's curve at its end minus at its start."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PowerError
from .sensors import PowerSeries, RawSample


@dataclass
class Trace:
    header: dict[str, Any]
    samples: list[RawSample]
    errors: list[str]  # failed readings the sampler recorded
    end: str | None  # why the sampler stopped; None: it died without saying (killed)


def load_trace(text: str) -> Trace:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise PowerError("the power trace is empty (the sampler never started)")
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut by a crash mid-write
                break
            raise PowerError(f"power trace line {number} is not JSON: {line[:120]!r}") from None
    header = records[0]
    if "edgesdk_power_trace" not in header:
        raise PowerError("the power trace has no header line")
    samples = [RawSample(float(r["t"]), r["raw"]) for r in records[1:] if "raw" in r]
    errors = [r["error"] for r in records[1:] if "error" in r]
    ends = [r["end"] for r in records[1:] if "end" in r]
    return Trace(header, samples, errors, ends[-1] if ends else None)


def interpolate(t: np.ndarray, p: np.ndarray, at: float) -> float:
    return float(np.interp(at, t, p))


def integrate(t: np.ndarray, p: np.ndarray, start: float, end: float) -> float:
    """∫ P dt over [start, end] in joules, trapezoids on the samples with the edges interpolated."""
    _require_cover(t, start, end)
    inside = (t > start) & (t < end)
    ts = np.concatenate([[start], t[inside], [end]])
    ps = np.concatenate([[interpolate(t, p, start)], p[inside], [interpolate(t, p, end)]])
    return float(np.sum((ps[1:] + ps[:-1]) * np.diff(ts)) / 2.0)


def window_energy(series: PowerSeries, start: float, end: float) -> float:
    """Joules over [start, end]: from an energy counter's curve where the sensor has one (the counter's reads
    telescope, so a late or early read moves only the window's two edge points), else ∫ P dt."""
    if series.energy_t is None:
        return integrate(series.t, series.total_w, start, end)
    t, drawn = series.energy_t, series.energy_j
    _require_cover(t, start, end)
    return float(np.interp(end, t, drawn) - np.interp(start, t, drawn))


def idle_power(series: PowerSeries, idle: tuple[float, float]) -> tuple[float | None, int]:
    """(mean watts, samples) over the baseline interval. An energy counter's steps are placed at their middle,
    so a step whose middle is inside may end after the runner started: its reads are used instead, from the
    trace's first (the interval starts with the trace) to the last one at or before the interval's end."""
    if series.energy_t is not None:
        reads = np.flatnonzero(series.energy_t <= idle[1])
        if len(reads) < 2:
            return None, 0
        first, last = int(reads[0]), int(reads[-1])
        drawn, t = series.energy_j, series.energy_t
        return float((drawn[last] - drawn[first]) / (t[last] - t[first])), last - first
    t, p = series.t, series.total_w
    in_idle = (t >= idle[0]) & (t <= idle[1])
    count = int(in_idle.sum())
    if count >= 2:
        return integrate(t, p, float(t[in_idle][0]), float(t[in_idle][-1])) / float(t[in_idle][-1] - t[in_idle][0]), count
    return (float(p[in_idle][0]), 1) if count == 1 else (None, 0)


def _require_cover(t: np.ndarray, start: float, end: float) -> None:
    if end < start:
        raise PowerError(f"window ends before it starts ({start} > {end})")
    if len(t) < 2 or t[0] > start or t[-1] < end:
        raise PowerError(_coverage(t, start, end))


def _coverage(t: np.ndarray, start: float, end: float) -> str:
    if len(t) == 0:
        return "the power trace holds no samples"
    return (f"the power trace ({t[0]:.3f}..{t[-1]:.3f}, {len(t)} samples) does not cover the window "
            f"{start:.3f}..{end:.3f} (device clock)")


@dataclass
class PowerResult:
    sensor: str
    rails: list[str]
    total_source: str
    idle_w: float | None
    mean_w: float
    peak_w: float
    energy_j: float  # whole board over the timed window
    energy_per_inference_mj: float  # as configured: whole board, or above idle when idle_subtracted
    energy_above_idle_per_inference_mj: float | None
    idle_subtracted: bool
    runs: int
    timed_start: float  # the runner's timed window, device clock
    timed_end: float
    window_s: float
    samples: int  # every sample in the trace
    window_samples: int  # samples inside the timed window
    idle_samples: int
    rate_hz: float  # achieved on the device
    rails_mean_w: dict[str, float]
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # raw trace, parsed trace, plot (in the run folder)

    def to_json(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor, "rails": self.rails, "total_source": self.total_source, "idle_w": self.idle_w,
            "mean_w": self.mean_w, "peak_w": self.peak_w, "energy_per_inference_mj": self.energy_per_inference_mj,
            "energy_above_idle_per_inference_mj": self.energy_above_idle_per_inference_mj,
            "idle_subtracted": self.idle_subtracted, "energy_j": self.energy_j, "runs": self.runs,
            "timed_start": self.timed_start, "timed_end": self.timed_end, "window_s": self.window_s,
            "samples": self.samples, "window_samples": self.window_samples,
            "idle_samples": self.idle_samples, "rate_hz": self.rate_hz, "rails_mean_w": self.rails_mean_w,
            "notes": self.notes, "files": self.files,
        }


def summarize(series: PowerSeries, sensor: str, idle: tuple[float, float] | None, window: tuple[float, float],
              runs: int, subtract_idle: bool) -> PowerResult:
    """``idle``: the baseline interval before the runner started (None: no baseline); ``window``: the timed
    runs' start and end on the device clock."""
    t, p = series.t, series.total_w
    start, end = window
    if runs < 1:
        raise PowerError("no timed runs to divide the energy by")
    energy = window_energy(series, start, end)
    duration = end - start
    inside = (t >= start) & (t <= end)
    edges = [interpolate(t, p, start), interpolate(t, p, end)]
    notes = list(series.notes)
    if int(inside.sum()) < 5:
        notes.append(f"only {int(inside.sum())} samples inside the {duration:.3f} s timed window: "
                     "raise --runs or the sensor's rate_hz for a steadier figure")

    idle_w, idle_samples = idle_power(series, idle) if idle is not None and idle[1] > idle[0] else (None, 0)
    if subtract_idle and idle_w is None:
        raise PowerError("subtract_idle is set but no idle baseline was measured (idle_s too short for the rate)")
    above = (energy - idle_w * duration) / runs * 1e3 if idle_w is not None else None
    whole = energy / runs * 1e3
    rails_mean = {}
    for name, values in series.rails_w.items():
        ok = ~np.isnan(values)
        if ok.sum() >= 2 and t[ok][0] <= start and t[ok][-1] >= end:
            rails_mean[name] = integrate(t[ok], values[ok], start, end) / duration if duration > 0 else float(values[ok][0])
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    return PowerResult(
        sensor=sensor, rails=list(series.rails_w), total_source=series.total_source, idle_w=idle_w,
        mean_w=energy / duration if duration > 0 else edges[0], peak_w=float(max([*p[inside], *edges])),
        energy_j=energy, energy_per_inference_mj=above if subtract_idle else whole,
        energy_above_idle_per_inference_mj=above, idle_subtracted=subtract_idle, runs=runs, timed_start=start,
        timed_end=end, window_s=duration,
        samples=len(t), window_samples=int(inside.sum()), idle_samples=idle_samples,
        rate_hz=(len(t) - 1) / span if span > 0 else 0.0, rails_mean_w=rails_mean, notes=notes,
    )


def series_csv(series: PowerSeries) -> str:
    """The parsed trace: one row per sample, device time, total and every rail in watts."""
    names = list(series.rails_w)
    rows = ["t,total_w," + ",".join(f"{n}_w" for n in names)]
    for i, t in enumerate(series.t):
        values = [f"{series.total_w[i]:.6f}"] + ["" if np.isnan(series.rails_w[n][i]) else f"{series.rails_w[n][i]:.6f}"
                                                 for n in names]
        rows.append(f"{t:.6f}," + ",".join(values))
    return "\n".join(rows) + "\n"
