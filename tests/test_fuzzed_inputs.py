"""Fuzzed user inputs (hypothesis): devices.yaml, target files, manifest.json and calibration .npz files, each
through the command a user runs. Whatever the input, the answer is a result or one line on stderr with the
error's exit code: never a traceback, never an exception out of the CLI."""

from __future__ import annotations

import json
import os
import shutil
import string

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesdk.cli import main
from edgesdk.devices.inventory import Device
from edgesdk.targets import Target

from tests.helpers import mlp_artifacts

# The suite replays the same 60 cases per test (derandomized: CI fails on a change, not on a draw);
# EDGESDK_FUZZ_EXAMPLES=5000 searches fresh ones.
EXAMPLES = int(os.environ.get("EDGESDK_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 60, derandomize=not EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["rpi4", "host", "ssh", "local", "../x", "~/a", "a;b"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=10)


def one_line_outcome(capsys, code: int, allowed: set[int]) -> None:
    err = capsys.readouterr().err
    assert code in allowed, (code, err)
    assert "Traceback" not in err
    if code:
        assert err.startswith("edgesdk: error: ") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def mlp_artifact(tmp_path_factory):
    return mlp_artifacts(tmp_path_factory.mktemp("fuzz"))["int8"]


def settings_of(model) -> st.SearchStrategy:
    keys = st.sampled_from([k for k in model.model_fields if k != "name"] + ["bogus", "name"])
    return st.dictionaries(keys, values, max_size=6)


inventories = st.one_of(
    st.text(max_size=200),
    st.builds(lambda devices: yaml.safe_dump({"devices": devices}),
              st.dictionaries(st.text(string.ascii_letters + "-_.; $", min_size=1, max_size=12),
                              st.one_of(settings_of(Device), values), max_size=3)),
    st.builds(yaml.safe_dump, values),
)


@FUZZ
@given(text=inventories)
def test_devices_yaml(text, tmp_path, capsys):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    one_line_outcome(capsys, main(["devices", "list", "--devices", str(path), "--json"]), {0, 2})


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.builds(yaml.safe_dump, settings_of(Target)),
                      st.builds(yaml.safe_dump, values)))
def test_target_files(text, tmp_path, monkeypatch, capsys, mlp_artifact):
    targets = tmp_path / "targets"
    targets.mkdir(exist_ok=True)
    (targets / "fuzzed.yaml").write_text(text)
    monkeypatch.setenv("EDGESDK_TARGETS", str(targets))
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    code = main(["convert", str(mlp_artifact.path.parent / "mlp.onnx"), "--target", "fuzzed", "--recipe", "fp32",
                 "-o", str(out), "--json"])
    one_line_outcome(capsys, code, {0, 2})


def mutated(document: dict, draw) -> dict:
    """The real manifest with a few keys replaced, removed or added, at any depth."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        node = document
        while isinstance(node, dict) and node and draw(st.booleans()):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict) or not child:
                break
            node = child
        if not isinstance(node, dict):
            continue
        key = draw(st.one_of(st.sampled_from(sorted(node) or ["x"]), st.text(max_size=8)))
        if draw(st.booleans()):
            node.pop(key, None)
        else:
            node[key] = draw(values)
    return document


@FUZZ
@given(data=st.data())
def test_manifest_json(data, mlp_artifact, tmp_path, capsys):
    artifact = tmp_path / "artifact"
    shutil.rmtree(artifact, ignore_errors=True)
    shutil.copytree(mlp_artifact.path, artifact)
    original = json.loads((mlp_artifact.path / "manifest.json").read_text())
    (artifact / "manifest.json").write_text(json.dumps(mutated(original, data.draw)))
    one_line_outcome(capsys, main(["inspect", str(artifact), "--json"]), {0, 5})


arrays = st.builds(
    lambda dtype, shape, fill: np.full(shape, fill).astype(dtype),
    st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.complex64, np.float16]),
    st.lists(st.integers(0, 20), max_size=4).map(tuple),
    st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))),
)


@FUZZ
@given(npz=st.dictionaries(st.sampled_from(["x", "y", "input", "x "]), arrays, max_size=3))
def test_calibration_npz(npz, mlp_artifact, tmp_path, capsys):
    path = tmp_path / "data.npz"
    np.savez(path, **npz)
    one_line_outcome(capsys, main(["verify", str(mlp_artifact.path), "--data", str(path), "--json"]), {0, 4})
