"""Calibration runs: the tensors a pass names reach their observers, in as many runs as memory needs."""

from __future__ import annotations

import numpy as np

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.quant.observers import Gram
from edgesdk.quant.stats import collect
from tests.helpers import mlp_data, mlp_model


def test_collect_observes_intermediate_tensors(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))
    data = CalibrationData.from_npz(mlp_data(tmp_path / "calib.npz", samples=5))
    stats = collect(graph, ["h2", "y"], data)
    assert stats["h2"].min >= 0.0  # a ReLU output
    assert stats["y"].channel_absmax.shape == (8,)
    assert [o.name for o in graph.model.graph.outputs] == ["y"]  # the probe did not touch the graph


def test_observers_over_the_budget_are_filled_in_several_runs(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))
    data = CalibrationData.from_npz(mlp_data(tmp_path / "calib.npz", samples=4))
    at_once = collect(graph, ["h0", "h2", "y"], data, observer=Gram)
    # h0/h2 have 64 channels: 12 * 64² bytes of Gram each, so a budget of 60 kB takes one run per tensor
    one_by_one = collect(graph, ["h0", "h2", "y"], data, observer=Gram, budget=60_000)
    for name in at_once:
        np.testing.assert_allclose(one_by_one[name].hessian, at_once[name].hessian, rtol=1e-6)
        assert one_by_one[name].rows == 4 * 16
