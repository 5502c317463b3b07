"""The typed manifest: what edgesdk writes validates, and a manifest that names a file outside the artifact,
or a file without its sha256, is refused as a whole when loaded (before anything connects to a device)."""

from __future__ import annotations

import json
import shutil

import pytest

import edgesdk
from edgesdk.artifact import Artifact
from edgesdk.errors import ArtifactError
from edgesdk.manifest import SCHEMA_VERSION, plain_relative_path


@pytest.mark.parametrize("name", ["model.onnx", "float/model.onnx", "a/b/c.bin", "weights.bin"])
def test_plain_names_pass(name):
    assert plain_relative_path(name) == name


@pytest.mark.parametrize("name, why", [
    ("/root/.ssh/authorized_keys", "absolute"),
    ("../../../x", "not a plain relative path"),
    ("a/../../x", "not a plain relative path"),
    ("./model.onnx", "not a plain relative path"),
    ("a//b", "not a plain relative path"),
    ("", "empty"),
    ("a\\..\\x", "backslash"),
    ("a\nb", "control character"),
    ("manifest.json", "cannot list itself"),
])
def test_hostile_names_are_refused(name, why):
    with pytest.raises(ValueError, match=why):
        plain_relative_path(name)


def copy_with_manifest(artifact, tmp_path, edit) -> Artifact:
    copy = tmp_path / "hostile"
    shutil.copytree(artifact.path, copy)
    document = json.loads((copy / "manifest.json").read_text())
    edit(document, copy)
    (copy / "manifest.json").write_text(json.dumps(document))
    return copy


def test_written_manifest_is_typed(minilm_artifacts):
    manifest = minilm_artifacts("int8").manifest
    assert manifest.schema_version == SCHEMA_VERSION and manifest.backend == "onnxruntime" and manifest.format == "onnx"
    assert manifest.device_files == ["model.onnx", "reference.npz"]
    assert all(len(entry.sha256) == 64 for entry in manifest.files.values())


@pytest.mark.parametrize("edit, message", [
    (lambda m, d: m["device_files"].append("/root/.ssh/authorized_keys"), "is absolute"),
    (lambda m, d: m["device_files"].append("../../../.ssh/authorized_keys"), "not a plain relative path"),
    (lambda m, d: m["files"].update({"../x": m["files"]["model.onnx"]}), "not a plain relative path"),
    (lambda m, d: m.update(model_file="../model.onnx"), "not a plain relative path"),
    (lambda m, d: m["device_files"].append("unlisted.bin"), "names 'unlisted.bin', which is not listed in 'files'"),
    (lambda m, d: m["reference"].update(file="other.npz"), "names 'other.npz', which is not listed"),
    (lambda m, d: m["files"]["model.onnx"].update(sha256="x" * 64), "sha256"),
    (lambda m, d: m.pop("schema_version"), "older edgesdk"),
    (lambda m, d: m.update(schema_version=99), "schema_version 99"),
    (lambda m, d: m.update(surprise=1), "surprise: Extra inputs are not permitted"),
])
def test_hostile_or_broken_manifests_are_refused(minilm_artifacts, tmp_path, edit, message):
    path = copy_with_manifest(minilm_artifacts("int8"), tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        Artifact.load(path)


def test_a_symlinked_folder_leading_out_of_the_artifact_is_refused(minilm_artifacts, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_bytes((minilm_artifacts("int8").path / "model.onnx").read_bytes())

    def edit(manifest, directory):
        (directory / "sub").symlink_to(outside, target_is_directory=True)
        manifest["files"]["sub/model.onnx"] = manifest["files"]["model.onnx"]  # the right sha256, even
        manifest["device_files"].append("sub/model.onnx")

    path = copy_with_manifest(minilm_artifacts("int8"), tmp_path, edit)
    with pytest.raises(ArtifactError, match="sub/model.onnx leads outside the artifact"):
        Artifact.load(path)


def test_profile_refuses_a_hostile_artifact_before_connecting(minilm_artifacts, tmp_path):
    path = copy_with_manifest(minilm_artifacts("int8"), tmp_path,
                              lambda m, d: m["device_files"].append("../../../.ssh/authorized_keys"))
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        edgesdk.profile(path, device="local", runs=1, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
