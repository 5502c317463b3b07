"""The Core ML runner end to end over SSH against a loopback device that looks like a Mac: Debian's sshd whose
sessions get a PATH with a `uname` that reports Darwin arm64 and no coreutils `timeout` (macOS has none, so the
remote command is bounded by edgesdk's python watchdog), and a python whose `coremltools` is a stand-in with
the predict API (tests/backends/coreml/standin: its numbers come from the package's MIL program run with
numpy). Tested: protocol, upload, the compiled-model cache, timeout handling and parsing; a real Mac in
devices.yaml takes the same path."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

import edgesdk
from edgesdk.errors import DeviceTimeoutError, MissingRuntimeError

from tests.devices.sshd_server import SSHServer, wait_gone, write_devices
from tests.helpers import mlp_data, mlp_model

STANDIN = Path(__file__).parent / "standin"


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(scope="module")
def mac(tmp_path_factory):
    """(the sshd of the Mac-like device, its devices.yaml entry, the file that makes predictions hang)."""
    directory = tmp_path_factory.mktemp("mac")
    tools = directory / "bin"
    tools.mkdir()
    for folder in ("/usr/bin", "/bin"):  # the userland, less coreutils' timeout
        for name in os.listdir(folder):
            if name not in ("timeout", "uname") and not (tools / name).exists():
                (tools / name).symlink_to(Path(folder) / name)
    _script(tools / "uname", '#!/bin/sh\ncase "$1" in -m) echo arm64;; -r) echo 24.1.0;; *) echo Darwin;; esac\n')
    hang = directory / "predict-seconds"
    python = _script(directory / "python3", f'#!/bin/sh\n[ -f {hang} ] && export COREML_STANDIN_PREDICT_S="$(cat {hang})"\n'
                                            f'PYTHONPATH={STANDIN} exec {sys.executable} "$@"\n')
    server = SSHServer(directory / "sshd")
    with open(server.config, "a") as config:
        config.write(f"SetEnv PATH={tools} XDG_CACHE_HOME={directory / 'cache'}\n")
    server.start()
    server.known_hosts()
    yield server, server.device(target="macos-coreml", python=str(python)), hang
    server.kill()


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A small W8A8 package (the runner's path, not MiniLM's numbers, is under test here)."""
    directory = tmp_path_factory.mktemp("mlp")
    calib = mlp_data(directory / "calib.npz")
    graph = edgesdk.load(str(mlp_model(directory / "mlp.onnx")))
    return edgesdk.export(edgesdk.quantize(graph, "int8", calibration=calib), "macos-coreml", directory / "int8",
                          reference_data=calib)


def _profile(package, device: dict, tmp_path, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    devices = write_devices(tmp_path / "devices.yaml", {"mac": device})
    return edgesdk.profile(package, device="mac", devices=devices, runs_dir=tmp_path / "runs", **options)


def test_profile_on_a_mac_runs_the_package_and_caches_the_compiled_model(mac, package, tmp_path):
    _, device, _ = mac
    first = _profile(package, device, tmp_path, runs=3, warmup=1)
    assert first.facts.system == "Darwin" and first.facts.arch == "arm64"
    assert first.runtime["name"] == "coreml" and first.runtime["version"] == "9.0-standin"
    assert first.runtime["compiled_model"] == "compiled now" and first.runtime["compute_units"] == "ALL"
    assert first.latency.n == 3 and first.peak_rss_mb > 0
    on_device = first.accuracy["y"]
    at_export = package.manifest.accuracy["outputs"]["y"]
    assert on_device["cosine_mean"] == pytest.approx(at_export["cosine_mean"], abs=1e-3)
    again = _profile(package, device, tmp_path / "again", runs=2, warmup=0)
    assert again.runtime["compiled_model"] == "cached" and again.latency.n == 2
    assert again.accuracy["y"]["cosine_mean"] == pytest.approx(on_device["cosine_mean"], abs=1e-6)


def test_a_hung_prediction_is_killed_on_the_mac_without_timeout(mac, package, tmp_path):
    _, device, hang = mac
    hang.write_text("600")
    try:
        with pytest.raises(DeviceTimeoutError):
            _profile(package, device, tmp_path, runs=2, warmup=0, timeout_s=20)
    finally:
        hang.unlink()
    assert wait_gone("coreml_runner.py", seconds=10) == []  # the watchdog killed the runner's process group
    assert wait_gone("edgesdk.backends.coreml.evaluate", seconds=10) == []  # and the stand-in's worker


def test_a_linux_device_is_refused_for_core_ml(sshd, package, tmp_path):
    with pytest.raises(MissingRuntimeError, match="runs Linux; the coreml runtime runs only on macOS"):
        _profile(package, sshd.device(target="macos-coreml"), tmp_path, runs=1, warmup=0)
