"""What a report shows of each source: a run folder (or a run id in the runs store) with its measured figures,
or an artifact folder with what the host measured at export time (size and accuracy, no latency)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..accuracy_figure import accuracy_figure
from ..errors import ArtifactError, UsageError
from ..manifest import read_manifest


@dataclass
class Accuracy:
    value: float
    metric: str  # "cosine" (worst output's mean cosine vs the float model) or "next-token agreement"


@dataclass
class ReportEntry:
    label: str
    kind: str  # "run" | "artifact"
    source: Path
    model: str
    recipe: str
    target: str
    backend: str
    size_bytes: int
    host_accuracy: Accuracy | None
    device: str = ""
    status: str = ""
    error: str | None = None
    emulated: bool = False
    accuracy: Accuracy | None = None  # on the device
    latencies_ms: list[float] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)  # n, mean, p50, p90, p99, ...
    peak_rss_mb: float | None = None
    power: dict[str, Any] | None = None
    power_trace: tuple[list[float], list[float]] | None = None  # (device time s, total W)
    facts: dict[str, Any] = field(default_factory=dict)
    lm: dict[str, Any] | None = None

    @property
    def best_accuracy(self) -> Accuracy | None:
        """The device's figure when there is one, else the host's."""
        return self.accuracy or self.host_accuracy


def load_entries(sources: list[str], runs_root: Path) -> list[ReportEntry]:
    entries = [load_entry(source, runs_root) for source in sources]
    seen: dict[str, int] = {}
    for entry in entries:  # labels name the chart points: make repeated ones distinct
        seen[entry.label] = seen.get(entry.label, 0) + 1
        if seen[entry.label] > 1:
            entry.label = f"{entry.label} #{seen[entry.label]}"
    return entries


def load_entry(source: str, runs_root: Path) -> ReportEntry:
    path = Path(source).expanduser()
    if not path.exists() and (runs_root / source).is_dir():  # a run id
        path = runs_root / source
    if not path.is_dir():
        raise UsageError(f"{source}: neither a run folder, a run id in {runs_root}, nor an artifact folder")
    if (path / "run.json").is_file():
        return _run_entry(path)
    if (path / "manifest.json").is_file():
        return _artifact_entry(path)
    raise UsageError(f"{path}: neither a run folder (run.json) nor an artifact folder (manifest.json)")


def _artifact_entry(path: Path) -> ReportEntry:
    manifest = read_manifest(path)
    return ReportEntry(
        label=f"{manifest.recipe.name} · {manifest.target}", kind="artifact", source=path,
        model=manifest.model.name, recipe=manifest.recipe.name, target=manifest.target, backend=manifest.backend,
        size_bytes=manifest.model_bytes, host_accuracy=_host_accuracy(manifest),
    )


def _run_entry(path: Path) -> ReportEntry:
    record = _json(path / "run.json")
    if not (path / "manifest.json").is_file():
        raise ArtifactError(f"{path}: the run has no manifest.json (it stopped before its artifact was read)")
    manifest = read_manifest(path)
    summary = _json(path / "summary.json") if (path / "summary.json").is_file() else {}
    latencies = _json(path / "latencies.json").get("latencies_ms", []) if (path / "latencies.json").is_file() else []
    facts = _json(path / "device.json").get("facts", {}) if (path / "device.json").is_file() else {}
    device = record.get("device") or summary.get("device") or ""
    entry = ReportEntry(
        label=f"{manifest.recipe.name} · {manifest.target} · {device}", kind="run", source=path,
        model=manifest.model.name, recipe=manifest.recipe.name, target=manifest.target, backend=manifest.backend,
        size_bytes=manifest.model_bytes, host_accuracy=_host_accuracy(manifest), device=device,
        status=record.get("status", ""), error=record.get("error"), emulated=bool(summary.get("emulated")),
        accuracy=_accuracy(summary.get("accuracy")), latencies_ms=[float(v) for v in latencies],
        latency=summary.get("latency_ms") or {}, peak_rss_mb=summary.get("peak_rss_mb"),
        power=summary.get("power"), facts=facts, lm=summary.get("lm"),
    )
    if entry.power and "error" not in entry.power and (path / "power_trace.csv").is_file():
        entry.power_trace = read_trace(path / "power_trace.csv")
    return entry


def _accuracy(document: dict[str, Any] | None) -> Accuracy | None:
    figure = accuracy_figure(document)
    return None if figure is None else Accuracy(*figure)


def _host_accuracy(manifest) -> Accuracy | None:
    """The host's check at export time: an encoder's per-output cosines sit under "outputs"."""
    accuracy = manifest.accuracy or {}
    return _accuracy(accuracy.get("outputs", accuracy))


def read_trace(path: Path) -> tuple[list[float], list[float]] | None:
    with open(path, newline="") as handle:
        rows = [(float(r["t"]), float(r["total_w"])) for r in csv.DictReader(handle) if r.get("total_w")]
    return ([t for t, _ in rows], [w for _, w in rows]) if len(rows) > 1 else None


def _json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ArtifactError(f"{path}: a JSON object is expected")
    return document
