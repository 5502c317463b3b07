"""The `power:` block inside devices.yaml: parsed into the Device, errors naming the line and key."""

from __future__ import annotations

import pytest

from edgesdk.devices.inventory import parse_inventory
from edgesdk.errors import InventoryError
from edgesdk.power.session import power_config
from edgesdk.targets import load_target

YAML = """devices:
  orin:
    target: jetson-orin
    host: 10.0.0.7
    power: {sensor: tegrastats, rate_hz: 10, subtract_idle: true}
  pi4:
    target: rpi4
    host: 10.0.0.8
    power:
      sensor: command
      command: "um25c-read --port /dev/rfcomm0"
      unit: mW
  pi5:
    target: rpi5
    host: 10.0.0.9
"""


def test_power_blocks_parse_and_targets_supply_the_default():
    inventory = parse_inventory(YAML)
    orin, pi4, pi5 = (inventory.get(n) for n in ("orin", "pi4", "pi5"))
    assert orin.power.sensor == "tegrastats" and orin.power.rate_hz == 10 and orin.power.subtract_idle
    assert pi4.power.command == "um25c-read --port /dev/rfcomm0" and pi4.power.unit == "mW"
    assert pi5.power is None and power_config(pi5, load_target("rpi5")).sensor == "rpi5-pmic"
    assert power_config(inventory.get("local"), load_target("host")).sensor == "none"


@pytest.mark.parametrize("block, error", [
    ("    power: {sensor: tegrastat}\n", r"devices.yaml:5: device 'x', key 'power.sensor': unknown power sensor 'tegrastat'"),
    ("    power: {sensor: hwmon}\n", r"devices.yaml:5: device 'x', key 'power': sensor 'hwmon' needs 'path'"),
    ("    power: {sensor: rapl, rate: 5}\n", r"devices.yaml:5: device 'x', key 'power.rate'"),
])
def test_power_block_errors_name_the_line(block, error):
    text = "devices:\n  x:\n    target: rpi4\n    host: h\n" + block
    with pytest.raises(InventoryError, match=error):
        parse_inventory(text)
