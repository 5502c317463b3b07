"""Parsers of device output, against golden files (see golden/README.md), and facts from real devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgesdk.backends import get_backend
from edgesdk.devices import facts
from edgesdk.devices.inventory import Device
from edgesdk.devices.transport import LocalTransport
from edgesdk.errors import MissingRuntimeError
from edgesdk.targets import load_target

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_cpuinfo_x86_names_the_model_and_counts_processors():
    assert facts.parse_cpuinfo(golden("cpuinfo_x86_64_epyc.txt")) == ("AMD EPYC", 2, "")


def test_cpuinfo_raspberry_pi4_names_the_core_from_its_part_number_and_the_board():
    assert facts.parse_cpuinfo(golden("cpuinfo_rpi4_arm64.txt")) == ("Cortex-A72", 4, "Raspberry Pi 4 Model B Rev 1.4")


def test_cpuinfo_armv7_prefers_the_core_over_the_isa_only_model_name():
    cpu, count, board = facts.parse_cpuinfo(golden("cpuinfo_rpi3_armv7.txt"))
    assert (cpu, count, board) == ("Cortex-A53", 1, "Raspberry Pi 3 Model B Rev 1.2")


def test_cpuinfo_empty_or_unknown():
    assert facts.parse_cpuinfo("") == ("", 0, "")
    assert facts.parse_cpuinfo("processor : 0\nHardware : Foo SoC\n") == ("Foo SoC", 1, "")


def test_os_release_and_meminfo():
    assert facts.parse_os_release(golden("os-release_debian12.txt")) == "Debian GNU/Linux 12 (bookworm)"
    assert facts.parse_os_release('NAME="Alpine Linux"\n') == "Alpine Linux"
    mem = facts.parse_meminfo_mb(golden("meminfo_head.txt"))
    assert mem is not None and mem > 100
    assert facts.parse_meminfo_mb("MemTotal:        4045376 kB\n") == pytest.approx(3950.6, abs=0.1)
    assert facts.parse_meminfo_mb("nothing here") is None


def test_parse_facts_of_real_output():
    parsed = facts.parse_facts(golden("facts_debian12_x86_64.json"))
    assert parsed.arch == "x86_64" and parsed.cpu == "AMD EPYC" and parsed.cores == 2
    assert parsed.os == "Debian GNU/Linux 12 (bookworm)" and parsed.python.startswith("3.")
    assert parsed.runtimes["onnxruntime"] and parsed.runtimes["numpy"]
    assert facts.missing_runtimes(parsed, get_backend("onnxruntime")) == []


def test_parse_facts_rejects_non_json():
    with pytest.raises(Exception, match="not JSON"):
        facts.parse_facts("Welcome to the board!\n")


def test_install_command_uses_the_devices_python():
    target = load_target("rpi4")
    assert facts.install_command(target, "/opt/venv/bin/python") == "/opt/venv/bin/python -m pip install onnxruntime numpy"
    target = target.model_copy(update={"install": "{python} -m pip install --user onnxruntime"})
    assert facts.install_command(target, "python3.11") == "python3.11 -m pip install --user onnxruntime"


def test_require_runtime_names_the_install_command():
    parsed = facts.parse_facts(golden("facts_debian12_x86_64.json"))
    parsed.runtimes["onnxruntime"] = None
    with pytest.raises(MissingRuntimeError, match=r"lacks onnxruntime .* install on the device with: /usr/bin/python3 -m pip"):
        facts.require_runtime(parsed, get_backend("onnxruntime"), load_target("rpi4"), "pi", "/usr/bin/python3")


def test_gather_on_this_machine():
    local = LocalTransport(Device(name="local", transport="local", target="host"))
    got = facts.gather(local, local.device.interpreter)
    assert got.arch and got.kernel and got.python and got.runtimes["onnxruntime"]


def test_gather_with_a_python_that_does_not_exist():
    local = LocalTransport(Device(name="local", transport="local", target="host"))
    with pytest.raises(MissingRuntimeError, match="cannot be run there"):
        facts.gather(local, "/nonexistent/python3")
