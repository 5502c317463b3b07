"""SmoothQuant with α searched per layer group: the choice never replays worse than no smoothing, and the
rescaled float model computes what it did."""

from __future__ import annotations

import numpy as np

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.quant.observers import Ranges, RowSample, Several
from edgesdk.quant.passes.smoothquant import SmoothQuantPass
from edgesdk.quant.stats import collect
from edgesdk.runtime import ort_session
from tests.helpers import mlp_data, mlp_model


def test_searched_alpha_per_group_keeps_the_float_outputs(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx", hidden=64))
    arrays = np.load(mlp_data(tmp_path / "calib.npz", samples=8))
    x = arrays["x"].copy()
    x[..., 3] *= 30  # one outlier channel, as in a transformer's activations
    np.savez(tmp_path / "outliers.npz", x=x)
    data = CalibrationData.from_npz(tmp_path / "outliers.npz")
    feeds = list(data.feeds(graph))
    before = [ort_session(graph).run(None, f)[0] for f in feeds]

    q = graph.clone()
    observed = collect(q, ["x", "h2"], data, observer=lambda: Several(Ranges(), RowSample(256, 32)))
    smooth = SmoothQuantPass({n: o["ranges"] for n, o in observed.items()}, alpha=None, insert_mul=True,
                             samples={n: o["rows"].rows for n, o in observed.items()})
    smooth(q.model)
    assert set(smooth.alphas) == {"x", "h2"}
    assert smooth.alphas["x"] is not None  # the outlier channel is worth smoothing on the int8 grid
    after = [ort_session(q).run(None, f)[0] for f in feeds]
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
