"""Integration and statistics on known traces, where the right answers can be worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgesdk.errors import PowerError
from edgesdk.power.analysis import integrate, load_trace, series_csv, summarize, window_energy
from edgesdk.power.sensors import PowerSeries


def series(t, p, rails=None, source="VDD_IN") -> PowerSeries:
    t, p = np.asarray(t, dtype=float), np.asarray(p, dtype=float)
    return PowerSeries(t, p, rails or {"VDD_IN": p}, source)


def test_integrate_constant_and_ramp_with_interpolated_edges():
    t = np.arange(0.0, 10.01, 0.5)
    assert integrate(t, np.full_like(t, 3.0), 1.2, 4.7) == pytest.approx(3.0 * 3.5)
    # P = t: the trapezoid rule is exact on a straight line, edges between samples included.
    assert integrate(t, t.copy(), 1.2, 4.7) == pytest.approx((4.7**2 - 1.2**2) / 2)


def test_integrate_refuses_a_window_the_trace_does_not_cover():
    t = np.array([1.0, 2.0, 3.0])
    with pytest.raises(PowerError, match="does not cover the window"):
        integrate(t, np.ones(3), 0.5, 2.5)
    with pytest.raises(PowerError, match="does not cover"):
        integrate(t, np.ones(3), 1.5, 3.5)


def test_an_energy_counter_gives_the_window_energy_from_its_own_reads():
    # A 6.5 W board read every 50 ms; one read inside the window comes 20 ms late, so the power derived from the
    # counter dips then spikes around it. The counter's curve still holds the exact energy at every read time.
    reads = np.arange(0.0, 2.001, 0.05)
    reads[20] += 0.02
    drawn = 6.5 * reads
    steps = np.diff(drawn) / np.diff(reads)
    counter = PowerSeries((reads[1:] + reads[:-1]) / 2, steps, {"package-0": steps}, "package-0",
                          energy_t=reads, energy_j=drawn)
    assert window_energy(counter, 0.33, 1.71) == pytest.approx(6.5 * (1.71 - 0.33), rel=1e-12)
    assert summarize(counter, "rapl", None, (0.33, 1.71), 10, False).mean_w == pytest.approx(6.5, rel=1e-12)
    with pytest.raises(PowerError, match="does not cover"):
        window_energy(counter, 0.01, 2.5)


def test_an_energy_counter_baseline_ends_at_a_read_not_in_the_step_the_runner_started_in():
    # 2 W until 0.51 s, then 6.5 W; the baseline asked for ends at 0.51. The step from 0.50 to 0.55 has its
    # middle (0.525) outside, the step 0.45..0.50 inside; the read at 0.50 closes the baseline.
    reads = np.arange(0.0, 2.001, 0.05)
    drawn = np.where(reads <= 0.51, 2.0 * reads, 2.0 * 0.51 + 6.5 * (reads - 0.51))
    steps = np.diff(drawn) / np.diff(reads)
    counter = PowerSeries((reads[1:] + reads[:-1]) / 2, steps, {"package-0": steps}, "package-0",
                          energy_t=reads, energy_j=drawn)
    result = summarize(counter, "rapl", (0.025, 0.51), (1.0, 1.5), 5, True)
    assert result.idle_w == pytest.approx(2.0, rel=1e-12) and result.idle_samples == 10
    assert result.energy_per_inference_mj == pytest.approx((6.5 - 2.0) * 0.5 / 5 * 1e3, rel=1e-12)


def test_summary_of_a_step_profile_inside_the_window():
    """2 W idle until t=10, 6 W from t=10.5 (a straight ramp between the two samples), window [11, 13]."""
    t = np.arange(0.0, 20.01, 0.5)
    p = np.where(t <= 10.0, 2.0, 6.0)
    result = summarize(series(t, p), "tegrastats", idle=(0.0, 9.0), window=(11.0, 13.0), runs=100, subtract_idle=False)
    assert result.idle_w == pytest.approx(2.0)
    assert result.mean_w == pytest.approx(6.0) and result.peak_w == pytest.approx(6.0)
    assert result.energy_j == pytest.approx(12.0)
    assert result.energy_per_inference_mj == pytest.approx(120.0)  # 12 J / 100 runs
    assert result.energy_above_idle_per_inference_mj == pytest.approx(80.0)  # (6-2) W x 2 s / 100
    assert result.window_samples == 5 and result.idle_samples == 19 and result.samples == 41
    assert result.rate_hz == pytest.approx(2.0)

    # A window that straddles the ramp: ∫ over [9.5, 11] = 2*0.5 + (2+6)/2*0.5 + 6*0.5 = 6 J.
    straddle = summarize(series(t, p), "tegrastats", None, (9.5, 11.0), runs=3, subtract_idle=False)
    assert straddle.energy_j == pytest.approx(6.0) and straddle.idle_w is None
    assert straddle.energy_per_inference_mj == pytest.approx(2000.0)
    assert straddle.notes and "only 4 samples" in straddle.notes[0]


def test_subtract_idle_and_rails_means():
    t = np.arange(0.0, 4.01, 0.1)
    p = np.where(t < 2.0, 1.0, 4.0)
    rails = {"VDD_IN": p, "VDD_CPU": p / 2, "VDD_GPU": np.full_like(t, np.nan)}
    result = summarize(series(t, p, rails), "ina3221", idle=(0.0, 1.8), window=(2.5, 3.5), runs=10, subtract_idle=True)
    assert result.idle_subtracted and result.energy_per_inference_mj == pytest.approx((4.0 - 1.0) * 1.0 / 10 * 1e3)
    assert result.rails_mean_w == pytest.approx({"VDD_IN": 4.0, "VDD_CPU": 2.0})  # a rail never read has no mean
    assert result.to_json()["energy_per_inference_mj"] == pytest.approx(300.0)


def test_subtract_idle_without_a_baseline_is_an_error():
    t = np.arange(0.0, 2.01, 0.5)
    with pytest.raises(PowerError, match="no idle baseline"):
        summarize(series(t, np.ones_like(t)), "rapl", None, (0.5, 1.5), runs=1, subtract_idle=True)


def test_load_trace_keeps_samples_errors_and_end_and_survives_a_cut_last_line():
    lines = [{"edgesdk_power_trace": 1, "mode": "poll", "argv": ["meter"], "files": [], "rate_hz": 20, "pid": 1,
              "started": 100.0},
             {"t": 100.0, "raw": "2.0"}, {"t": 100.05, "error": "meter exited with 1: no device"},
             {"t": 100.1, "raw": "2.1"}]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"t": 100.15, "ra'
    trace = load_trace(text)
    assert [s.raw for s in trace.samples] == ["2.0", "2.1"] and trace.samples[1].t == 100.1
    assert trace.errors == ["meter exited with 1: no device"] and trace.end is None  # killed: no end line
    finished = load_trace("\n".join(json.dumps(x) for x in lines + [{"t": 101.0, "end": "stop-file", "samples": 2}]))
    assert finished.end == "stop-file"
    with pytest.raises(PowerError, match="empty"):
        load_trace("")
    with pytest.raises(PowerError, match="no header"):
        load_trace('{"t": 1, "raw": "x"}\n')


def test_series_csv_has_a_row_per_sample():
    t = np.array([1.0, 2.0])
    text = series_csv(series(t, np.array([2.0, 3.0]), {"VDD_IN": np.array([2.0, 3.0]), "NC2": np.array([np.nan, 1.0])}))
    assert text.splitlines() == ["t,total_w,VDD_IN_w,NC2_w", "1.000000,2.000000,2.000000,", "2.000000,3.000000,3.000000,1.000000"]
