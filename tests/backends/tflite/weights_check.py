"""Checks that a .tflite file's int8 filters are the quantized graph's own weights."""

from __future__ import annotations

import numpy as np

from edgesdk.backends.tflite.interpreter import weight_tensors


def graph_weights(graph) -> dict[bytes, float]:
    """Every output channel of the graph's int8 linear weights: its int8 values (bytes) -> its scale."""
    model = graph.model.graph
    found = {}
    for node in model:
        if node.op_type != "DequantizeLinear" or node.inputs[0].const_value is None:
            continue
        if not any(u.op_type in ("MatMul", "Gemm") for u, _ in node.outputs[0].uses()):
            continue
        q, scale = node.inputs[0].const_value.numpy(), node.inputs[1].const_value.numpy()
        assert node.attributes.get_int("axis", 1) == 1 and q.dtype == np.int8
        for column, s in zip(q.T, scale):
            found[np.ascontiguousarray(column).tobytes()] = float(s)
    return found


def assert_weights_are_the_graphs(graph, path) -> None:
    """Each FULLY_CONNECTED filter row of the .tflite is one of the graph's int8 output channels, with the
    graph's scale (the converter's per-channel max-abs quantization of q·scale gives them back). A layer fed
    by channel groups takes their concatenation, its input channels in the groups' order: its filter is
    then the graph's rows with one permutation of the input channels shared by all of them."""
    expected = graph_weights(graph)
    by_values = {np.sort(np.frombuffer(key, np.int8)).tobytes(): key for key in expected}
    filters = weight_tensors(path)
    assert filters
    rows = 0
    for tensor in filters:
        originals = []
        for row, scale in zip(tensor["values"], tensor["scales"]):
            key = np.ascontiguousarray(row).tobytes()
            key = key if key in expected else by_values.get(np.sort(row).tobytes())
            assert key is not None, f"{tensor['name']}: a filter row that is not one of the graph's int8 weights"
            assert scale == np.float32(expected[key]), (tensor["name"], scale, expected[key])
            originals.append(np.frombuffer(key, np.int8))
            rows += 1
        # the same input permutation for every row: the filter's columns are the graph rows' columns
        got, want = np.asarray(tensor["values"]).T, np.asarray(originals).T
        assert np.array_equal(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])]), tensor["name"]
    assert rows == len(expected)
