"""The Core ML runner end to end over SSH against a loopback device that looks like a Mac: Debian's sshd whose
sessions get a PATH with a `uname` that reports Darwin arm64 and no coreutils `timeout` (macOS has none, so the
remote command is bounded by edgesdk's python watchdog), and a python whose `coremltools` is a stand-in with
the predict API (tests/backends/coreml/standin: its numbers come from the package's MIL program run with
numpy). Tested: protocol, upload, the compiled-model cache, timeout handling and parsing; a real Mac in
devices.yaml takes the same path."""

from __future__ import annotations

import json

import pytest

import edgesdk
from edgesdk.errors import DeviceTimeoutError, MissingRuntimeError

from tests.backends.coreml.conftest import profile_on_mac
from tests.devices.sshd_server import wait_gone
from tests.helpers import mlp_data, mlp_model


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A small W8A8 package (the runner's path, not MiniLM's numbers, is under test here)."""
    directory = tmp_path_factory.mktemp("mlp")
    calib = mlp_data(directory / "calib.npz")
    graph = edgesdk.load(str(mlp_model(directory / "mlp.onnx")))
    return edgesdk.export(edgesdk.quantize(graph, "int8", calibration=calib), "macos-coreml", directory / "int8",
                          reference_data=calib)


def test_profile_on_a_mac_runs_the_package_and_caches_the_compiled_model(mac, package, tmp_path):
    _, device, _ = mac
    first = profile_on_mac(package, device, tmp_path, runs=3, warmup=1)
    assert first.facts.system == "Darwin" and first.facts.arch == "arm64"
    assert first.runtime["name"] == "coreml" and first.runtime["version"] == "9.0-standin"
    assert first.runtime["compiled_model"] == "compiled now" and first.runtime["compute_units"] == "ALL"
    assert first.latency.n == 3 and first.peak_rss_mb > 0
    on_device = first.accuracy["y"]
    at_export = package.manifest.accuracy["outputs"]["y"]
    assert on_device["cosine_mean"] == pytest.approx(at_export["cosine_mean"], abs=1e-3)
    again = profile_on_mac(package, device, tmp_path / "again", runs=2, warmup=0)
    assert again.runtime["compiled_model"] == "cached" and again.latency.n == 2
    assert again.accuracy["y"]["cosine_mean"] == pytest.approx(on_device["cosine_mean"], abs=1e-6)


def test_a_hung_prediction_is_killed_on_the_mac_without_timeout(mac, package, tmp_path):
    _, device, hang = mac
    hang.write_text("600")
    try:
        with pytest.raises(DeviceTimeoutError):
            profile_on_mac(package, device, tmp_path, runs=2, warmup=0, timeout_s=20)
    finally:
        hang.unlink()
    assert wait_gone("coreml_runner.py", seconds=10) == []  # the watchdog killed the runner's process group
    assert wait_gone("edgesdk.backends.coreml.evaluate", seconds=10) == []  # and the stand-in's worker


def test_a_linux_device_is_refused_for_core_ml(sshd, package, tmp_path):
    with pytest.raises(MissingRuntimeError, match="runs Linux; the coreml runtime runs only on macOS"):
        profile_on_mac(package, sshd.device(target="macos-coreml"), tmp_path, runs=1, warmup=0)



def test_deploy_to_the_mac_from_the_command_line(mac, tmp_path, capsys):
    """`edgesdk deploy MODEL --target macos-coreml --device mac`: convert, push, run, bring back the figures."""
    from edgesdk.cli import main
    from tests.devices.sshd_server import write_devices

    _, device, _ = mac
    calib = mlp_data(tmp_path / "calib.npz")
    devices = write_devices(tmp_path / "devices.yaml", {"mac": device})
    capsys.readouterr()
    assert main(["deploy", str(mlp_model(tmp_path / "mlp.onnx")), "--target", "macos-coreml", "--recipe", "int4",
                 "--calib", str(calib), "--device", "mac", "--devices", str(devices), "--runs", "3", "--warmup", "0",
                 "-o", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"]["name"] == "coreml" and doc["latency_ms"]["n"] == 3
    assert doc["accuracy"]["y"]["cosine_mean"] == pytest.approx(doc["host_accuracy"]["y"]["cosine_mean"], abs=1e-3)
