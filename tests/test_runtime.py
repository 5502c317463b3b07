"""Sessions that observe a graph: weights fed from the graph's own arrays, only the needed nodes run."""

from __future__ import annotations

import numpy as np

from edgesdk.api import load
from edgesdk.runtime import WeightFedSession
from tests.helpers import mlp_model


def test_weight_fed_session_reads_the_graphs_own_weights(tmp_path):
    graph = load(mlp_model(tmp_path / "mlp.onnx", hidden=1024))
    body = graph.model.graph
    w1, b1 = (body.initializers[name].const_value.numpy() for name in ("w1", "b1"))
    x = np.random.default_rng(0).normal(0, 1, (2, 16, 32)).astype(np.float32)

    session = WeightFedSession(graph, outputs=["h2"])
    (h2,) = session.run(["h2"], {"x": x})
    np.testing.assert_allclose(h2, np.maximum(x @ w1 + b1, 0), rtol=1e-4, atol=1e-4)

    # The large weight is an input fed at each run with the graph's own tensor (ORT reads a numpy input in
    # place); the small ones stay constants of the session.
    assert "w1" in {i.name for i in session.session.get_inputs()}
    assert "w2" not in {i.name for i in session.session.get_inputs()}
    assert session.weights["w1"] is body.initializers["w1"].const_value

    # The graph itself is as it was: same initializers, same outputs.
    assert set(body.initializers) == {"w1", "b1", "w2", "b2"}
    assert [v.name for v in body.outputs] == ["y"]
