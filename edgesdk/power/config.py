"""The `power:` block of a device in devices.yaml, validated before anything connects.

    power: {sensor: tegrastats}
    power: {sensor: ina3221, root: /sys}
    power: {sensor: hwmon, path: /sys/class/hwmon/hwmon3}
    power: {sensor: command, command: "my-meter --once", unit: W}

`root` is where sysfs lives on the device (default /sys); tests point it at a fake tree. Sensor names
are checked against the registry in sensors.py, so a new sensor is accepted the day it registers."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_RATE_HZ = 20.0
DEFAULT_IDLE_S = 3.0


class PowerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sensor: str = "none"
    rate_hz: float = Field(default=DEFAULT_RATE_HZ, gt=0, le=1000, description="samples per second on the device")
    idle_s: float = Field(default=DEFAULT_IDLE_S, ge=0, le=600, description="idle baseline before the timed runs")
    subtract_idle: bool = False  # energy per inference above the idle baseline instead of the whole board's
    root: str = "/sys"  # sysfs on the device (ina3221, rapl)
    path: str | None = None  # hwmon: the hwmon directory
    command: str | None = None  # command: the meter, run once per sample (split like a shell would, never run by one)
    unit: Literal["W", "mW"] = "W"  # command: what the number it prints means

    @field_validator("sensor")
    @classmethod
    def _known_sensor(cls, value: str) -> str:
        from .sensors import SENSORS

        if value not in SENSORS:
            raise ValueError(f"unknown power sensor '{value}' (known: {', '.join(SENSORS)})")
        return value

    @field_validator("root", "path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"'{value}' must be an absolute path on the device")
        return value

    @model_validator(mode="after")
    def _complete(self) -> PowerConfig:
        if self.sensor == "hwmon" and not self.path:
            raise ValueError("sensor 'hwmon' needs 'path' (a directory such as /sys/class/hwmon/hwmon3)")
        if self.sensor == "command":
            if not self.command or not self.command.strip():
                raise ValueError("sensor 'command' needs 'command' (a meter that prints one reading, e.g. 'my-meter --once')")
            try:
                shlex.split(self.command)
            except ValueError as exc:
                raise ValueError(f"command '{self.command}' cannot be split into arguments: {exc}") from None
        if self.subtract_idle and self.idle_s == 0:
            raise ValueError("subtract_idle needs an idle baseline: set idle_s above 0")
        for key, value in (("path", self.path), ("command", self.command)):
            if value is not None and self.sensor not in _USES[key]:
                raise ValueError(f"'{key}' is not used by sensor '{self.sensor}' (only by {', '.join(_USES[key])})")
        return self

    @property
    def enabled(self) -> bool:
        return self.sensor != "none"

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate_hz


_USES = {"path": ("hwmon",), "command": ("command",)}
