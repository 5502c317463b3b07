"""Small real models built with onnx.helper, for the error-path tests (the accuracy tests use MiniLM)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_model(path: Path, hidden: int = 64, opset: int = 18, seed: int = 0) -> Path:
    """x[batch, 16, 32] -> MatMul+Add -> Relu -> MatMul+Add -> y[batch, 16, 8]."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(0, 0.2, (32, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (hidden,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (hidden, 8)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="fc2"),
        helper.make_node("Add", ["h3", "b2"], ["y"], name="fc2_bias"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16, 8])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    onnx.save(model, path)
    return path


def mlp_data(path: Path, samples: int = 16, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(0, 1, (samples, 16, 32)).astype(np.float32))
    return path


def mlp_artifacts(directory: Path, recipes: tuple[str, ...] = ("int8",)) -> dict:
    """recipe -> the small MLP exported for the host with that recipe (calibrated and referenced on
    ``directory``/calib.npz, which the fleet and fault tests also feed)."""
    import edgesdk

    calib = mlp_data(directory / "calib.npz")
    graph = edgesdk.load(str(mlp_model(directory / "mlp.onnx")))
    return {recipe: edgesdk.export(edgesdk.quantize(graph, recipe, calibration=calib), "host", directory / recipe,
                                   reference_data=calib) for recipe in recipes}


def with_node(src: Path, dst: Path, node: onnx.NodeProto, opset_domain: str | None = None) -> Path:
    """A copy of ``src`` with ``node`` applied to its output (to plant an unsupported operator)."""
    model = onnx.load(src)
    out = model.graph.output[0].name
    node.input[0] = out
    model.graph.node.append(node)
    model.graph.output[0].name = node.output[0]
    if opset_domain:
        model.opset_import.append(helper.make_opsetid(opset_domain, 1))
    onnx.save(model, dst)
    return dst


@contextlib.contextmanager
def module_folder(tmp_path_factory, name: str):
    """A module fixture's folder, deleted when the module is done: pytest keeps every tmp folder to the end of
    the run, and a Gemma artifact holds 1-2 GB (kept, the LLM modules' artifacts filled CI's disk)."""
    folder = tmp_path_factory.mktemp(name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
