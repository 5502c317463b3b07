"""all-MiniLM-L6-v2 and Gemma 3 270M through the Core ML backend and through ONNX Runtime from the same
quantized graphs, once per session: the packages the tests check, and the ORT artifacts their numbers are held
against; and the Mac-like loopback device the runner is tested on."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from pathlib import Path

import pytest

import edgesdk
from edgesdk.quant.recipes import get_recipe
from edgesdk.targets import load_target

from tests.devices.conftest import sshd  # noqa: F401  (the loopback OpenSSH server)
from tests.devices.sshd_server import SSHServer, write_devices

STANDIN = Path(__file__).parent / "standin"


def coreml_target(**options):
    """macos-coreml with some of its options changed."""
    target = load_target("macos-coreml")
    changed = target.model_copy(update={"options": {**target.options, **options}})
    changed._backend_options = None  # validated again from the new options
    return changed


@pytest.fixture(scope="session")
def coreml_packages(workdir, minilm_quantized, minilm_artifacts, minilm_data):
    """(recipe, compute precision) -> the Core ML artifact, and (recipe, 'ort') -> the ORT one of the same graph
    (int4 with float activations: ORT's default int8 activations are not the graph's numbers)."""
    calib, _ = minilm_data
    made = {}

    def build(recipe: str, precision: str | None = None):
        precision = precision or ("float32" if recipe == "fp32" else "float16")  # the backend's default
        key = (recipe, precision)
        if key not in made:
            graph = minilm_quantized(recipe)
            if precision == "ort" and not recipe.startswith("int4"):
                made[key] = minilm_artifacts(recipe)  # the suite's ORT artifact of this recipe
                return made[key]
            if precision == "ort":  # int4 with float activations (ORT's default int8 ones are not the graph's numbers)
                graph = dataclasses.replace(graph, recipe=get_recipe(graph.recipe, float_activations=True))
                target = "host"
            else:
                target = coreml_target(compute_precision=precision)
            made[key] = edgesdk.export(graph, target, workdir / f"coreml-{recipe}-{precision}", reference_data=calib)
        return made[key]

    return build


@pytest.fixture(scope="session")
def gemma_coreml(gemma_static_int4, tmp_path_factory):
    """Gemma 3 270M's static int4 graph as a Core ML package (two functions: prefill of 32 tokens, decode)."""
    return edgesdk.export(gemma_static_int4, "macos-coreml", tmp_path_factory.mktemp("gemma-coreml") / "int4")


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


def profile_on_mac(artifact, device: dict, tmp_path, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    devices = write_devices(tmp_path / "devices.yaml", {"mac": device})
    return edgesdk.profile(artifact, device="mac", devices=devices, runs_dir=tmp_path / "runs", **options)
