"""Fleets: profile and deploy on several devices at once, each device a network namespace with its own sshd and
address; every device's figures kept when another fails, one summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


from tests.devices.netns import start_netns_device
from tests.devices.sshd_server import write_devices
from tests.helpers import mlp_artifacts, module_folder

INDEXES = (1, 2, 3)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """(devices.yaml with n1..n3 tagged 'lab', {name: NetnsDevice}, a small int8 artifact, its calibration)."""
    with module_folder(tmp_path_factory, "fleet") as work:
        boards = {}
        try:
            for index in INDEXES:
                boards[f"n{index}"] = start_netns_device(work / f"n{index}", index)
            devices = write_devices(work / "devices.yaml", {name: b.server.device(tags=["lab"])
                                                            for name, b in boards.items()})
            artifact = mlp_artifacts(work)["int8"]
            yield devices, boards, artifact, work / "calib.npz"
        finally:
            for board in boards.values():
                board.stop()


def test_profile_on_a_tag_runs_every_device_at_once(fleet, tmp_path):
    devices, boards, artifact, _ = fleet
    done = cli("profile", str(artifact.path), "--devices-tag", "lab", "--devices", str(devices), "--runs", "20",
               "--warmup", "2", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert [d["device"] for d in doc["devices"]] == ["n1", "n2", "n3"] and doc["failed"] == []
    assert len({d["run_dir"] for d in doc["devices"]}) == 3
    for d in doc["devices"]:
        assert d["ok"] and d["latency_ms"]["n"] == 20
        assert d["accuracy"]["y"]["cosine_mean"] > 0.99


def test_one_dead_device_loses_nothing_of_the_others(fleet, tmp_path):
    devices, boards, artifact, _ = fleet
    boards["n2"].server.kill()
    try:
        done = cli("profile", str(artifact.path), "--device", "n1", "--device", "n2", "--device", "n3", "--devices",
                   str(devices), "--runs", "5", "--warmup", "0", "--runs-dir", str(tmp_path / "runs"), "--json")
    finally:
        boards["n2"].server.start()
    assert done.returncode == 7, done.stderr[-2000:]  # the dead device's exit code
    doc = json.loads(done.stdout)
    assert doc["failed"] == ["n2"]
    outcome = {d["device"]: d for d in doc["devices"]}
    assert outcome["n1"]["ok"] and outcome["n3"]["ok"] and outcome["n1"]["latency_ms"]["n"] == 5
    assert "unreachable" in outcome["n2"]["error"], outcome["n2"]


def test_deploy_converts_once_and_prints_one_summary(fleet, tmp_path):
    devices, boards, _, calib = fleet
    model = devices.parent / "mlp.onnx"
    done = cli("deploy", str(model), "--target", "host", "--device", "n1", "--device", "n3", "--recipe", "int8", "--calib", str(calib),
               "--devices", str(devices), "--runs", "5", "--warmup", "0", "-o", str(tmp_path / "art"),
               "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 devices" in done.stdout and "n1" in done.stdout and "n3" in done.stdout, done.stdout
    assert (tmp_path / "art" / "manifest.json").is_file()
