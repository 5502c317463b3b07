"""Graph.save with external data, and the float weights swapped for their written file (``mapped``)."""

from __future__ import annotations

import mmap
import shutil

import numpy as np
import onnx
import onnx_ir as ir
from onnx import numpy_helper

from edgesdk import graph as graph_module
from edgesdk.graph import Graph


def _large_graph(monkeypatch) -> tuple[Graph, np.ndarray]:
    monkeypatch.setattr(graph_module, "EXTERNAL_DATA_ABOVE", 1 << 20)  # external data from 1 MB, not 256 MB
    weight = np.random.default_rng(0).standard_normal((256, 2048)).astype(np.float32)
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([1, 256]))
    w = ir.Value(name="w", const_value=ir.tensor(weight.copy()))
    tape = ir.tape.Tape()
    y = tape.op("MatMul", [x, w])
    y.name, y.type = "y", ir.TensorType(ir.DataType.FLOAT)
    model = ir.Model(ir.Graph([x], [y], nodes=tape.nodes, initializers=[w], opset_imports={"": 21}), ir_version=10)
    return Graph(model=model, name="large"), weight


def _owner(array: np.ndarray):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.base.obj if isinstance(array.base, memoryview) else array.base


def test_mapped_weights_read_the_written_file_and_survive_its_removal(tmp_path, monkeypatch):
    graph, weight = _large_graph(monkeypatch)
    clone = graph.clone()  # shares the weight tensors, as a quantized graph shares its float graph's
    graph.save(tmp_path / "a" / "model.onnx", mapped=[graph, clone])
    for g in (graph, clone):
        array = g.model.graph.initializers["w"].const_value.numpy()
        assert isinstance(_owner(array), mmap.mmap)  # no longer a copy in memory
        assert np.array_equal(array, weight)
    shutil.rmtree(tmp_path / "a")  # an artifact directory renamed or removed after export
    saved = graph.save(tmp_path / "b" / "model.onnx")
    loaded = onnx.load(saved)
    assert np.array_equal(numpy_helper.to_array(loaded.graph.initializer[0], str(saved.parent)), weight)


def test_without_mapped_the_graph_keeps_its_arrays(tmp_path, monkeypatch):
    graph, weight = _large_graph(monkeypatch)
    before = graph.model.graph.initializers["w"].const_value
    graph.save(tmp_path / "model.onnx")
    assert graph.model.graph.initializers["w"].const_value is before
    assert (tmp_path / "model.onnx.data").stat().st_size == weight.nbytes
