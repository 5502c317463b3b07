"""What a backend is: everything the rest of edgesdk needs to know about one runtime format.

    name, format, runtime          what targets name (``backend:``) and what the manifest records
    Options                        the backend's own typed options (a target's ``options:`` block)
    recipes                        the recipe names it can express (None: all)
    device_modules, install        what the device runner imports, and the command that installs it
    device_systems                 the operating systems (uname -s) its runtime runs on, when not any
    export(graph, target, out_dir, feeds)           -> Exported (files written + manifest entries)
    host_runner(model_path, info, threads, lean)    -> feed -> {output: array}, to check it on this machine
                                                      (lean: a one-off check, memory before speed)
    device_runner(target, info, artifact, cross)   -> DeviceRunner: files to push + argv (cross: a program built
                                                      on this host for the device, by backends that compile)
    describe(model_path, info) / describe_lines     what ``inspect`` shows of its model file

A backend is one class registered in edgesdk/backends/__init__.py, or by a third party under the Python
entry point group ``edgesdk.backends``. It imports its runtime lazily, inside these methods."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UsageError

Feed = dict[str, np.ndarray]
HostRunner = Callable[[Feed], dict[str, np.ndarray]]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class DeviceModule:
    """A Python module the device runner imports; ``alternatives`` may stand in for it."""

    module: str
    dist: str  # the distribution that provides it (for version facts and the install command)
    alternatives: tuple[tuple[str, str], ...] = ()  # (module, dist) pairs accepted instead

    def names(self) -> list[tuple[str, str]]:
        return [(self.module, self.dist), *self.alternatives]


@dataclass
class Exported:
    model_file: str  # relative to the artifact directory
    device_files: list[str] = field(default_factory=list)  # beside the model file, pushed to the device
    info: dict[str, Any] = field(default_factory=dict)  # the manifest's backend_info
    inputs: list[dict[str, Any]] | None = None  # when the model file fixes other input shapes than the graph


@dataclass(frozen=True)
class DeviceRunner:
    """A runner program: files pushed into one device folder named by their content, and the command
    that runs it there. ``{dir}`` in ``argv`` is that folder on the device, ``{python}`` the device's python.
    The runner protocol's flags (--artifact DIR --outputs FILE --runs N --warmup N --threads N --budget S)
    follow ``argv``; it prints one JSON document (edgesdk/devices/runner.py)."""

    name: str
    files: dict[str, bytes]
    argv: tuple[str, ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        h.update("\0".join(self.argv).encode())
        return h.hexdigest()


class Backend:
    name: ClassVar[str]
    format: ClassVar[str]
    runtime: ClassVar[str]
    summary: ClassVar[str] = ""
    file_suffixes: ClassVar[tuple[str, ...]] = ()  # model files ``inspect`` reads without an artifact
    Options: ClassVar[type[BaseModel]] = NoOptions
    recipes: ClassVar[frozenset[str] | None] = None
    device_modules: ClassVar[tuple[DeviceModule, ...]] = ()
    install: ClassVar[str] = ""  # default install command on the device; a target's `install:` overrides it
    device_systems: ClassVar[tuple[str, ...]] = ()  # `uname -s` of the devices that run it (empty: any)

    # -- options and recipes ---------------------------------------------------------------------------
    @classmethod
    def parse_options(cls, options: dict[str, Any], where: str) -> BaseModel:
        try:
            return cls.Options(**options)
        except ValidationError as exc:
            problems = "; ".join(f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            known = ", ".join(cls.Options.model_fields) or "none"
            raise UsageError(f"{where}: {problems} (options of backend '{cls.name}': {known})") from None

    @classmethod
    def check_recipe(cls, recipe: str) -> None:
        if cls.recipes is not None and recipe not in cls.recipes:
            raise UsageError(f"recipe '{recipe}' cannot be expressed by the {cls.name} backend "
                             f"(it takes: {', '.join(sorted(cls.recipes))})")

    # -- the format --------------------------------------------------------------------------------------
    def export(self, graph, target, out_dir: Path, feeds: list[Feed]) -> Exported:
        raise NotImplementedError

    def host_runner(self, model_path: Path, info: dict[str, Any], threads: int | None = None,
                    lean: bool = False) -> HostRunner:
        raise NotImplementedError

    def device_runner(self, target, info: dict[str, Any], artifact: Path | None = None, cross: bool = False) -> DeviceRunner:
        raise NotImplementedError

    @classmethod
    def check_deployable(cls, target) -> None:
        """A target whose artifacts no device here runs (an iOS build) is refused before anything connects."""

    @classmethod
    def check_cross(cls, target) -> None:
        """A backend that compiles for the device can push a program built here (--cross); others refuse."""
        raise UsageError(f"--cross: the {cls.name} backend runs no program compiled for the device "
                         f"(it is for compiled backends, such as c)")

    def describe(self, model_path: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def describe_lines(self, report: dict[str, Any]) -> list[str]:
        return []


def template_runner(name: str, template: str, target) -> DeviceRunner:
    """A Python runner rendered from templates/ (its target's thread count baked in as the default)."""
    from ..devices.runner import render

    text = render(template, target)
    return DeviceRunner(name, {f"{name}_runner.py": text.encode()}, ("{python}", f"{{dir}}/{name}_runner.py"))
