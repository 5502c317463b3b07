"""The on-device runner, host side: render a runner template, build the command line of a backend's runner
(edgesdk/backends/base.py DeviceRunner), parse the one JSON document it prints, and turn its raw latencies
and outputs into statistics and accuracy.

The runner protocol, for Python templates and compiled programs alike: flags --artifact DIR --outputs FILE
--runs N --warmup N --threads N --budget S; progress lines 'edgesdk-progress PHASE DONE TOTAL' on stderr; one
JSON document on stdout {protocol, ok, latencies_ms, warmup, peak_rss_mb, outputs, runtime, clock, phases_s}
or {protocol, ok: false, error: {kind, message}}; the reference outputs saved to FILE as s<i>_o<j> arrays."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, MissingRuntimeError, RunnerError

PROTOCOL = 1
PROGRESS_MARK = "edgesdk-progress "


def templates_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # the repository's templates/, or edgesdk/_templates in an installed wheel (pyproject package-dir)
    return [d for d in (here.parent.parent / "templates", here.parent / "_templates") if d.is_dir()]


def render_template(template_name: str, **values) -> str:
    """A device-side program from templates/ (runners, the power sampler), with the edgesdk version filled in."""
    import jinja2

    from ..about import version

    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in templates_dirs()]),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound:
        raise ArtifactError(f"runner template {template_name} not found in {templates_dirs()}") from None
    return template.render(edgesdk_version=version(), **values)


def render(template_name: str, target) -> str:
    """A runner program for a target (its threads baked in as the default)."""
    return render_template(template_name, target=target.name, threads=int(target.threads), protocol=PROTOCOL)


def runner_argv(command: tuple[str, ...], python: str, runner_dir: str, artifact_dir: str, outputs: str, runs: int,
                warmup: int, threads: int, budget_s: float | None) -> list[str]:
    """A backend runner's command with its placeholders filled in, then the protocol's flags."""
    argv = [part.replace("{python}", python).replace("{dir}", runner_dir) for part in command]
    return argv + ["--artifact", artifact_dir, "--outputs", outputs, "--runs", str(runs), "--warmup", str(warmup),
                   "--threads", str(threads), "--budget", str(budget_s or 0)]


def parse_progress(line: str) -> tuple[str, int, int] | None:
    """'edgesdk-progress run 5 100' -> ('run', 5, 100); anything else -> None."""
    if not line.startswith(PROGRESS_MARK):
        return None
    parts = line[len(PROGRESS_MARK):].split()
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def parse_output(stdout: str, stderr: str, exit_code: int) -> dict[str, Any]:
    """The runner's JSON document (its last line starting with '{'); a runner error as RunnerError."""
    document = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    if document is None:
        tail = " | ".join((stderr.strip() or stdout.strip() or f"exit {exit_code}").splitlines()[-3:])
        raise RunnerError(f"the runner printed no result (exit {exit_code}): {tail}")
    if document.get("protocol") != PROTOCOL:
        raise RunnerError(f"runner protocol {document.get('protocol')} is not {PROTOCOL} (stale runner on the device?)")
    if not document.get("ok"):
        error = document.get("error") or {}
        kind, message = error.get("kind", "error"), error.get("message", "")
        if kind == "missing-runtime":
            raise MissingRuntimeError(f"the runner cannot import {error.get('module') or 'its runtime'}: {message}")
        raise RunnerError(f"the runner failed ({kind}): {message}")
    if exit_code != 0:
        raise RunnerError(f"the runner exited with {exit_code} after printing a result")
    latencies = document.get("latencies_ms")
    if not isinstance(latencies, list) or not latencies or not all(isinstance(x, (int, float)) for x in latencies):
        raise RunnerError("the runner's result has no latencies")
    return document


@dataclass
class LatencyStats:
    """Milliseconds. Percentiles interpolate linearly between samples (numpy's default)."""

    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> LatencyStats:
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(n=int(values.size), mean=float(values.mean()), std=float(values.std()), min=float(values.min()),
                   p50=float(p50), p90=float(p90), p99=float(p99), max=float(values.max()))

    @property
    def p50_ms(self) -> float:
        return self.p50

    @property
    def p90_ms(self) -> float:
        return self.p90

    @property
    def p99_ms(self) -> float:
        return self.p99

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def read_outputs(npz_path: Path, output_names: list[str], samples: int) -> list[dict[str, np.ndarray]]:
    """The device's reference outputs (keys s<i>_o<j>) as one {output name: array} per sample."""
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            return [{name: npz[f"s{i}_o{j}"] for j, name in enumerate(output_names)} for i in range(samples)]
    except (KeyError, ValueError, OSError) as exc:
        raise RunnerError(f"the device's outputs file is incomplete: {exc}") from None
