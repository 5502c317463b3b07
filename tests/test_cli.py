"""The CLI's exact forms, its JSON, and its refusals: clear message, non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgesdk.cli import main
from tests.helpers import mlp_data, mlp_model


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture()
def mlp(tmp_path):
    return mlp_model(tmp_path / "mlp.onnx"), mlp_data(tmp_path / "calib.npz"), mlp_data(tmp_path / "heldout.npz", seed=2)


def test_convert_verify_inspect_on_minilm(tmp_path, minilm_onnx, minilm_data, capsys):
    calib, heldout = minilm_data
    out = tmp_path / "int8"
    assert main(["convert", str(minilm_onnx), "--target", "host", "--recipe", "int8", "--calib", str(calib), "-o", str(out), "--json"]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert converted["recipe"]["name"] == "int8" and (out / "manifest.json").exists()

    assert main(["verify", str(out), "--data", str(heldout), "--limit", "100", "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    emb = verified["outputs"]["sentence_embedding"]
    assert set(emb) >= {"cosine_mean", "cosine_min", "max_abs_error"}
    assert emb["cosine_mean"] >= 0.995 and emb["cosine_min"] <= emb["cosine_mean"]

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "36 × MatMulIntegerToFloat" in text and "3 × int8 per-row" in text


def test_convert_with_recipe_options(tmp_path, mlp, capsys):
    model, calib, _ = mlp
    out = tmp_path / "int4"
    assert main(["convert", str(model), "--recipe", "int4", "-O", "block_size=16", "-O", "symmetric=true", "--calib", str(calib), "-o", str(out), "--json"]) == 0
    recipe = json.loads(capsys.readouterr().out)["recipe"]
    assert recipe == {"name": "int4", "options": {"kv_cache": "float", "max_loss": None, "block_size": 16, "symmetric": True, "embedding_bits": 4, "output_bits": 4,
                                                  "clip_search": True, "rounding": "rtn", "act_order": True,
                                                  "calibration_samples": 32, "float_activations": False}}


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["--recipe", "int9"], "unknown recipe 'int9'", 2),
        (["--target", "toaster"], "unknown target 'toaster'", 2),
        (["--recipe", "int4", "-O", "block_size=48"], "block_size: Input should be 16, 32, 64 or 128", 2),
        (["--recipe", "int8", "-O", "nonsense"], "expected KEY=VALUE", 2),
    ],
)
def test_usage_errors(tmp_path, mlp, args, message, code):
    model, calib, _ = mlp
    result = cli("convert", str(model), "--calib", str(calib), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_model_and_bad_calibration(tmp_path, mlp):
    model, calib, _ = mlp
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model.read_bytes()[:300])
    result = cli("convert", str(truncated), "--calib", str(calib), "-o", str(tmp_path / "a"))
    assert result.returncode == 3 and "not a valid ONNX model" in result.stderr and "Traceback" not in result.stderr

    np.savez(tmp_path / "ints.npz", x=np.zeros((4, 16, 32), np.int32))
    result = cli("convert", str(model), "--calib", str(tmp_path / "ints.npz"), "-o", str(tmp_path / "b"))
    assert result.returncode == 4 and "'x' is int32, the model expects float32" in result.stderr
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_failed_convert_keeps_the_previous_artifact(tmp_path, mlp):
    model, calib, _ = mlp
    out = tmp_path / "art"
    assert cli("convert", str(model), "--recipe", "int8", "--calib", str(calib), "-o", str(out)).returncode == 0
    before = (out / "manifest.json").read_text()
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 16, 7), np.float32))
    assert cli("convert", str(model), "--recipe", "int8", "--calib", str(tmp_path / "bad.npz"), "-o", str(out)).returncode == 4
    assert (out / "manifest.json").read_text() == before


def test_verify_refuses_a_tampered_artifact(tmp_path, mlp):
    model, calib, heldout = mlp
    out = tmp_path / "art"
    assert cli("convert", str(model), "--recipe", "int8-dynamic", "--calib", str(calib), "-o", str(out)).returncode == 0
    with open(out / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    result = cli("verify", str(out), "--data", str(heldout))
    assert result.returncode == 5 and "does not match its sha256" in result.stderr


def test_help_imports_no_heavy_framework():
    code = (
        "import sys; from edgesdk.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'tensorflow', 'paramiko', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_verify_checks_heldout_data_against_the_manifest_inputs(tmp_path, mlp):
    model, calib, _ = mlp
    out = tmp_path / "art"
    assert cli("convert", str(model), "--recipe", "int8", "--calib", str(calib), "-o", str(out)).returncode == 0
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 16, 32), np.float64).astype(np.int64))
    result = cli("verify", str(out), "--data", str(tmp_path / "bad.npz"))
    assert result.returncode == 4 and "'x' is int64, the model expects float32" in result.stderr
