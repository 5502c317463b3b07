"""Every registered sensor kind, sampled for real on this machine (local transport) while the emulated board
plays its profile; sensor discovery on golden sysfs trees; the sampler's ways of stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesdk.devices.inventory import Device
from edgesdk.devices.transport import LocalTransport
from edgesdk.errors import PowerError
from edgesdk.power import SENSORS
from edgesdk.power.config import PowerConfig
from edgesdk.power.session import PowerSampling, render_sampler, require_sensor
from tests.power.conftest import BUSY_W, IDLE_W
from tests.power.profile_player import sensor_configs
from tests.power.stand_in import run_stand_in

GOLDEN = Path(__file__).resolve().parent / "golden"
RUNS = 50


def sampling(tmp_path: Path, **power) -> PowerSampling:
    device = Device(name="bench", transport="local", target="host", workdir=str(tmp_path / "workdir"))
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return PowerSampling(LocalTransport(device), PowerConfig(**power), sys.executable, device.workdir, run_dir)


@pytest.mark.parametrize("kind", [k for k in SENSORS if k != "none"])
def test_every_registered_sensor_measures_the_known_profile(kind, board, tmp_path):
    configs = sensor_configs(board)
    assert kind in configs, f"sensor '{kind}' is registered but has no emulated sensor in tests/power/profile_player.py"
    power = sampling(tmp_path, idle_s=0.6, **configs[kind])
    power.prepare()
    power.start(max_s=60)
    try:
        power.wait_idle()
        clock = run_stand_in(tmp_path, seconds=1.0)
    finally:
        power.stop()
    result = power.finish(clock, RUNS)

    expected_mj = board.energy_j(clock["timed_start"], clock["timed_end"]) / RUNS * 1e3
    assert result.energy_per_inference_mj == pytest.approx(expected_mj, rel=0.03)
    assert expected_mj == pytest.approx(BUSY_W * (clock["timed_end"] - clock["timed_start"]) / RUNS * 1e3, rel=0.01)
    assert result.idle_w == pytest.approx(IDLE_W, rel=0.03)
    assert result.mean_w == pytest.approx(BUSY_W, rel=0.03)
    assert result.energy_above_idle_per_inference_mj == pytest.approx(expected_mj * (BUSY_W - IDLE_W) / BUSY_W, rel=0.05)
    assert result.window_samples >= 10 and result.rate_hz == pytest.approx(20, rel=0.25)
    for name in ("power_trace.jsonl", "power_trace.csv", "power.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert result.sensor == kind and result.rails


def test_tegrastats_sub_rails_are_reported_but_not_added(board, tmp_path):
    power = sampling(tmp_path, sensor="tegrastats", idle_s=0.3)
    power.prepare()
    power.start(max_s=30)
    try:
        power.wait_idle()
        clock = run_stand_in(tmp_path, seconds=0.5)
    finally:
        power.stop()
    result = power.finish(clock, 10)
    assert result.total_source == "VDD_IN"
    assert result.rails_mean_w == pytest.approx({"VDD_IN": 6.5, "VDD_CPU_GPU_CV": 6.5 * 0.45, "VDD_SOC": 6.5 * 0.2}, rel=0.01)


def test_no_sensor_names_the_device_and_how_to_configure_one():
    with pytest.raises(PowerError) as info:
        require_sensor(PowerConfig(), "pi-lab")
    message = str(info.value)
    assert "device 'pi-lab' has no power sensor" in message
    assert "power: {sensor: tegrastats}" in message and "sensor: command" in message


def test_missing_tool_fails_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PowerError, match="tegrastats: not found on the device's PATH"):
        sampling(tmp_path, sensor="tegrastats").prepare()
    with pytest.raises(PowerError, match="vcgencmd: not found on the device's PATH"):
        sampling(tmp_path, sensor="rpi5-pmic").prepare()


def test_meter_printing_nonsense_fails_before_the_run(tmp_path):
    with pytest.raises(PowerError, match="the meter command printed no number"):
        sampling(tmp_path, sensor="command", command=f"{sys.executable} -c 'print(\"no meter attached\")'").prepare()


@pytest.mark.parametrize("tree, sensor, files", [
    ("sysfs_orin_nano", "ina3221", 6),  # hwmon1's in1-3 and curr1-3; the pwm fan and soctherm are not INA3221s
    ("sysfs_agx_orin", "ina3221", 12),  # two chips
    ("sysfs_nano_iio", "ina3221", 3),  # in_power0-2_input
    ("sysfs_rapl_laptop", "rapl", 4),
    ("sysfs_rapl_server", "rapl", 4),
])
def test_sysfs_sensors_find_their_files_with_the_device_side_sampler(tree, sensor, files, tmp_path):
    power = sampling(tmp_path, sensor=sensor, root=str(GOLDEN / tree))
    power.prepare()
    assert power.plan.mode == "files" and len(power.plan.files) == files
    assert all(p.startswith(str(GOLDEN / tree)) for p in power.plan.files)


def test_hwmon_path_on_a_golden_tree(tmp_path):
    power = sampling(tmp_path, sensor="hwmon", path=str(GOLDEN / "hwmon_two_rails"))
    power.prepare()
    assert [Path(p).name for p in power.plan.files] == ["curr1_input", "curr2_input", "in1_input", "in2_input"]
    assert power.sensor.reading(power.plan, ["500", "300", "12000", "5000"]).total_w == pytest.approx(7.5)


@pytest.mark.parametrize("root, error", [
    ("/nonexistent", "no INA3221 found"),
    (str(GOLDEN / "sysfs_rapl_laptop"), "no INA3221 found"),
])
def test_ina3221_not_found(root, error, tmp_path):
    with pytest.raises(PowerError, match=error):
        sampling(tmp_path, sensor="ina3221", root=root).prepare()


def test_rapl_not_found(tmp_path):
    with pytest.raises(PowerError, match="no RAPL zones under /nonexistent/class/powercap"):
        sampling(tmp_path, sensor="rapl", root="/nonexistent").prepare()


# -- the sampler program itself ----------------------------------------------------------------------------
def start_sampler(tmp_path: Path, **spec):
    script = tmp_path / "power_sampler.py"
    script.write_text(render_sampler())
    full = {"mode": "files", "argv": [], "files": [str(tmp_path / "value")], "rate_hz": 50,
            "trace": str(tmp_path / "trace.jsonl"), "stop_file": str(tmp_path / "stop"), "max_s": 60, **spec}
    (tmp_path / "value").write_text("1\n")
    return subprocess.Popen([sys.executable, str(script), "--run", json.dumps(full)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_samples(tmp_path: Path, proc) -> None:
    while proc.poll() is None and (not (tmp_path / "trace.jsonl").exists()
                                   or len((tmp_path / "trace.jsonl").read_text().splitlines()) < 3):
        time.sleep(0.02)


def trace_end(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "trace.jsonl").read_text().splitlines()[-1])


def test_sampler_stops_on_sigterm_and_keeps_its_samples(tmp_path):
    proc = start_sampler(tmp_path)
    wait_for_samples(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    end = trace_end(tmp_path)
    assert end["end"] == "signal 15" and end["samples"] >= 2


def test_sampler_stops_on_its_stop_file(tmp_path):
    proc = start_sampler(tmp_path)
    wait_for_samples(tmp_path, proc)
    (tmp_path / "stop").touch()
    assert proc.wait(10) == 0 and trace_end(tmp_path)["end"] == "stop-file"


def test_sampler_stops_by_itself_after_max_s(tmp_path):
    proc = start_sampler(tmp_path, max_s=0.3)
    assert proc.wait(10) == 0 and trace_end(tmp_path)["end"] == "max-seconds"


def test_sampler_stops_when_the_host_stops_listening(tmp_path):
    """The host's end of stderr closes (a dropped SSH link): the next heartbeat fails and the sampler ends."""
    proc = start_sampler(tmp_path)
    wait_for_samples(tmp_path, proc)
    proc.stderr.close()
    assert proc.wait(10) == 3 and trace_end(tmp_path)["end"] == "host gone"


def test_sampler_gives_up_after_repeated_failures_and_says_why(tmp_path):
    proc = start_sampler(tmp_path, mode="poll", argv=[sys.executable, "-c", "import sys; sys.exit('meter unplugged')"],
                         files=[])
    assert proc.wait(30) == 2
    assert "5 readings failed in a row" in trace_end(tmp_path)["end"] and "meter unplugged" in trace_end(tmp_path)["end"]


def test_sampler_kills_its_stream_tool_when_it_stops(board, tmp_path):
    proc = start_sampler(tmp_path, mode="stream", argv=["tegrastats", "--interval", "20"], files=[])
    wait_for_samples(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "VDD_IN" in json.loads((tmp_path / "trace.jsonl").read_text().splitlines()[1])["raw"]
    assert tools_running(str(board.bin / "tegrastats")) == []


def tools_running(path: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if path.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found
