"""devices.yaml: the inventory of real machines, validated with errors that name the line and key.

Path: --devices, else $EDGESDK_DEVICES, else ./devices.yaml (absent: only the built-in 'local' device).
Names and paths are also checked for shell metacharacters: they are always quoted on the device, but a
name like 'pi;rm -rf' is a mistake worth refusing before anything connects."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InventoryError
from ..power.config import PowerConfig
from ..targets import available_targets
from ..yaml_errors import yaml_problem

ENV_VAR = "EDGESDK_DEVICES"
DEFAULT_FILE = "devices.yaml"
LOCAL = "local"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Characters a POSIX shell gives meaning to. Paths with them are refused (they are quoted anyway).
_SHELL_META = set("$`;&|<>(){}[]*?!\\\"'#\n\r\t ")


def _check_shell_safe(value: str, what: str) -> str:
    bad = sorted({c for c in value if c in _SHELL_META})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise ValueError(f"{what} '{value}' contains shell metacharacters ({shown}); use a plain path")
    return value


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"device name '{value}' may hold only letters, digits, '.', '_' and '-' (no shell metacharacters)")
    return value


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    target: str = ""
    transport: Literal["ssh", "local"] = "ssh"
    host: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    user: str | None = None
    key: str | None = None  # a private key file; absent: ssh-agent and ~/.ssh/id_*
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: Literal["strict", "accept-new"] = "strict"
    workdir: str = "~/.cache/edgesdk"  # private to the device user; created 0700 on first upload
    python: str | None = None  # absent: python3 over SSH, this interpreter for the local transport
    tags: list[str] = []
    connect_timeout: float = Field(default=10.0, gt=0)
    power: PowerConfig | None = None  # absent: the target's power_sensor (targets/*.yaml), else none
    emulated: bool = False  # qemu on the host (edgesdk devices emulate): its timings are not the board's

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("workdir")
    @classmethod
    def _plain_workdir(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("workdir is empty")
        return _check_shell_safe(value, "workdir")

    @field_validator("python")
    @classmethod
    def _plain_python(cls, value: str | None) -> str | None:
        return None if value is None else _check_shell_safe(value, "python")

    @model_validator(mode="after")
    def _complete(self) -> Device:
        if self.transport == "ssh" and not self.host:
            raise ValueError("an ssh device needs 'host' (or set 'transport: local')")
        if not self.target:
            if self.transport != "local":
                raise ValueError("'target' is required (a file in targets/, e.g. rpi4)")
            self.target = "host"
        return self

    @property
    def interpreter(self) -> str:
        if self.python:
            return self.python
        return sys.executable if self.transport == "local" else "python3"

    @property
    def address(self) -> str:
        return "this machine" if self.transport == "local" else f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


def builtin_local() -> Device:
    return Device(name=LOCAL, target="host", transport="local")


@dataclass
class Inventory:
    path: Path | None
    devices: dict[str, Device] = field(default_factory=dict)

    def get(self, name: str) -> Device:
        if name not in self.devices:
            where = f" in {self.path}" if self.path else " (no devices.yaml found)"
            raise InventoryError(f"unknown device '{name}'{where}; known: {', '.join(self.devices)}")
        return self.devices[name]

    def for_target(self, target: str) -> Device:
        """The first device of a target; for 'host' the local device."""
        if target == "host" and LOCAL in self.devices:
            return self.devices[LOCAL]
        for device in self.devices.values():
            if device.target == target:
                return device
        where = self.path or DEFAULT_FILE
        raise InventoryError(f"no device with target '{target}' in {where}; add one or pass --device")


def inventory_path(path: str | Path | None = None) -> tuple[Path, bool]:
    """(path, explicitly chosen). An explicitly chosen file must exist; ./devices.yaml may be absent."""
    if path:
        return Path(path).expanduser(), True
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), True
    return Path(DEFAULT_FILE), False


def load_inventory(path: str | Path | None = None) -> Inventory:
    file, explicit = inventory_path(path)
    if not file.exists():
        if explicit:
            raise InventoryError(f"{file}: no such devices file")
        return Inventory(None, {LOCAL: builtin_local()})
    return parse_inventory(file.read_text(), file)


def parse_inventory(text: str, path: Path | None = None) -> Inventory:
    import yaml

    label = str(path) if path else "devices.yaml"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(yaml_problem(exc, label)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or set(data) - {"devices"}:
        extra = sorted(set(data) - {"devices"}) if isinstance(data, dict) else []
        raise InventoryError(f"{label}:{_line(root, extra[:1])}: expected one top-level key 'devices'"
                             + (f", found '{extra[0]}'" if extra else ""))
    entries = data.get("devices") or {}
    if not isinstance(entries, dict):
        raise InventoryError(f"{label}:{_line(root, ['devices'])}: 'devices' must map device names to settings")
    devices: dict[str, Device] = {}
    for name, settings in entries.items():
        if settings is None:
            settings = {}
        if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
            raise InventoryError(f"{label}:{_line(root, ['devices', name])}: device '{name}': expected a mapping of settings")
        if "name" in settings:
            raise InventoryError(f"{label}:{_line(root, ['devices', name, 'name'])}: device '{name}': 'name' is the mapping key, not a setting")
        try:
            devices[str(name)] = Device(name=str(name), **settings)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = [str(p) for p in error["loc"]]
            key = ".".join(loc)
            line = _line(root, ["devices", name] + ([] if loc == ["name"] else loc[:1]))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key (known: {', '.join(k for k in Device.model_fields if k != 'name')})"
            where = f"key '{key}'" if key else "settings"
            raise InventoryError(f"{label}:{line}: device '{name}', {where}: {message}") from None
    known_targets = available_targets()
    for name, device in devices.items():
        if device.target not in known_targets:
            line = _line(root, ["devices", name, "target"])
            raise InventoryError(f"{label}:{line}: device '{name}', key 'target': unknown target '{device.target}' "
                                 f"(known: {', '.join(known_targets)})")
    devices.setdefault(LOCAL, builtin_local())
    return Inventory(path, devices)


def _line(root: Any, keys: list[Any]) -> int:
    """1-based line of the deepest mapping key along ``keys`` that exists in the YAML node tree."""
    import yaml

    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if str(key_node.value) == str(key):
                node, line = value_node, key_node.start_mark.line + 1
                break
        else:
            break
    return line
