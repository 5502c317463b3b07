"""Importing PyTorch modules and .py model files through torch.onnx.export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgesdk
from edgesdk.errors import ModelError
from edgesdk.runtime import ort_session


class TinyClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)


def test_module_exports_to_one_onnx_file_and_matches_torch():
    module = TinyClassifier()
    x = torch.randn(4, 32)
    graph = edgesdk.load(module, (x,), input_names=["features"], output_names=["logits"])
    assert [s.name for s in graph.inputs] == ["features"] and graph.outputs[0].name == "logits"
    got = ort_session(graph).run(None, {"features": x.numpy()})[0]
    np.testing.assert_allclose(got, module(x).detach().numpy(), atol=1e-5)
    assert all(v.const_value is not None for v in graph.model.graph.initializers.values())  # no external data


def test_module_without_example_inputs_is_refused():
    with pytest.raises(ModelError, match="example_inputs"):
        edgesdk.load(TinyClassifier())


def test_opset_outside_18_to_20_is_refused():
    with pytest.raises(ModelError, match="opset 23"):
        edgesdk.load(TinyClassifier(), (torch.randn(1, 32),), opset=23)


def test_python_model_file(tmp_path):
    file = tmp_path / "tiny.py"
    file.write_text(
        "import torch\n"
        "def build_model():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Linear(8, 4), (torch.randn(2, 8),), {'input_names': ['x'], 'output_names': ['y']}\n"
    )
    graph = edgesdk.load(file)
    assert graph.name == "tiny" and graph.outputs[0].name == "y"


def test_python_model_file_without_build_model(tmp_path):
    file = tmp_path / "nothing.py"
    file.write_text("x = 1\n")
    with pytest.raises(ModelError, match="build_model"):
        edgesdk.load(file)
