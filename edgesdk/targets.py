"""Targets are data: one YAML file per board or platform in targets/ (or $EDGESDK_TARGETS).

Adding a board is adding a file; the code reads the fields below and nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import UsageError
from .yaml_errors import yaml_problem


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    arch: Literal["native", "x86_64", "aarch64", "armv7l", "cortex-m"] = "native"
    cpu: str = ""
    backend: str = "onnxruntime"  # a registered backend (edgesdk/backends): its exporter, runners and options
    options: dict[str, Any] = {}  # the backend's own options, validated by it (e.g. onnxruntime: contrib_ops)
    default_recipe: str = "int8"
    threads: int = Field(default=0, ge=0, description="intra-op threads on the device; 0 = runtime default")
    cflags: list[str] = []
    power_sensor: str = "none"
    install: str | None = None  # the device's install command; absent: the backend's
    _backend_options: Any = PrivateAttr(default=None)

    def runs_on(self, device_target: Target) -> bool:
        """Its artifacts run on a device of ``device_target``: the same target, or the same board (arch and CPU)
        with another runtime (rpi4-tflite and rpi4-c on an rpi4 device)."""
        return self.name == device_target.name or (
            self.arch == device_target.arch != "native" and self.cpu == device_target.cpu != "")

    @property
    def backend_options(self) -> Any:
        """The ``options`` block as the backend's typed options (validated when the target is loaded)."""
        if self._backend_options is None:
            from .backends import get_backend

            self._backend_options = get_backend(self.backend).parse_options(self.options, f"target '{self.name}'")
        return self._backend_options


def targets_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGESDK_TARGETS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "targets")
    dirs.append(Path(__file__).resolve().parent / "_targets")  # installed wheel layout (pyproject package-dir)
    return [d for d in dirs if d.is_dir()]


def available_targets() -> list[str]:
    return sorted({p.stem for d in targets_dirs() for p in d.glob("*.yaml")})


def load_target(name: str) -> Target:
    import yaml

    for directory in targets_dirs():
        path = directory / f"{name}.yaml"
        if path.exists():
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise UsageError(yaml_problem(exc, str(path))) from None
            if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
                raise UsageError(f"{path}: expected a mapping of settings (backend, cpu, ...), found "
                                 f"{type(data).__name__}")
            data.setdefault("name", name)
            try:
                target = Target(**data)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise UsageError(f"{path}: {problems}") from None
            from .backends import get_backend

            try:
                backend = get_backend(target.backend)
            except UsageError as exc:
                raise UsageError(f"{path}: {exc}") from None
            target._backend_options = backend.parse_options(target.options, str(path))
            return target
    raise UsageError(f"unknown target '{name}' (known: {', '.join(available_targets()) or 'none'})")
