"""Uploads: sha256-checked on the device, skipped when present, atomic; an interrupted upload never leaves a
file under its final name, nothing half-uploaded is ever run, and the next run uploads again."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import edgesdk
from edgesdk.artifact import sha256_file
from edgesdk.devices import runner
from edgesdk.devices.inventory import parse_inventory
from edgesdk.devices.transport import open_transport
from edgesdk.devices.upload import FileToPush, push
from edgesdk.errors import DeviceConnectionError, RunnerError, UploadError
from edgesdk.targets import load_target

from tests.devices.sshd_server import write_devices


def ssh_device(server, name="loop", **overrides):
    return parse_inventory(yaml.safe_dump({"devices": {name: server.device(**overrides)}})).get(name)


def to_push(path: Path, folder: str) -> FileToPush:
    return FileToPush(path, f"{folder}/{path.name}", sha256_file(path), path.stat().st_size)


def test_push_uploads_then_skips_then_replaces_a_changed_file(sshd, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.txt"
    a.write_bytes(os.urandom(300_000))
    b.write_text("hello")
    workdir, remote = tmp_path / "device", tmp_path / "device" / "nested"
    files = [to_push(a, "nested"), to_push(b, "nested")]
    with open_transport(ssh_device(sshd)) as link:
        first = push(link, sys.executable, str(workdir), files)
        assert first.uploaded == ["a.bin", "b.txt"] and first.bytes_sent == 300_005
        assert (remote / "a.bin").read_bytes() == a.read_bytes()
        assert workdir.stat().st_mode & 0o777 == 0o700 and remote.stat().st_mode & 0o777 == 0o700
        again = push(link, sys.executable, str(workdir), files)
        assert (again.uploaded, again.skipped, again.bytes_sent) == ([], ["a.bin", "b.txt"], 0)
        (remote / "b.txt").write_text("tampered on the device")
        third = push(link, sys.executable, str(workdir), files)
        assert third.uploaded == ["b.txt"] and (remote / "b.txt").read_text() == "hello"
    assert sorted(p.name for p in remote.iterdir()) == ["a.bin", "b.txt"]  # no .partial left behind


def test_a_file_that_arrives_different_is_removed_not_renamed(sshd, tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"x" * 1000)
    remote = tmp_path / "device"
    wrong = FileToPush(a, "a.bin", "0" * 64, 1000)  # the device will hash something else
    with open_transport(ssh_device(sshd)) as link, pytest.raises(UploadError, match="a.bin arrived with a different sha256"):
        push(link, sys.executable, str(remote), [wrong])
    assert list(remote.iterdir()) == []


def test_interrupted_upload_leaves_no_file_to_run_and_the_next_run_uploads_again(fresh_sshd, int8_artifact, tmp_path):
    device = ssh_device(fresh_sshd, "flaky", workdir=str(tmp_path / "wd"))
    model = int8_artifact.path / "model.onnx"
    remote_dir = tmp_path / "wd" / "artifacts" / "x"
    killed = []

    def kill_midway(done: int, total: int) -> None:
        if done > 2_000_000 and not killed:
            killed.append(done)
            fresh_sshd.kill()  # the server and its connections die mid-transfer, as in a power cut

    link = open_transport(device)
    with pytest.raises(DeviceConnectionError, match="lost the connection to device 'flaky' while uploading model.onnx"):
        push(link, sys.executable, str(tmp_path / "wd"), [to_push(model, "artifacts/x")], progress=kill_midway)
    link.close()
    assert killed
    assert not (remote_dir / "model.onnx").exists()  # never under its final name
    partial = remote_dir / ".model.onnx.partial"
    assert partial.exists() and partial.stat().st_size < model.stat().st_size

    # A profile after the server is back uploads everything and runs the intact file.
    fresh_sshd.start()
    devices = write_devices(tmp_path / "devices.yaml", {"flaky": fresh_sshd.device(workdir=str(tmp_path / "wd"))})
    result = edgesdk.profile(int8_artifact, device="flaky", runs=3, warmup=1, devices=devices, runs_dir=tmp_path / "runs")
    assert "model.onnx" in result.upload.uploaded and result.latency.n == 3


def test_a_half_file_under_the_final_name_is_replaced_and_the_runner_refuses_to_run_one(sshd, int8_artifact, tmp_path):
    workdir = tmp_path / "wd"
    devices = write_devices(tmp_path / "devices.yaml", {"loop": sshd.device(workdir=str(workdir))})
    first = edgesdk.profile(int8_artifact, device="loop", runs=2, warmup=0, devices=devices, runs_dir=tmp_path / "runs")
    (artifact_dir,) = (workdir / "artifacts").iterdir()
    model = artifact_dir / "model.onnx"
    size = model.stat().st_size
    with open(model, "r+b") as handle:  # a half file where the model should be (e.g. copied by hand)
        handle.truncate(size // 2)

    # The runner itself refuses it (defence in depth: it checks sha256 against the manifest first).
    script = tmp_path / "ort_runner.py"
    script.write_text(runner.render("ort_runner.py.j2", load_target("host")))
    with open_transport(ssh_device(sshd)) as link:
        done = link.run(runner.runner_argv(("{python}", "{dir}/ort_runner.py"), sys.executable, str(tmp_path),
                                           str(artifact_dir), str(tmp_path / "o.npz"), 2, 0, 1, None), timeout=120)
    with pytest.raises(RunnerError, match="bad-artifact.*model.onnx does not match its sha256"):
        runner.parse_output(done.stdout, done.stderr, done.exit_code)

    # The next profile notices the hash differs, uploads the model again, and runs.
    second = edgesdk.profile(int8_artifact, device="loop", runs=2, warmup=0, devices=devices, runs_dir=tmp_path / "runs")
    assert second.upload.uploaded == ["model.onnx"] and model.stat().st_size == size
    assert second.accuracy == first.accuracy
    shutil.rmtree(workdir)
