"""Observers: each statistic checked against the same statistic computed on all the data at once."""

from __future__ import annotations

import numpy as np

from edgesdk.quant.observers import OBSERVERS, ChannelMeanAbs, Gram, Ranges, RowSample, Several


def _batches(seed: int = 0, count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 1, (1, int(rng.integers(3, 40)), 6)) * np.arange(1, 7)).astype(np.float32) for _ in range(count)]


def _rows(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([b.reshape(-1, b.shape[-1]) for b in batches])


def test_every_kind_is_registered_by_name():
    assert {"ranges", "mean_abs", "gram", "rows"} <= set(OBSERVERS)


def test_minmax_and_channel_ranges_cover_every_sample():
    stats = Ranges()
    stats.observe(np.array([[[1.0, -2.0, 0.5]]], np.float32))
    stats.observe(np.array([[[-3.0, 0.5, 0.25]]], np.float32))
    assert (stats.min, stats.max) == (-3.0, 1.0)
    assert np.allclose(stats.channel_absmax, [3.0, 2.0, 0.5])
    assert np.allclose(stats.channel_min, [-3.0, -2.0, 0.25]) and np.allclose(stats.channel_max, [1.0, 0.5, 0.5])


def test_percentile_range_clips_a_lone_outlier():
    rng = np.random.default_rng(0)
    stats = Ranges()
    for _ in range(8):
        x = rng.normal(0, 1, (1, 128, 64)).astype(np.float32)
        stats.observe(x)
    spike = np.zeros((1, 128, 64), np.float32)
    spike[0, 0, 0] = 500.0
    stats.observe(spike)
    low, high = stats.range(99.9)
    assert stats.max == 500.0 and 2.0 < high < 5.0 and -5.0 < low < -2.0
    assert stats.range(None) == (stats.min, stats.max)


def test_mean_abs_and_gram_equal_the_statistic_of_all_rows():
    batches = _batches()
    both = Several(ChannelMeanAbs(), Gram())
    for b in batches:
        both.observe(b)
    rows = _rows(batches).astype(np.float64)
    np.testing.assert_allclose(both["mean_abs"].mean, np.abs(rows).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(both["gram"].hessian, rows.T @ rows / len(rows), rtol=1e-5)
    assert both["gram"].rows == len(rows)


def test_row_sample_is_bounded_and_made_of_observed_rows():
    batches = _batches(count=9)
    sample = RowSample(limit=20, per_observation=4)
    for b in batches:
        sample.observe(b)
    rows = sample.rows
    assert rows.shape == (20, 6)
    every_row = {tuple(r) for r in _rows(batches)}
    assert all(tuple(r) in every_row for r in rows)
