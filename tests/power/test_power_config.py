"""The `power:` block: defaults, and errors that say what to write instead."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgesdk.power import SENSORS, PowerConfig


def test_defaults():
    config = PowerConfig()
    assert config.sensor == "none" and not config.enabled
    assert 10 <= config.rate_hz <= 20 and config.interval_s == pytest.approx(1 / config.rate_hz)
    assert config.root == "/sys" and config.subtract_idle is False


@pytest.mark.parametrize("settings, error", [
    ({"sensor": "ina3220"}, "unknown power sensor 'ina3220' (known: none, tegrastats"),
    ({"sensor": "hwmon"}, "sensor 'hwmon' needs 'path'"),
    ({"sensor": "command"}, "sensor 'command' needs 'command'"),
    ({"sensor": "command", "command": "meter 'unclosed"}, "cannot be split into arguments"),
    ({"sensor": "command", "command": "meter", "unit": "kW"}, "Input should be 'W' or 'mW'"),
    ({"sensor": "rapl", "path": "/sys/class/hwmon/hwmon1"}, "'path' is not used by sensor 'rapl'"),
    ({"sensor": "tegrastats", "command": "tegrastats"}, "'command' is not used by sensor 'tegrastats'"),
    ({"sensor": "ina3221", "root": "sys"}, "must be an absolute path"),
    ({"sensor": "tegrastats", "rate_hz": 0}, "greater than 0"),
    ({"sensor": "tegrastats", "subtract_idle": True, "idle_s": 0}, "subtract_idle needs an idle baseline"),
    ({"sensor": "tegrastats", "rate": 10}, "Extra inputs are not permitted"),
])
def test_errors(settings, error):
    with pytest.raises(ValidationError) as info:
        PowerConfig(**settings)
    assert error in str(info.value)


def test_every_registered_sensor_is_a_valid_config_with_its_required_keys():
    required = {"hwmon": {"path": "/sys/class/hwmon/hwmon0"}, "command": {"command": "meter"}}
    for kind in SENSORS:
        assert PowerConfig(sensor=kind, **required.get(kind, {})).sensor == kind
