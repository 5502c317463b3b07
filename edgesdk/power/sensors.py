"""Power sensors: one small class per kind, registered by name (the `sensor:` of a device's `power:` block).

A sensor has two halves. On the host, before a run, ``plan`` decides what the device-side sampler does:
stream a tool's lines (tegrastats), run a command each tick (vcgencmd, a meter) or read sysfs files
each tick; sysfs sensors first look at a snapshot of the device's files to find their devices. After
the run, ``series`` turns the raw samples into watts with the parsers in parsers.py."""

from __future__ import annotations

import posixpath
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from ..errors import PowerError
from . import parsers
from .config import PowerConfig

Files = dict[str, str | None]  # device path -> text (None: unreadable)


@dataclass
class Snapshot:
    files: Files
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read


SnapshotFn = Callable[[list[str]], Snapshot]  # glob patterns on the device -> the matching files' contents


@dataclass
class SamplerPlan:
    """What the device-side sampler does. ``static`` holds files read once (labels, names) for the host."""

    mode: Literal["stream", "poll", "files"]
    argv: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    static: Files = field(default_factory=dict)

    def spec(self) -> dict:
        return {"mode": self.mode, "argv": self.argv, "files": self.files}


@dataclass
class RawSample:
    t: float  # device clock, time.time()
    raw: str | list[str | None]  # a tool's output, or the plan's files in order


@dataclass
class PowerSeries:
    t: np.ndarray
    total_w: np.ndarray
    rails_w: dict[str, np.ndarray]
    total_source: str
    notes: list[str] = field(default_factory=list)
    # An energy counter's own curve (RAPL): the total joules drawn by each read time, from the first read.
    # Energy over a window is then a difference of two points of it, not an integral of the derived power.
    energy_t: np.ndarray | None = None
    energy_j: np.ndarray | None = None


SENSORS: dict[str, type[PowerSensor]] = {}


def register(cls: type[PowerSensor]) -> type[PowerSensor]:
    SENSORS[cls.kind] = cls
    return cls


def get_sensor(config: PowerConfig) -> PowerSensor:
    return SENSORS[config.sensor](config)


class PowerSensor(ABC):
    kind: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, config: PowerConfig):
        self.config = config

    @abstractmethod
    def plan(self, snapshot: SnapshotFn) -> SamplerPlan: ...

    def reading(self, plan: SamplerPlan, raw: str | list[str | None]) -> parsers.Reading:
        raise NotImplementedError

    def series(self, plan: SamplerPlan, samples: list[RawSample]) -> PowerSeries:
        """One reading per sample; rails missing from a reading count as absent there (NaN)."""
        readings = [self.reading(plan, s.raw) for s in samples]
        return _series([s.t for s in samples], readings)


def _series(times: list[float], readings: list[parsers.Reading]) -> PowerSeries:
    if not readings:
        raise PowerError("the power trace holds no samples")
    names = list(dict.fromkeys(name for r in readings for name in r.rails_w))
    rails = {name: np.array([r.rails_w.get(name, np.nan) for r in readings]) for name in names}
    sources = list(dict.fromkeys(r.total_source for r in readings))
    return PowerSeries(np.array(times, dtype=np.float64), np.array([r.total_w for r in readings]), rails,
                       " / ".join(sources), list(dict.fromkeys(n for r in readings for n in r.notes)))


@register
class NoSensor(PowerSensor):
    kind = "none"
    summary = "no power sensor (a Raspberry Pi 4 has none; use an external meter with sensor: command)"

    def plan(self, snapshot):
        raise PowerError("no power sensor is configured")


@register
class Tegrastats(PowerSensor):
    kind = "tegrastats"
    summary = "NVIDIA Jetson: the rails tegrastats prints (VDD_IN / POM_5V_IN is the board total)"

    def plan(self, snapshot):
        interval_ms = max(1, round(1000.0 / self.config.rate_hz))
        return SamplerPlan("stream", ["tegrastats", "--interval", str(interval_ms)])

    def reading(self, plan, raw):
        return parsers.parse_tegrastats(raw)


@register
class RaspberryPi5Pmic(PowerSensor):
    kind = "rpi5-pmic"
    summary = "Raspberry Pi 5: vcgencmd pmic_read_adc (sum of the PMIC rails, an estimate of the board)"

    def plan(self, snapshot):
        return SamplerPlan("poll", ["vcgencmd", "pmic_read_adc"])

    def reading(self, plan, raw):
        return parsers.parse_pmic_read_adc(raw)


@register
class Command(PowerSensor):
    kind = "command"
    summary = "an external meter: a command printing one reading (W or mW), run once per sample"

    def plan(self, snapshot):
        # Split like a shell would, then run as an argument list: the device never sees a shell string.
        return SamplerPlan("poll", shlex.split(self.config.command or ""))

    def reading(self, plan, raw):
        return parsers.parse_meter(raw, self.config.unit)


class _FilesSensor(PowerSensor):
    """Sensors that read sysfs files each tick: the plan names the files found in a snapshot."""

    parse: ClassVar[Callable[[Files], parsers.Reading]]

    def reading(self, plan, raw):
        if any(value is None for value in raw):
            raise PowerError("a sensor file could not be read")
        return type(self).parse({**plan.static, **dict(zip(plan.files, raw))})

    @staticmethod
    def _require_readable(snap: Snapshot, paths: list[str]) -> None:
        bad = {p: snap.errors[p] for p in paths if p in snap.errors}
        if bad:
            path, why = next(iter(bad.items()))
            hint = " (only root may read it on this kernel; run as root or grant read access)" if "ermission" in why else ""
            raise PowerError(f"cannot read {path}: {why}{hint}")

    @staticmethod
    def _split(files: Files, sampled: Callable[[str], bool]) -> tuple[list[str], Files]:
        """(files to read every tick, files read once) from a snapshot."""
        each = sorted(p for p in files if sampled(posixpath.basename(p)))
        return each, {p: text for p, text in files.items() if p not in each}


@register
class Ina3221(_FilesSensor):
    kind = "ina3221"
    summary = "NVIDIA Jetson: INA3221 rails in sysfs (hwmon, or the older iio driver), found by their name file"
    parse = staticmethod(parsers.parse_ina3221)

    def plan(self, snapshot):
        root = self.config.root
        names = snapshot([posixpath.join(root, "class/hwmon/*/name"), posixpath.join(root, "bus/iio/devices/*/name")])
        dirs = parsers.ina3221_dirs(names.files)
        if not dirs:
            raise PowerError(f"no INA3221 found: no hwmon or iio device under {root} has a name containing 'ina3221'")
        patterns = ["name", "in[1-3]_label", "in[1-3]_input", "curr[1-3]_input", "rail_name_*", "in_power*_input"]
        snap = snapshot([posixpath.join(d, p) for d in dirs for p in patterns])
        each, once = self._split(snap.files, lambda n: n.endswith("_input"))
        self._require_readable(snap, each)
        parsers.parse_ina3221(snap.files)  # refuse now, not after the run, if the rails make no sense
        return SamplerPlan("files", files=each, static=once)


@register
class Hwmon(_FilesSensor):
    kind = "hwmon"
    summary = "any Linux hwmon directory: power*_input (µW), or in*_input (mV) x curr*_input (mA)"
    parse = staticmethod(parsers.parse_hwmon)

    def plan(self, snapshot):
        path = self.config.path or ""
        patterns = ["name", "power*_input", "power*_label", "in*_input", "in*_label", "curr*_input", "curr*_label"]
        snap = snapshot([posixpath.join(path, p) for p in patterns])
        if not snap.files and not snap.errors:
            raise PowerError(f"hwmon: {path} holds no power*_input, in*_input or curr*_input files (is it a hwmon directory?)")
        has_power = any(posixpath.basename(p).startswith("power") and p.endswith("_input") for p in snap.files)
        wanted = (lambda n: n.startswith("power") and n.endswith("_input")) if has_power else (lambda n: n.endswith("_input"))
        each, once = self._split(snap.files, wanted)
        self._require_readable(snap, each)
        parsers.parse_hwmon(snap.files)
        return SamplerPlan("files", files=each, static=once)


@register
class Rapl(_FilesSensor):
    kind = "rapl"
    summary = "x86 RAPL energy counters in /sys/class/powercap (power = energy step / time step)"

    def plan(self, snapshot):
        base = posixpath.join(self.config.root, "class/powercap/intel-rapl:*")
        snap = snapshot([posixpath.join(base, n) for n in ("name", "energy_uj", "max_energy_range_uj")])
        errors = {p: e for p, e in snap.errors.items() if p.endswith("/energy_uj")}
        files = {**snap.files, **{p: "0" for p in errors}}  # find the zones even when their counters are unreadable
        zones = parsers.rapl_zones(files)
        if not zones:
            raise PowerError(f"no RAPL zones under {self.config.root}/class/powercap (not an x86 CPU with powercap, "
                             "or the intel_rapl_common module is not loaded)")
        each = [posixpath.join(z.path, "energy_uj") for z in zones]
        self._require_readable(snap, each)
        return SamplerPlan("files", files=each, static={p: t for p, t in snap.files.items() if p not in each})

    def series(self, plan, samples):
        """Power of each step between two samples, placed at the step's middle."""
        if len(samples) < 2:
            raise PowerError("rapl needs at least two samples of its energy counters")
        zones = parsers.rapl_zones({**plan.static, **{p: "0" for p in plan.files}})
        total_zones, source = parsers.rapl_total(zones)
        index = {z.path: plan.files.index(posixpath.join(z.path, "energy_uj")) for z in zones}
        times, readings, read_t, drawn = [], [], [samples[0].t], [0.0]
        for before, after in zip(samples, samples[1:]):
            dt = after.t - before.t
            if dt <= 0:
                continue
            rails = {}
            for zone in zones:
                i = index[zone.path]
                if before.raw[i] is None or after.raw[i] is None:
                    raise PowerError(f"a RAPL counter could not be read ({plan.files[i]})")
                joules = parsers.energy_delta_uj(float(before.raw[i]), float(after.raw[i]), zone.max_energy_uj) / 1e6
                rails[zone.name if zone.top_level else f"{zone.name} ({posixpath.basename(zone.path)})"] = joules / dt
            total = sum(rails[z.name] for z in total_zones)
            times.append((before.t + after.t) / 2)
            readings.append(parsers.Reading(total, rails, source))
            read_t.append(after.t)
            drawn.append(drawn[-1] + total * dt)
        series = _series(times, readings)
        series.energy_t, series.energy_j = np.array(read_t), np.array(drawn)
        return series
