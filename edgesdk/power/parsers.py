"""Parsers of what power sensors print or expose: pure functions on text, run on the host.

Each returns a Reading in watts: the board total, the rails it saw, and where the total came from
(a total input rail such as VDD_IN, or a sum of rails where the board reports no total). The device
side never interprets anything: it only records raw text (see templates/power_sampler.py.j2)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import PowerError

# Rails that carry the whole board's input. Sub-rails are already inside them: never add those to it.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
# INA3221 channels wired to nothing, and the chip's sum-of-shunts channel (a second count of the others).
_UNUSED_LABELS = re.compile(r"^(nc|n/c)?$|\bsum\b", re.IGNORECASE)


@dataclass
class Reading:
    total_w: float
    rails_w: dict[str, float]
    total_source: str  # "VDD_IN", or "sum of A+B+C (...)": how total_w was obtained
    notes: list[str] = field(default_factory=list)


def combine_rails(rails_w: Mapping[str, float], what: str) -> Reading:
    """The board total from named rails: the total input rail when there is one, else the sum (and say so)."""
    rails = {name: watts for name, watts in rails_w.items() if not _UNUSED_LABELS.search(name)}
    if not rails:
        raise PowerError(f"{what}: no power rails found")
    for name in TOTAL_RAILS:
        if name in rails:
            return Reading(rails[name], rails, name)
    names = "+".join(rails)
    return Reading(sum(rails.values()), rails, f"sum of {names} (no total input rail reported)")


# -- tegrastats -------------------------------------------------------------------------------------
# A rail is `NAME current/average`, in mW; JetPack 5+ writes the unit (`4952mW/4952mW`), JetPack 4 does not.
# The lookahead keeps `RAM 1636/3956MB` and `IRAM 0/252kB` out.
_TEGRA_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


def parse_tegrastats(line: str) -> Reading:
    """One tegrastats line -> the current (not the running average) power of each rail."""
    rails = {name: int(now) / 1000.0 for name, now, _avg in _TEGRA_RAIL.findall(line)}
    if not rails:
        raise PowerError(f"tegrastats line has no power rails: {line.strip()[:160]!r}")
    return combine_rails(rails, "tegrastats")


# -- Raspberry Pi 5: vcgencmd pmic_read_adc ---------------------------------------------------------
_PMIC = re.compile(r"^\s*(\S+?)_([AV])\s+(current|volt)\(\d+\)=([-+0-9.eE]+)([AV])\s*$")


def parse_pmic_read_adc(text: str) -> Reading:
    """Pair each rail's current with its voltage by name (VDD_CORE_A with VDD_CORE_V). The 5 V input has a
    voltage (EXT5V_V) but no current, so the total is the sum of the PMIC's rails: an estimate of the board."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        match = _PMIC.match(line)
        if match:
            rail, _suffix, kind, value, _unit = match.groups()
            (amps if kind == "current" else volts)[rail] = float(value)
    rails = {rail: amps[rail] * volts[rail] for rail in amps if rail in volts}
    if not rails:
        first = text.strip().splitlines()[:1]
        raise PowerError(f"vcgencmd pmic_read_adc printed no current/voltage pairs: {first[0][:160] if first else 'nothing'!r}")
    unpaired = sorted((set(amps) ^ set(volts)))
    notes = [f"no current for {', '.join(unpaired)}"] if unpaired else []
    return Reading(sum(rails.values()), rails, f"estimate: sum of {len(rails)} PMIC rails ({'+'.join(rails)}); "
                   "the 5 V input current is not measured", notes)


# -- sysfs snapshots: {path: file text} -------------------------------------------------------------
def _by_dir(files: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        if text is not None:
            grouped.setdefault(posixpath.dirname(path), {})[posixpath.basename(path)] = text.strip()
    return grouped


def _number(text: str, path: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PowerError(f"{path}: expected a number, read {text[:40]!r}") from None


def ina3221_dirs(files: Mapping[str, str | None]) -> list[str]:
    """Directories (hwmon or iio) whose `name` file says ina3221; hwmon numbers change across boots."""
    return sorted(d for d, entries in _by_dir(files).items() if "ina3221" in entries.get("name", "").lower())


def parse_ina3221(files: Mapping[str, str | None]) -> Reading:
    """INA3221 rails from the files of one or more devices. hwmon: bus voltage inN_input (mV) x currN_input
    (mA) for channels 1-3 (in4-in6 are shunt voltages, in7/curr4 the sums); the older iio driver:
    rail_name_N and in_powerN_input (mW). Channels labelled NC and sum channels are skipped."""
    rails: dict[str, float] = {}
    for directory, entries in sorted(_by_dir(files).items()):
        here = posixpath.basename(directory)
        for channel in (1, 2, 3):
            volts, amps = entries.get(f"in{channel}_input"), entries.get(f"curr{channel}_input")
            if volts is None or amps is None:
                continue
            label = entries.get(f"in{channel}_label", f"{here}/in{channel}")
            rails[label] = _number(volts, f"{directory}/in{channel}_input") * _number(amps, f"{directory}/curr{channel}_input") / 1e6
        for name, label in entries.items():
            match = re.fullmatch(r"rail_name_(\d+)", name)
            if match and f"in_power{match.group(1)}_input" in entries:
                rails[label] = _number(entries[f"in_power{match.group(1)}_input"], f"{directory}/in_power{match.group(1)}_input") / 1e3
    return combine_rails(rails, "ina3221")


def parse_hwmon(files: Mapping[str, str | None]) -> Reading:
    """A generic hwmon directory: powerN_input (µW) when it has them, else inN_input (mV) x currN_input (mA)
    paired by N. Without a rail named as a total input, the total is the sum of what it reports."""
    rails: dict[str, float] = {}
    for directory, entries in sorted(_by_dir(files).items()):
        powers = sorted(n for n in entries if re.fullmatch(r"power\d+_input", n))
        for name in powers:
            channel = name[len("power"):-len("_input")]
            label = entries.get(f"power{channel}_label", f"power{channel}")
            rails[label] = _number(entries[name], f"{directory}/{name}") / 1e6
        if powers:
            continue
        for name in sorted(n for n in entries if re.fullmatch(r"curr\d+_input", n)):
            channel = name[len("curr"):-len("_input")]
            if f"in{channel}_input" not in entries:
                continue
            label = entries.get(f"in{channel}_label") or entries.get(f"curr{channel}_label") or f"in{channel}*curr{channel}"
            rails[label] = (_number(entries[f"in{channel}_input"], f"{directory}/in{channel}_input")
                            * _number(entries[name], f"{directory}/{name}") / 1e6)
    if not rails:
        raise PowerError(f"hwmon: no power*_input and no in*_input/curr*_input pair in {', '.join(_by_dir(files)) or 'nothing'}")
    if len(rails) == 1:
        name, watts = next(iter(rails.items()))
        return Reading(watts, rails, name)
    return combine_rails(rails, "hwmon")


# -- RAPL: energy counters ----------------------------------------------------------------------------
@dataclass
class RaplZone:
    path: str  # the zone directory
    name: str  # package-0, core, uncore, dram, psys
    top_level: bool  # intel-rapl:N (a package or psys) rather than intel-rapl:N:M (a part of one)
    max_energy_uj: float


def rapl_zones(files: Mapping[str, str | None]) -> list[RaplZone]:
    zones = []
    for directory, entries in sorted(_by_dir(files).items()):
        zone_id = posixpath.basename(directory)
        if not re.fullmatch(r"intel-rapl(:\d+)+", zone_id) or "energy_uj" not in entries:
            continue
        max_range = _number(entries.get("max_energy_range_uj", "0"), f"{directory}/max_energy_range_uj")
        zones.append(RaplZone(directory, entries.get("name", zone_id), zone_id.count(":") == 1, max_range))
    return zones


def rapl_total(zones: list[RaplZone]) -> tuple[list[RaplZone], str]:
    """The zones whose sum is the total: psys (the whole platform) when present, else the packages.
    Sub-zones (core, uncore, dram inside a package) are reported but never added to their package."""
    psys = [z for z in zones if z.top_level and z.name == "psys"]
    if psys:
        return psys, "psys"
    packages = [z for z in zones if z.top_level]
    if not packages:
        raise PowerError("rapl: no top-level intel-rapl:N zone with energy_uj")
    return packages, "+".join(z.name for z in packages) + (" (CPU packages only: no psys zone)")


def energy_delta_uj(before: float, after: float, max_energy_uj: float) -> float:
    """A counter step, across one wrap at max_energy_range_uj."""
    delta = after - before
    if delta < 0:
        if max_energy_uj <= 0:
            raise PowerError("rapl: energy counter went backwards and max_energy_range_uj is unknown")
        delta += max_energy_uj
    return delta


# -- an external meter the user scripts ---------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_meter(text: str, unit: str) -> Reading:
    """A meter command's output: the first number on its last non-empty line, in ``unit`` (W or mW)."""
    lines = [line for line in text.splitlines() if line.strip()]
    match = _NUMBER.search(lines[-1]) if lines else None
    if match is None:
        raise PowerError(f"the meter command printed no number: {text.strip()[:160]!r}")
    watts = float(match.group()) / (1000.0 if unit == "mW" else 1.0)
    return Reading(watts, {"meter": watts}, "meter")
