"""AWQ: the searched scale lowers the rounded layer's output error where a few input channels are large,
and rescaling leaves the float model's outputs as they were."""

from __future__ import annotations

import numpy as np

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.quant.numerics import blockwise, dequantize_blockwise
from edgesdk.quant.observers import ChannelMeanAbs, RowSample, Several
from edgesdk.quant.passes.awq import AwqScalePass
from edgesdk.quant.stats import collect
from edgesdk.runtime import ort_session
from tests.helpers import mlp_data, mlp_model


def test_the_search_beats_plain_rounding_when_some_channels_are_salient():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (512, 128)).astype(np.float32)
    x[:, :4] *= 20  # a few salient channels, as after a transformer's norms
    weights = [rng.normal(0, 0.05, (128, 64)).astype(np.float32) for _ in range(2)]
    awq = AwqScalePass({}, block=32)
    alpha, scale = awq.search(x, np.abs(x).mean(axis=0), weights)

    def error(s):
        total = 0.0
        for w in weights:
            q, sc, zp = blockwise(w * s[:, None], 32, bits=4, symmetric=False, search_clip=False)
            total += float(np.sum((x @ (dequantize_blockwise(q, sc, zp, 32) / s[:, None]) - x @ w) ** 2))
        return total

    assert alpha > 0
    assert error(scale) < 0.9 * error(np.ones(128, np.float32))


def test_rescaling_keeps_the_float_outputs(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx", hidden=64))
    data = CalibrationData.from_npz(mlp_data(tmp_path / "calib.npz", samples=8))
    feeds = list(data.feeds(graph))
    before = [ort_session(graph).run(None, f)[0] for f in feeds]
    q = graph.clone()
    observed = collect(q, ["x", "h2"], data, observer=lambda: Several(ChannelMeanAbs(), RowSample(256, 32)))
    awq = AwqScalePass(observed, block=16)
    awq(q.model)
    assert set(awq.alphas) == {"x", "h2"}
    after = [ort_session(q).run(None, f)[0] for f in feeds]
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
