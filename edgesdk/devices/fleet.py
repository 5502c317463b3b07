"""Several devices at once: one thread per device, each with its own session, lock, run record and progress
line; every device's outcome kept (a failure on one never loses another's figures), then one summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import progress
from ..errors import EdgeSDKError, InventoryError
from .inventory import Device, Inventory


@dataclass
class FleetOutcome:
    device: Device
    result: object | None  # a ProfileResult
    error: str | None
    exit_code: int
    wall_s: float

    def to_json(self) -> dict:
        if self.result is not None:
            return {"ok": True, "wall_s": round(self.wall_s, 3), **self.result.to_json()}
        return {"ok": False, "device": self.device.name, "target": self.device.target, "error": self.error,
                "exit_code": self.exit_code, "wall_s": round(self.wall_s, 3)}


def select(inventory: Inventory, names: list[str], tag: str | None = None) -> list[Device]:
    """The named devices, then those tagged ``tag``, each once, in that order."""
    chosen = [inventory.get(name) for name in names]
    if tag:
        tagged = [d for d in inventory.devices.values() if tag in d.tags]
        if not tagged:
            raise InventoryError(f"no device tagged '{tag}' in {inventory.path or 'the inventory'}")
        chosen += tagged
    unique: dict[str, Device] = {}
    for device in chosen:
        unique.setdefault(device.name, device)
    return list(unique.values())


def run_fleet(devices: list[Device], work: Callable[[Device], object]) -> list[FleetOutcome]:
    """work(device) on every device in parallel; a line per device shows where it is."""
    lines = _Lines(devices)
    with lines, ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="fleet") as pool:
        futures = [pool.submit(_one, device, work, lines) for device in devices]
        return [future.result() for future in futures]


def _one(device: Device, work: Callable[[Device], object], lines: _Lines) -> FleetOutcome:
    start = time.perf_counter()
    with progress.reporting_to(lambda text, done, total: lines.show(device.name, text, done, total)):
        try:
            result = work(device)
        except EdgeSDKError as exc:
            lines.show(device.name, f"FAILED: {exc}", None, None)
            return FleetOutcome(device, None, str(exc), exc.exit_code, time.perf_counter() - start)
        except Exception as exc:  # a bug on one device must not lose the others' figures
            lines.show(device.name, f"FAILED: {type(exc).__name__}: {exc}", None, None)
            return FleetOutcome(device, None, f"{type(exc).__name__}: {exc}", 1, time.perf_counter() - start)
    lines.show(device.name, "done", None, None)
    return FleetOutcome(device, result, None, 0, time.perf_counter() - start)


class _Lines:
    """One progress line per device on a terminal (rich), nothing otherwise."""

    def __init__(self, devices: list[Device]):
        self.names = [d.name for d in devices]
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> _Lines:
        if progress.enabled():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.fields[device]:>16}"), TextColumn("{task.description}"),
                                      BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=progress._console(), transient=True)
            self._progress.start()
            self._tasks = {n: self._progress.add_task("waiting", total=None, device=n) for n in self.names}
        return self

    def show(self, name: str, text: str, done: int | None, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._tasks[name], description=text[:60], completed=done or 0, total=total)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
