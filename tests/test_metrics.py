"""Accuracy figures: cosine per sample, max error, top-1 agreement for classifier outputs."""

from __future__ import annotations

import numpy as np
import torch

import edgesdk
from edgesdk.metrics import compare, cosine


def test_cosine_rows_and_zero_vectors():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert np.allclose(cosine(a, b), [1.0, 1.0, 0.0])


def test_compare_reports_worst_sample_and_error():
    want = [{"y": np.array([[1.0, 2.0, 3.0]])}, {"y": np.array([[1.0, 0.0, 0.0]])}]
    got = [{"y": np.array([[1.0, 2.0, 3.5]])}, {"y": np.array([[0.0, 1.0, 0.0]])}]
    result = compare(got, want)["y"]
    assert result["cosine_min"] == 0.0 and 0.4 < result["cosine_mean"] < 0.5
    assert result["max_abs_error"] == 1.0 and "top1_agreement" not in result


def test_classifier_gets_top1_agreement(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    graph = edgesdk.load(module, (torch.randn(1, 32),), input_names=["features"], output_names=["logits"])
    data = {"features": np.random.default_rng(0).normal(size=(200, 1, 32)).astype(np.float32)}
    artifact = edgesdk.export(edgesdk.quantize(graph, "int8", calibration=data), "host", tmp_path / "clf")
    logits = edgesdk.verify(artifact, data)["outputs"]["logits"]
    assert 0.9 <= logits["top1_agreement"] <= 1.0 and logits["cosine_mean"] > 0.99
