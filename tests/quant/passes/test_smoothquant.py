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


def _rms_norm_mlp(path):
    """x -> RMSNorm spelled out (Mul by a constant gain) -> MatMul, as the causal-LM builder writes it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    gain = numpy_helper.from_array(rng.uniform(0.5, 1.5, 32).astype(np.float32), "gain")
    w = numpy_helper.from_array(rng.normal(0, 0.2, (32, 8)).astype(np.float32), "w")
    eps = numpy_helper.from_array(np.array(1e-6, np.float32), "eps")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["mean"], keepdims=1, axes=[-1]),
        helper.make_node("Add", ["mean", "eps"], ["var"]),
        helper.make_node("Sqrt", ["var"], ["root"]),
        helper.make_node("Div", ["x", "root"], ["normed"]),
        helper.make_node("Mul", ["normed", "gain"], ["h"]),
        helper.make_node("MatMul", ["h", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "rms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16, 8])],
                              initializer=[gain, w, eps, two])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    return path


def test_the_division_folds_into_an_rms_norm_gain_of_an_unshaped_activation(tmp_path):
    graph = edgesdk.load(_rms_norm_mlp(tmp_path / "rms.onnx"))
    h = next(n.outputs[0] for n in graph.model.graph if n.op_type == "Mul")
    h.shape = None  # as the causal-LM builder leaves it: no shape inference on a 30-layer decoder
    data = CalibrationData.from_npz(mlp_data(tmp_path / "calib.npz", samples=8))
    feeds = list(data.feeds(graph))
    before = [ort_session(graph).run(None, f)[0] for f in feeds]

    q = graph.clone()
    nodes_before = len(list(q.model.graph))
    smooth = SmoothQuantPass(collect(q, ["h"], data), alpha=0.8, insert_mul=False)
    smooth(q.model)
    assert smooth.smoothed == ["h"]
    assert len(list(q.model.graph)) == nodes_before  # folded into the gain, no Mul inserted
    after = [ort_session(q).run(None, f)[0] for f in feeds]
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
