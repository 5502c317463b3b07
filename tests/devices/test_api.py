"""edgesdk.profile on the loopback SSH device and the local device with the real MiniLM int8 artifact;
refusals that must happen before anything is uploaded or run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import edgesdk
from edgesdk.devices.check import check_device
from edgesdk.devices.inventory import Device, load_inventory
from edgesdk.errors import DeviceTimeoutError, MissingRuntimeError
from edgesdk.metrics import compare
from edgesdk.runs import RunStore
from edgesdk.runtime import ort_session, run

from tests.devices.sshd_server import wait_gone, write_devices

RUNS = 12


def host_accuracy(artifact) -> dict:
    """The host's own check of the same reference inputs, with the target's thread count."""
    feeds, expected = artifact.reference()
    session = ort_session(artifact.model_path, threads=1)
    return compare([run(session, feed) for feed in feeds], expected)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """An interpreter without numpy or onnxruntime, like a fresh board."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


@pytest.mark.parametrize("device", ["loop", "local"])
def test_profile_measures_latency_memory_and_on_device_accuracy(device, devices_file, int8_artifact, tmp_path):
    result = edgesdk.profile(int8_artifact, device=device, runs=RUNS, warmup=2, devices=devices_file, runs_dir=tmp_path)
    doc = result.to_json()
    lat = doc["latency_ms"]
    assert doc["device"] == device and doc["artifact"] == str(int8_artifact.path)
    assert lat["n"] == RUNS == len(result.latencies_ms)
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
    assert lat["mean"] == pytest.approx(np.mean(result.latencies_ms))
    assert 20 < doc["peak_rss_mb"] < 4000
    assert doc["runtime"]["threads"] == 1  # targets/host.yaml

    # On-device accuracy equals the host's verification of the same reference inputs.
    on_device = doc["accuracy"]["sentence_embedding"]
    at_export = int8_artifact.manifest.accuracy["outputs"]["sentence_embedding"]
    here = host_accuracy(int8_artifact)["sentence_embedding"]
    for reference in (at_export, here):
        assert on_device["cosine_mean"] == pytest.approx(reference["cosine_mean"], abs=1e-6)
        assert on_device["max_abs_error"] == pytest.approx(reference["max_abs_error"], abs=1e-5)
    assert 0.99 < on_device["cosine_mean"] < 1.0

    clock = doc["clock"]  # the device's wall clock around the timed loop, which holds every timed run
    assert clock["started"] <= clock["timed_start"] < clock["timed_end"]
    assert clock["timed_end"] - clock["timed_start"] >= sum(result.latencies_ms) / 1e3

    facts = doc["device_facts"]
    assert facts["arch"] and facts["kernel"] and facts["runtimes"]["onnxruntime"]

    # The run record holds what was measured, and the index lists it.
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"run.json", "manifest.json", "device.json", "runner", "latencies.json", "outputs.npz", "summary.json"} <= files
    assert json.loads((result.run_dir / "latencies.json").read_text())["latencies_ms"] == result.latencies_ms
    (row,) = RunStore(tmp_path).list()
    assert (row["status"], row["device"], row["n"]) == ("ok", device, RUNS)
    assert row["p90_ms"] == pytest.approx(lat["p90"])


def test_second_profile_uploads_nothing(devices_file, int8_artifact, tmp_path):
    edgesdk.profile(int8_artifact, device="loop", runs=2, warmup=0, devices=devices_file, runs_dir=tmp_path)
    again = edgesdk.profile(int8_artifact, device="loop", runs=2, warmup=0, devices=devices_file, runs_dir=tmp_path)
    assert again.upload.uploaded == [] and again.upload.bytes_sent == 0
    assert set(again.upload.skipped) >= {"model.onnx", "reference.npz", "manifest.json"}


def test_budget_stops_the_timed_runs(devices_file, int8_artifact, tmp_path):
    result = edgesdk.profile(int8_artifact, device="local", runs=100000, warmup=0, budget_s=0.3,
                             devices=devices_file, runs_dir=tmp_path)
    assert 1 <= result.latency.n < 100000


@pytest.mark.parametrize("transport", ["ssh", "local"])
def test_missing_runtime_names_the_install_command_and_uploads_nothing(transport, sshd, bare_python, int8_artifact, tmp_path):
    workdir = tmp_path / "wd"
    entry = (sshd.device(python=bare_python, workdir=str(workdir)) if transport == "ssh"
             else {"transport": "local", "target": "host", "python": bare_python, "workdir": str(workdir)})
    devices = write_devices(tmp_path / "devices.yaml", {"bare": entry})
    with pytest.raises(MissingRuntimeError) as caught:
        edgesdk.profile(int8_artifact, device="bare", runs=2, devices=devices, runs_dir=tmp_path / "runs")
    message = str(caught.value)
    assert "lacks onnxruntime and numpy" in message
    assert f"install on the device with: {bare_python} -m pip install onnxruntime numpy" in message
    assert not workdir.exists()
    (row,) = RunStore(tmp_path / "runs").list()
    assert row["status"] == "failed" and "lacks onnxruntime" in row["error"]


def test_a_workdir_with_metacharacters_is_only_ever_a_quoted_path(sshd, int8_artifact, tmp_path):
    """Bypass the inventory's refusal (model_construct skips validation): quoting alone keeps it inert."""
    marker = tmp_path / "pwned"
    workdir = f"{tmp_path}/wd $(touch {marker}); touch {marker}"
    entry = sshd.device(workdir=workdir)
    device = Device.model_construct(**{**Device(name="x", **sshd.device()).model_dump(), **entry, "name": "evil"})
    result = edgesdk.profile(int8_artifact, device=device, runs=2, warmup=0, runs_dir=tmp_path / "runs")
    assert result.latency.n == 2
    assert not marker.exists()
    assert (tmp_path / f"wd $(touch {marker}); touch {marker}" / "artifacts").is_dir()  # the literal name


def test_a_run_that_times_out_is_killed_and_keeps_what_it_measured(devices_file, int8_artifact, tmp_path):
    start = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match="ran past its 3 s limit"):
        edgesdk.profile(int8_artifact, device="loop", runs=10**7, warmup=0, timeout_s=3, devices=devices_file,
                        runs_dir=tmp_path)
    assert time.monotonic() - start < 30
    (row,) = RunStore(tmp_path).list()
    assert row["status"] == "failed" and "ran past" in row["error"]
    run_dir = tmp_path / row["id"]
    assert {"run.json", "manifest.json", "device.json", "runner"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "device.json").read_text())["facts"]["arch"]
    assert wait_gone("ort_runner.py", "--runs 10000000") == []  # killed on the device, not just abandoned


def test_check_device_reports(devices_file, sshd, bare_python, tmp_path):
    inventory = load_inventory(devices_file)
    good = check_device(inventory.get("loop"))
    assert good["ok"] and good["reachable"] and good["host_key"] == "ok" and good["runtimes"]["onnxruntime"]
    devices = write_devices(tmp_path / "d.yaml", {"bare": sshd.device(python=bare_python),
                                                  "unknown-key": sshd.device(known_hosts=str(tmp_path / "none"))})
    bare = check_device(load_inventory(devices).get("bare"))
    assert not bare["ok"] and bare["reachable"] and f"{bare_python} -m pip install onnxruntime numpy" in bare["error"]
    refused = check_device(load_inventory(devices).get("unknown-key"))
    assert not refused["ok"] and refused["host_key"] == "refused" and "strict" in refused["error"]


@pytest.mark.parametrize("transport", ["ssh", "local"])
def test_a_workdir_under_home(transport, sshd, int8_artifact, tmp_path):
    """'~/dir' means the device user's home on both transports (SSH sessions start there; never a literal '~')."""
    name = f"edgesdk-test-{uuid.uuid4().hex[:8]}"
    entry = (sshd.device(workdir=f"~/{name}") if transport == "ssh"
             else {"transport": "local", "target": "host", "workdir": f"~/{name}"})
    devices = write_devices(tmp_path / "devices.yaml", {"homed": entry})
    home = Path.home()  # the sshd user is root, as is this test
    try:
        result = edgesdk.profile(int8_artifact, device="homed", runs=2, warmup=0, devices=devices, runs_dir=tmp_path)
        assert result.latency.n == 2
        assert (home / name / "artifacts").is_dir() and not (home / "~").exists()
    finally:
        shutil.rmtree(home / name, ignore_errors=True)
