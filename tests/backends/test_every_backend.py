"""Every registered backend, with every recipe it can express, through convert -> verify -> profile on the local
device: a backend added tomorrow is tested the day it is added (it needs a target file with `arch: native`, or a
line in ELSEWHERE naming the target it is converted for when its runtime does not run here)."""

from __future__ import annotations

import pytest

import edgesdk
from edgesdk.backends import available, get_backend
from edgesdk.quant.recipes import REGISTRY
from edgesdk.targets import available_targets, load_target

from tests.devices.sshd_server import write_devices
from tests.helpers import mlp_data, mlp_model


# Backends whose runtime does not run on Linux (Core ML: macOS only): converted, verified (verify runs the
# package's program with numpy) and inspected here, not profiled on this machine.
ELSEWHERE = {"coreml": "macos-coreml"}


def host_target(backend: str) -> str:
    """The target that runs ``backend`` on this machine."""
    if backend in ELSEWHERE:
        return ELSEWHERE[backend]
    found = [t for t in available_targets() if (tgt := load_target(t)).backend == backend and tgt.arch == "native"]
    assert found, f"backend '{backend}' has no target with arch: native in targets/ (add one, e.g. host-{backend})"
    return sorted(found, key=len)[0]


# Recipes for one kind of model (gguf: a .gguf LM) are tested with that model (tests/llm/).
CASES = [(name, recipe) for name in available() for recipe in sorted(REGISTRY)
         if (get_backend(name).recipes is None or recipe in get_backend(name).recipes)
         and REGISTRY[recipe].takes == "any model"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlp")
    return mlp_model(directory / "mlp.onnx"), mlp_data(directory / "calib.npz"), mlp_data(directory / "heldout.npz", seed=2)


@pytest.mark.parametrize("backend, recipe", CASES)
def test_convert_verify_profile(backend, recipe, mlp, tmp_path):
    model, calib, heldout = mlp
    target = host_target(backend)
    graph = edgesdk.load(model)
    quantized = edgesdk.quantize(graph, recipe, calibration=calib if REGISTRY[recipe].needs_calibration else None)
    artifact = edgesdk.export(quantized, target, tmp_path / "artifact", reference_data=calib)
    assert artifact.manifest.backend == backend and artifact.manifest.format == get_backend(backend).format

    report = edgesdk.verify(artifact, heldout)
    y = report["outputs"]["y"]
    assert y["cosine_mean"] > (0.9999 if recipe == "fp32" else 0.95), (backend, recipe, y)

    if backend in ELSEWHERE:
        assert edgesdk.inspect(artifact.path)["artifact"]["backend"] == backend
        return
    devices = write_devices(tmp_path / "devices.yaml", {"here": {"transport": "local", "target": target,
                                                                 "workdir": str(tmp_path / "wd")}})
    result = edgesdk.profile(artifact, device="here", runs=3, warmup=1, devices=devices, runs_dir=tmp_path / "runs")
    assert result.latency.n == 3 and result.peak_rss_mb > 0
    on_device, at_export = result.accuracy["y"], artifact.manifest.accuracy["outputs"]["y"]
    assert on_device["cosine_mean"] == pytest.approx(at_export["cosine_mean"], abs=1e-3)
    assert result.runtime["name"] == get_backend(backend).runtime

    described = edgesdk.inspect(artifact.path)
    assert described["artifact"]["backend"] == backend and described["format"] == get_backend(backend).format
