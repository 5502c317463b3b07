"""The TFLite backend through the commands a user runs: convert, verify, inspect, deploy to the loopback sshd
device with the LiteRT runner; on all-MiniLM-L6-v2 (edgesdk's export and the TorchScript one) with real text:
the full-int8 file holds the quantized graph's own weights, its accuracy against the ORT int8 artifact; and every
refusal as one line with its exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgesdk
from edgesdk.backends.tflite.interpreter import describe
from edgesdk.cli import main

from tests.backends.tflite.weights_check import assert_weights_are_the_graphs
from tests.devices.sshd_server import write_devices
from tests.helpers import mlp_data, mlp_model, with_node

HELD_OUT = "200"
HELDOUT = 100  # held-out sentences for the accuracy check against the ORT int8 artifact

pytestmark = pytest.mark.heavy(300)  # seconds, about: MiniLM converted to full int8 twice (deploy, TorchScript)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=900)


def convert(model, calib, out, recipe="int8", target="host-tflite") -> None:
    assert main(["convert", str(model), "--target", target, "--recipe", recipe, "--calib", str(calib), "-o", str(out),
                 "--json"]) == 0


def verified(capsys, artifact, heldout) -> dict:
    capsys.readouterr()
    assert main(["verify", str(artifact), "--data", str(heldout), "--limit", HELD_OUT, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["outputs"]["sentence_embedding"]


@pytest.fixture(scope="module")
def tflite_deployed(sshd, minilm_onnx, minilm_data, tmp_path_factory):
    """The one full-int8 all-MiniLM-L6-v2 TFLite artifact of this module, made by `edgesdk deploy --target
    rpi4-tflite` to the loopback sshd device (a conversion takes about a minute: the lowering observes the
    ranges of 64 calibration sentences through TF, then the converter runs): (the deploy's JSON, the artifact)."""
    calib, _ = minilm_data
    work = tmp_path_factory.mktemp("tflite-deploy")
    devices = write_devices(work / "devices.yaml", {"pi": sshd.device(target="rpi4-tflite")})
    done = cli("deploy", str(minilm_onnx), "--target", "rpi4-tflite", "--device", "pi", "--calib", str(calib), "--runs",
               "5", "--warmup", "1", "-o", str(work / "minilm-int8"), "--devices", str(devices), "--runs-dir",
               str(work / "runs"), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), work / "minilm-int8"


@pytest.fixture(scope="module")
def tflite_int8(tflite_deployed):
    return tflite_deployed[1]


def test_verify_a_full_int8_artifact(tflite_int8, minilm_artifacts, minilm_data, capsys):
    """A regression floor through the CLI, not issue 7's target (within 0.002 of the ORT int8 artifact), which
    full int8 misses: 0.988 against 0.998 measured on 600 sentences (benchmarks/minilm_tflite.py)."""
    _, heldout = minilm_data
    tflite = verified(capsys, tflite_int8, heldout)
    ort = verified(capsys, minilm_artifacts("int8").path, heldout)
    assert tflite["cosine_mean"] >= ort["cosine_mean"] - 0.015, (tflite, ort)


def test_inspect_shows_every_op_and_that_the_file_is_fully_int8(tflite_int8, capsys):
    capsys.readouterr()
    assert main(["inspect", str(tflite_int8), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "tflite" and report["artifact"]["backend"] == "tflite"
    assert report["fully_int8"] and report["not_int8"] == []
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"} <= set(report["op_counts"])
    fc = [op for op in report["ops"] if op["op"] == "FULLY_CONNECTED"]
    assert fc and all(op["inputs"][0] == "int8" and op["outputs"] == ["int8"] for op in fc)
    assert main(["inspect", str(tflite_int8)]) == 0
    text = capsys.readouterr().out
    assert "fully int8: yes" in text and "FULLY_CONNECTED" in text


def test_the_torchscript_export_converts_and_verifies(torchscript_minilm, minilm_data, tmp_path, capsys):
    calib, heldout = minilm_data
    convert(torchscript_minilm, calib, tmp_path / "ts-int8")
    assert verified(capsys, tmp_path / "ts-int8", heldout)["cosine_mean"] >= 0.98
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "ts-int8"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fully_int8"]


def test_deploy_to_an_rpi4_tflite_device_over_ssh(tflite_deployed):
    doc, _ = tflite_deployed  # `edgesdk deploy --target rpi4-tflite` to the loopback sshd device
    assert doc["latency_ms"]["n"] == 5 and doc["peak_rss_mb"] > 20
    assert doc["runtime"]["name"] == "litert" and doc["runtime"]["threads"] == 4  # targets/rpi4-tflite.yaml
    on_device, host = doc["accuracy"]["sentence_embedding"], doc["host_accuracy"]["sentence_embedding"]
    assert on_device["cosine_mean"] == pytest.approx(host["cosine_mean"], abs=1e-3)
    assert "model.tflite" in doc["upload"]["uploaded"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlp")
    return directory, mlp_model(directory / "mlp.onnx"), mlp_data(directory / "calib.npz")


def test_int4_is_refused_with_the_alternative(mlp, tmp_path):
    _, model, calib = mlp
    done = cli("convert", str(model), "--target", "host-tflite", "--recipe", "int4", "-o", str(tmp_path / "x"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "use --recipe int8 or the onnxruntime target" in done.stderr


def test_an_op_with_no_lowering_is_named_with_its_node(mlp, tmp_path):
    import onnx

    directory, model, calib = mlp
    odd = with_node(model, directory / "odd.onnx", onnx.helper.make_node("Det", ["y"], ["det"], name="the_odd_one"))
    done = cli("convert", str(odd), "--target", "host-tflite", "--recipe", "fp32", "--calib", str(calib),
               "-o", str(tmp_path / "x"))
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Det" in done.stderr and "the_odd_one" in done.stderr
    assert not (tmp_path / "x").exists()


def test_a_truncated_tflite_file_is_a_one_line_error(tflite_int8, tmp_path):
    data = (tflite_int8 / "model.tflite").read_bytes()
    (tmp_path / "half.tflite").write_bytes(data[: len(data) // 2])
    done = cli("inspect", str(tmp_path / "half.tflite"))
    assert done.returncode == 5 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "half.tflite" in done.stderr


def test_a_device_without_litert_gets_the_install_command(sshd, tflite_int8, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = str(bare / "bin" / "python")
    devices = write_devices(tmp_path / "devices.yaml", {"bare": sshd.device(target="rpi4-tflite", python=python)})
    done = cli("profile", str(tflite_int8), "--device", "bare", "--devices", str(devices), "--runs-dir",
               str(tmp_path / "runs"))
    assert done.returncode == 7 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "lacks ai_edge_litert or tflite_runtime and numpy" in done.stderr
    assert f"install on the device with: {python} -m pip install ai-edge-litert numpy" in done.stderr


# ---------------------------------------------------------------------------------------- all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm_int8_tflite(tflite_int8, minilm_onnx, minilm_data):
    """(model.tflite, its io map, the quantized graph it was lowered from: the same recipe on the same
    calibration sentences, quantized again here — the artifact is the deployed one above)."""
    calib, _ = minilm_data
    quantized = edgesdk.quantize(edgesdk.load(minilm_onnx), "int8", calibration=calib)
    manifest = json.loads((tflite_int8 / "manifest.json").read_text())
    return tflite_int8 / "model.tflite", manifest["backend_info"]["io"], quantized


def test_minilm_int8_is_fully_int8_with_the_graphs_weights(minilm_int8_tflite):
    path, io, quantized = minilm_int8_tflite
    info = describe(path)
    assert info["fully_int8"], info["not_int8"]
    for op in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "GELU", "SUM", "RSQRT", "DEPTHWISE_CONV_2D", "CONCATENATION"):
        assert op in info["op_counts"], op
    assert {i["name"]: i["dtype"] for i in info["inputs"]} == {
        "input_ids": "int64", "attention_mask": "int64", "token_type_ids": "int64"}
    assert io["outputs"] == {"sentence_embedding": "sentence_embedding"}
    assert_weights_are_the_graphs(quantized, path)


def test_minilm_int8_accuracy_against_the_ort_artifact(tflite_int8, minilm_artifacts, minilm_data):
    """Mean cosine to the float model on HELDOUT held-out sentences, each artifact verified as `edgesdk verify`
    does (against its own float model)."""
    _, heldout = minilm_data
    tflite, ort = (edgesdk.verify(art, heldout, limit=HELDOUT)["outputs"]["sentence_embedding"]["cosine_mean"]
                   for art in (tflite_int8, minilm_artifacts("int8")))
    # A regression floor, not issue 7's target (within 0.002 of ORT), which full int8 misses: measured 0.9945
    # against 0.9982 for ORT (100 sentences; 0.9875 before the variance grids). ORT keeps LayerNorm, softmax,
    # GELU and the residual adds in float; full int8 rounds many more tensors (see the report in lowering.py).
    assert tflite > ort - 0.006, (tflite, ort)
