"""The power trace as a PNG: power over time with the idle baseline and the timed window shaded, and the
latency of each timed run below it on the same time axis. matplotlib is imported here only (optional
extra `power`), with the non-interactive Agg backend so it works on a headless machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from .analysis import PowerResult
from .sensors import PowerSeries


def plot_power(path: Path, series: PowerSeries, idle: tuple[float, float] | None, window: tuple[float, float],
               latencies_ms: list[float] | None, result: PowerResult) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "power", "the power plot") from None

    t0 = float(series.t[0])
    rows = 2 if latencies_ms else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 6 if rows == 2 else 4), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1][:rows]})
    power_ax = axes[0][0]
    if idle is not None:
        power_ax.axvspan(idle[0] - t0, idle[1] - t0, color="0.85", label="idle baseline")
    power_ax.axvspan(window[0] - t0, window[1] - t0, color="tab:orange", alpha=0.2, label="timed runs")
    power_ax.plot(series.t - t0, series.total_w, color="black", lw=1.5, label=f"total ({series.total_source[:40]})")
    for name, values in list(series.rails_w.items())[:8]:
        if not np.allclose(values, series.total_w, equal_nan=True):
            power_ax.plot(series.t - t0, values, lw=0.8, alpha=0.8, label=name)
    if result.idle_w is not None:
        power_ax.axhline(result.idle_w, color="0.5", ls="--", lw=0.8)
    power_ax.set_ylabel("power (W)")
    energy = f"{result.energy_per_inference_mj:.3g} mJ/inference" + (" above idle" if result.idle_subtracted else "")
    power_ax.set_title(f"{result.sensor}: mean {result.mean_w:.2f} W, peak {result.peak_w:.2f} W, {energy}")
    power_ax.legend(loc="upper left", fontsize=7, ncol=2)
    if latencies_ms:
        # The runs are back to back: each one ends where the next starts.
        ends = window[0] + np.cumsum(np.asarray(latencies_ms) / 1e3)
        lat_ax = axes[1][0]
        lat_ax.plot(ends - t0, latencies_ms, ".", ms=3, color="tab:blue")
        lat_ax.set_ylabel("latency (ms)")
    axes[-1][0].set_xlabel("seconds since the sampler started (device clock)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
