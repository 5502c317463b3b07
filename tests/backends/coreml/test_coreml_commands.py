"""The Core ML backend from the command line: convert, verify and inspect on Linux, and every refusal as one
line with its exit code (an op with no lowering, a recipe the deployment target cannot express, a corrupt
package, deploying an iOS build-only target)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import onnx
import pytest

from tests.helpers import mlp_data, mlp_model, with_node


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlp")
    return directory, mlp_model(directory / "mlp.onnx"), mlp_data(directory / "calib.npz")


def test_convert_verify_and_inspect(mlp, tmp_path):
    _, model, calib = mlp
    out = tmp_path / "int8"
    done = cli("convert", str(model), "--target", "macos-coreml", "--recipe", "int8", "--calib", str(calib), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "model.mlpackage/ package" in done.stdout and "cosine mean 0.99" in done.stdout
    verified = cli("verify", str(out), "--data", str(calib), "--limit", "4", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["outputs"]["y"]["cosine_mean"] > 0.99
    shown = cli("inspect", str(out / "model.mlpackage"))
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "deployment target: iOS17" in shown.stdout and "int8 activations: 2 quantize ops" in shown.stdout
    assert "int8[32, 64] per channel" in shown.stdout


def test_an_op_with_no_lowering_is_named_with_its_node(mlp, tmp_path):
    directory, model, calib = mlp
    odd = with_node(model, directory / "odd.onnx", onnx.helper.make_node("Det", ["y"], ["det"], name="the_odd_one"))
    done = cli("convert", str(odd), "--target", "macos-coreml", "--recipe", "fp32", "--calib", str(calib), "-o", str(tmp_path / "x"))
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Det" in done.stderr and "the_odd_one" in done.stderr
    assert not (tmp_path / "x").exists()


def test_a_recipe_the_deployment_target_cannot_express_names_the_one_that_can(mlp, tmp_path):
    _, model, calib = mlp
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "old-mac.yaml").write_text("backend: coreml\narch: aarch64\noptions: {deployment_target: iOS17}\n")
    done = cli("convert", str(model), "--target", "old-mac", "--recipe", "int4", "--calib", str(calib),
               "-o", str(tmp_path / "x"), env={"EDGESDK_TARGETS": str(targets)})
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "needs Core ML deployment target iOS18 (macOS 15)" in done.stderr and "sets iOS17" in done.stderr
    other = cli("convert", str(model), "--target", "macos-coreml", "--recipe", "gguf", "-o", str(tmp_path / "y"))
    assert other.returncode == 2 and "cannot be expressed by the coreml backend (it takes: fp32, int4" in other.stderr


def test_a_corrupt_package_is_a_one_line_error(mlp, tmp_path):
    _, model, calib = mlp
    out = tmp_path / "fp32"
    assert cli("convert", str(model), "--target", "macos-coreml", "--recipe", "fp32", "--calib", str(calib),
               "-o", str(out)).returncode == 0
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(out / "model.mlpackage", broken)
    spec = broken / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 3])
    done = cli("inspect", str(broken))
    assert done.returncode == 5 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "broken.mlpackage" in done.stderr and "not a readable Core ML package" in done.stderr


def test_an_ios_target_builds_but_does_not_deploy(mlp, tmp_path):
    _, model, calib = mlp
    out = tmp_path / "ios"
    assert cli("convert", str(model), "--target", "ios-coreml", "--recipe", "int8-dynamic", "--calib", str(calib),
               "-o", str(out)).returncode == 0
    (tmp_path / "devices.yaml").write_text("devices:\n  phone: {transport: local, target: ios-coreml}\n")
    done = cli("profile", str(out), "--device", "phone", "--devices", str(tmp_path / "devices.yaml"))
    assert done.returncode == 2 and "builds Core ML packages only" in done.stderr and done.stderr.count("\n") == 1, done.stderr
