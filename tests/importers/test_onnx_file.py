"""Importing ONNX files: good ones load; broken ones fail with a message naming the problem."""

from __future__ import annotations

import pytest
from onnx import helper

import edgesdk
from edgesdk.errors import ModelError, UnsupportedOperatorError
from tests.helpers import mlp_model, with_node


def test_loads_a_float_model(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))
    assert [s.name for s in graph.inputs] == ["x"]
    assert graph.outputs[0].shape == ("batch", 16, 8)
    assert graph.op_counts()["MatMul"] == 2
    assert not graph.is_quantized


def test_truncated_file_names_the_file(tmp_path):
    good = mlp_model(tmp_path / "mlp.onnx")
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"truncated\.onnx: not a valid ONNX model"):
        edgesdk.load(bad)


def test_not_a_model(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a model\n" * 20)
    with pytest.raises(ModelError, match=r"notes\.onnx: not a valid ONNX model"):
        edgesdk.load(bad)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        edgesdk.load(tmp_path / "empty.onnx")
    with pytest.raises(ModelError, match="no such file"):
        edgesdk.load(tmp_path / "absent.onnx")


def test_unknown_standard_operator_names_op_and_node(tmp_path):
    src = mlp_model(tmp_path / "mlp.onnx")
    bad = with_node(src, tmp_path / "bad.onnx", helper.make_node("FrobnicateTensor", ["?"], ["z"], name="my_frob"))
    with pytest.raises(UnsupportedOperatorError) as info:
        edgesdk.load(bad)
    assert "FrobnicateTensor" in str(info.value) and "my_frob" in str(info.value)


def test_custom_domain_operator_is_refused(tmp_path):
    src = mlp_model(tmp_path / "mlp.onnx")
    node = helper.make_node("Swizzle", ["?"], ["z"], name="vendor_swizzle", domain="com.acme")
    bad = with_node(src, tmp_path / "custom.onnx", node, opset_domain="com.acme")
    with pytest.raises(UnsupportedOperatorError, match=r"com\.acme::Swizzle at node 'vendor_swizzle'"):
        edgesdk.load(bad)


def test_unsupported_opset(tmp_path):
    with pytest.raises(ModelError, match="opset 9 is not supported"):
        edgesdk.load(mlp_model(tmp_path / "old.onnx", opset=9))


def test_qdq_model_loads_and_is_not_requantized(tmp_path):
    """A model someone already quantized (ORT quantize_static, QDQ) imports, inspects and exports as is."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    import numpy as np

    from tests.helpers import mlp_data

    src = mlp_model(tmp_path / "mlp.onnx")
    data = np.load(mlp_data(tmp_path / "calib.npz"))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{"x": data["x"][i : i + 1]} for i in range(len(data["x"]))])

        def get_next(self):
            return next(self.rows, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(src), str(qdq), Reader(), quant_format=QuantFormat.QDQ)
    graph = edgesdk.load(qdq)
    assert graph.is_quantized and graph.op_counts()["DequantizeLinear"] >= 2
    with pytest.raises(ModelError, match="already quantized"):
        edgesdk.quantize(graph, "int8", calibration=tmp_path / "calib.npz")
    artifact = edgesdk.export(edgesdk.quantize(graph, "fp32"), "host", tmp_path / "art", reference_data=tmp_path / "calib.npz")
    report = edgesdk.verify(artifact, tmp_path / "calib.npz")
    assert report["outputs"]["y"]["cosine_min"] > 0.99999
