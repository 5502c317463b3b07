"""End to end: `edgesdk.profile(..., power=True)` and `edgesdk profile --power` over a real loopback sshd whose
sessions find the fake sensor tools on their PATH (sshd_config SetEnv), with the emulated board playing
2.0 W idle / 6.5 W while the runner runs. Without /usr/sbin/sshd these tests FAIL (run `make system-deps`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgesdk
from edgesdk.errors import PowerError
from edgesdk.power import SENSORS
from tests.devices.sshd_server import SSHServer, write_devices
from tests.power.conftest import BUSY_W, IDLE_W
from tests.power.profile_player import ProfilePlayer, sensor_configs
from tests.power.stand_in import matmul_artifact

RUNS, WARMUP = 150, 3
FAST = {"idle_s": 0.5, "rate_hz": 20}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return matmul_artifact(tmp_path_factory.mktemp("power-model"))


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """(sshd, player, devices.yaml): one loopback device per sensor kind, all on one emulated board."""
    base = tmp_path_factory.mktemp("power-ssh")
    workdir = base / "device-workdir"
    player = ProfilePlayer(base / "board", marker=str(workdir), idle_w=IDLE_W, busy_w=BUSY_W).start()
    server = SSHServer(base / "sshd")
    with open(server.config, "a") as config:  # the device's own tools: fake tegrastats, vcgencmd, meter first
        config.write(f"SetEnv PATH={player.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
    server.start()
    server.known_hosts()
    devices = {f"loop-{kind}": server.device(workdir=str(workdir), power={**power, **FAST})
               for kind, power in sensor_configs(player).items()}
    devices["loop-none"] = server.device(workdir=str(workdir))
    devices["loop-absent-hwmon"] = server.device(workdir=str(workdir), power={"sensor": "hwmon", "path": str(base / "no-such-hwmon"), **FAST})
    devices["loop-crash"] = server.device(workdir=str(workdir), power={
        "sensor": "command", "command": f"meter --crash-after {int(FAST['rate_hz'] * FAST['idle_s']) + 10}", **FAST})
    yaml_path = write_devices(base / "devices.yaml", devices)
    yield server, player, yaml_path
    server.kill()
    player.stop()


@pytest.mark.parametrize("kind", [k for k in SENSORS if k != "none"])
def test_profile_with_power_over_ssh_matches_the_known_profile(kind, artifact, loop, tmp_path):
    _, player, devices = loop
    result = edgesdk.profile(artifact.path, device=f"loop-{kind}", runs=RUNS, warmup=WARMUP, devices=devices,
                             runs_dir=tmp_path / "runs", power=True)
    power = result.power
    assert "error" not in power, power.get("error")
    expected_mj = player.energy_j(power["timed_start"], power["timed_end"]) / RUNS * 1e3
    assert power["energy_per_inference_mj"] == pytest.approx(expected_mj, rel=0.03)
    # The window is the runner's own timed loop: it holds every timed run and little else (not the imports,
    # model load, warm-up or reference runs, which together take about as long again).
    timed_s = sum(result.latencies_ms) / 1e3
    assert timed_s * 0.999 <= power["window_s"] <= timed_s * 1.25
    assert power["idle_w"] == pytest.approx(IDLE_W, rel=0.03)
    assert power["mean_w"] == pytest.approx(BUSY_W, rel=0.03)
    assert power["sensor"] == kind and power["samples"] >= 20 and power["rails"]
    assert result.latency.n == RUNS  # the latency results are all there too
    for name in ("power_trace.jsonl", "power_trace.csv", "power.png"):
        assert (result.run_dir / name).stat().st_size > 0
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["power"]["energy_per_inference_mj"] == pytest.approx(power["energy_per_inference_mj"])


def test_sampler_crash_keeps_the_latency_and_reports_the_power_error(artifact, loop, tmp_path):
    _, _, devices = loop
    result = edgesdk.profile(artifact.path, device="loop-crash", runs=RUNS, warmup=WARMUP, devices=devices,
                             runs_dir=tmp_path / "runs", power=True)
    assert result.latency.n == RUNS and result.latency.p50 > 0
    assert "stopped early" in result.power["error"] and "killed" in result.power["error"]
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["status"] == "ok"
    assert (result.run_dir / "power_trace.jsonl").exists()  # what it measured before dying is kept


def test_power_on_a_device_without_a_sensor_is_refused_before_running(artifact, loop, tmp_path):
    _, _, devices = loop
    with pytest.raises(PowerError, match=r"device 'loop-none' has no power sensor .* devices\.yaml"):
        edgesdk.profile(artifact.path, device="loop-none", runs=5, devices=devices, runs_dir=tmp_path / "runs", power=True)


def test_cli_profile_power_json(artifact, loop, tmp_path):
    _, player, devices = loop
    done = subprocess.run([sys.executable, "-m", "edgesdk.cli", "profile", str(artifact.path), "--device", "loop-hwmon",
                           "--devices", str(devices), "--runs", str(RUNS), "--warmup", "2", "--runs-dir",
                           str(tmp_path / "runs"), "--power", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    power = json.loads(done.stdout)["power"]
    assert power["sensor"] == "hwmon" and power["idle_w"] == pytest.approx(IDLE_W, rel=0.03)
    assert power["energy_per_inference_mj"] == pytest.approx(
        player.energy_j(power["timed_start"], power["timed_end"]) / RUNS * 1e3, rel=0.03)


def test_cli_power_without_a_sensor_exits_with_the_device_error(artifact, loop, tmp_path):
    _, _, devices = loop
    done = subprocess.run([sys.executable, "-m", "edgesdk.cli", "profile", str(artifact.path), "--device", "loop-none",
                           "--devices", str(devices), "--runs", "5", "--runs-dir", str(tmp_path / "runs"), "--power"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == PowerError.exit_code
    assert "device 'loop-none' has no power sensor" in done.stderr + done.stdout


def test_devices_check_reads_the_power_sensor_once(loop):
    from edgesdk.devices.check import check_device
    from edgesdk.devices.inventory import load_inventory

    _, _, devices = loop
    inventory = load_inventory(devices)
    good = check_device(inventory.get("loop-tegrastats"))
    assert good["ok"] and good["power"] == {"sensor": "tegrastats", "ok": True}
    assert "power" not in check_device(inventory.get("loop-none"))
    broken = check_device(inventory.get("loop-absent-hwmon"))
    assert not broken["ok"] and not broken["power"]["ok"] and "loop-absent-hwmon" in broken["power"]["error"]
