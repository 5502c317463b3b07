"""What one profile measured on a device: latency, memory, on-device accuracy, power, the device's facts; its
JSON is the run record's summary.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import facts as device_facts
from . import runner as device_runner
from .upload import PushResult


@dataclasses.dataclass
class ProfileResult:
    run_id: str
    run_dir: Path
    device: str
    target: str
    artifact: str
    model: str
    recipe: str
    latency: device_runner.LatencyStats
    latencies_ms: list[float]
    peak_rss_mb: float
    accuracy: dict[str, dict[str, float]]  # on-device outputs vs the float reference, per output
    host_accuracy: dict[str, dict[str, float]]  # the same check on the host at export time
    facts: device_facts.DeviceFacts
    runtime: dict[str, Any]
    upload: PushResult
    phases_s: dict[str, float]  # connect, facts, upload, run, collect (+ the runner's own breakdown)
    clock: dict[str, float] = dataclasses.field(default_factory=dict)  # device time.time(): started, timed_start/end
    power: dict[str, Any] | None = None  # with power=True: edgesdk.power's result JSON, or {"sensor", "error"}
    lm: dict[str, Any] | None = None  # an LM: time to first token, prefill/decode tokens/s, generated tokens
    emulated: bool = False  # an emulated board (qemu on the host): its timings are not the board's

    @property
    def cosine(self) -> float | None:
        """The worst mean cosine over outputs (None without reference data)."""
        from ..accuracy_figure import worst_cosine

        return worst_cosine(self.accuracy)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "device": self.device,
            "target": self.target,
            "emulated": self.emulated,
            "artifact": self.artifact,
            "model": self.model,
            "recipe": self.recipe,
            "latency_ms": self.latency.to_json(),
            "peak_rss_mb": self.peak_rss_mb,
            "accuracy": self.accuracy,
            "host_accuracy": self.host_accuracy,
            "device_facts": self.facts.to_json(),
            "runtime": self.runtime,
            "upload": dataclasses.asdict(self.upload),
            "phases_s": self.phases_s,
            "clock": self.clock,
            **({"power": self.power} if self.power is not None else {}),
            **({"lm": self.lm} if self.lm is not None else {}),
        }
