"""Power sampling around one profile run, host side.

    sampling = PowerSampling(transport, config, python, workdir, run_dir)
    sampling.prepare()            # push the sampler, find the sensor, take one reading: fail before the run
    sampling.start(max_s)         # sampler in the background on the device (a thread holds its command)
    sampling.wait_idle()          # the idle baseline
    try: <run the runner>
    finally: sampling.stop()      # stop file, then TERM, then KILL: it never outlives the run
    result = sampling.finish(clock, runs, latencies_ms)   # fetch the trace, parse, integrate, plot

The sampler is also bounded on the device: it stops by itself after max_s, when the host stops reading its
heartbeats (connection gone), and the transport's `timeout` wrapper kills its process group past max_s."""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import DeviceError, DeviceTimeoutError, EdgeSDKError, PowerError
from .analysis import PowerResult, load_trace, series_csv, summarize
from .config import PowerConfig
from .sensors import SENSORS, SamplerPlan, Snapshot, get_sensor

TEMPLATE = "power_sampler.py.j2"
PROTOCOL = 1
MARK = "edgesdk-power "
START_TIMEOUT_S = 15.0
RAW_TRACE, PARSED_TRACE, PLOT = "power_trace.jsonl", "power_trace.csv", "power.png"


def render_sampler() -> str:
    from ..devices.runner import render_template

    return render_template(TEMPLATE, protocol=PROTOCOL)


def power_config(device: Any, target: Any = None) -> PowerConfig:
    """The device's `power:` block, else its target's default sensor (targets/*.yaml `power_sensor`)."""
    config = getattr(device, "power", None)
    if config is not None:
        return config
    return PowerConfig(sensor=getattr(target, "power_sensor", None) or "none")


def require_sensor(config: PowerConfig, device_name: str) -> None:
    if config.enabled:
        return
    kinds = ", ".join(f"{name} ({cls.summary})" for name, cls in SENSORS.items() if name != "none")
    raise PowerError(
        f"device '{device_name}' has no power sensor (power: {{sensor: none}}), so --power cannot measure it. "
        f"Add a power block to its entry in devices.yaml, e.g. `power: {{sensor: tegrastats}}` on a Jetson, "
        f"`power: {{sensor: rpi5-pmic}}` on a Raspberry Pi 5, or an external meter: "
        f"`power: {{sensor: command, command: \"my-meter --once\", unit: W}}`. Sensors: {kinds}"
    )


class PowerSampling:
    def __init__(self, transport, config: PowerConfig, python: str, workdir: str, run_dir: Path):
        self.transport, self.config, self.python = transport, config, python
        self.device = transport.device.name
        self.run_dir = Path(run_dir)
        self.sensor = get_sensor(config)
        tag = f"{self.run_dir.name}-{time.time_ns() % 10**9}"
        self.workdir = workdir
        self.remote_dir = posixpath.join(workdir, "power")
        self.remote_trace = posixpath.join(self.remote_dir, f"trace-{tag}.jsonl")
        self.remote_stop = posixpath.join(self.remote_dir, f"stop-{tag}")
        self.remote_sampler = ""
        self.plan: SamplerPlan | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._pid: int | None = None
        self._said: deque[str] = deque(maxlen=20)
        self._outcome: Any = None  # the sampler's Completed, or the exception its command raised
        self._began, self._limit = 0.0, 0.0
        self._stopped_by_us = False

    # -- before the run ------------------------------------------------------------------------------
    def prepare(self) -> None:
        require_sensor(self.config, self.device)
        from ..devices.upload import FileToPush, push

        script = render_sampler()
        local = self.run_dir / "power_sampler.py"
        local.write_text(script)
        digest = hashlib.sha256(script.encode()).hexdigest()
        name = f"power/power_sampler-{digest[:16]}.py"
        self.remote_sampler = posixpath.join(self.workdir, name)
        push(self.transport, self.python, self.workdir, [FileToPush(local, name, digest, local.stat().st_size)])
        try:
            self.plan = self.sensor.plan(self._snapshot)
        except PowerError as exc:
            raise PowerError(f"device '{self.device}', power sensor '{self.config.sensor}': {exc}") from None
        if self.plan.mode != "files" and not self.plan.argv:
            raise PowerError(f"device '{self.device}': power sensor '{self.config.sensor}' has no command to run")
        probe = self._sampler_json(["--probe", json.dumps(self._spec())], "reading the power sensor once", allow_fail=True)
        if "error" in probe:
            raise PowerError(f"device '{self.device}', power sensor '{self.config.sensor}': {probe['error']}")
        try:  # the one reading must parse, or the whole run would be wasted
            if self.sensor.kind != "rapl":
                self.sensor.reading(self.plan, probe["raw"])
        except PowerError as exc:
            raise PowerError(f"device '{self.device}', power sensor '{self.config.sensor}': {exc}") from None

    def _spec(self, **extra: Any) -> dict[str, Any]:
        return {**self.plan.spec(), "rate_hz": self.config.rate_hz, **extra}

    def _snapshot(self, patterns: list[str]) -> Snapshot:
        found = self._sampler_json(["--snapshot", *patterns], "listing sensor files")
        return Snapshot(found.get("files", {}), found.get("errors", {}))

    def _sampler_json(self, args: list[str], doing: str, allow_fail: bool = False) -> dict[str, Any]:
        done = self.transport.run([self.python, self.remote_sampler, *args], timeout=30)
        lines = done.stdout.strip().splitlines()
        if lines and lines[-1].startswith("{") and (done.ok or allow_fail):
            return json.loads(lines[-1])
        detail = (done.stderr.strip().splitlines() or [f"exit {done.exit_code}"])[-1]
        raise PowerError(f"device '{self.device}': {doing} failed: {detail}")

    # -- around the run ------------------------------------------------------------------------------
    def start(self, max_s: float) -> None:
        """Start the sampler and return once it has taken its first sample."""
        spec = self._spec(trace=self.remote_trace, stop_file=self.remote_stop, max_s=max_s)
        argv = [self.python, self.remote_sampler, "--run", json.dumps(spec)]
        self._began, self._limit = time.monotonic(), max_s
        self._thread = threading.Thread(target=self._hold, args=(argv, max_s + 30), name="power-sampler", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._started.is_set():
            if not self._thread.is_alive():
                raise PowerError(f"device '{self.device}': the power sampler did not start: {self._why()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PowerError(f"device '{self.device}': the power sampler took no sample within {START_TIMEOUT_S:g} s")
            self._started.wait(0.02)

    def _hold(self, argv: list[str], timeout: float) -> None:
        try:
            self._outcome = self.transport.run(argv, timeout=timeout, on_stderr_line=self._heard)
        except BaseException as exc:  # reported by finish(); the run itself goes on
            self._outcome = exc

    def _heard(self, line: str) -> None:
        if line.startswith(MARK):
            words = line[len(MARK):].split()
            if words[:1] == ["pid"] and len(words) > 1 and words[1].isdigit():
                self._pid = int(words[1])
            elif words[:1] == ["started"]:
                self._started.set()
            return
        if line.strip():
            self._said.append(line.strip())

    def wait_idle(self) -> None:
        time.sleep(self.config.idle_s)

    def stop(self) -> None:
        """Stop the sampler: a stop file, then SIGTERM, then SIGKILL. Safe to call twice, never raises."""
        if self._thread is None or not self._thread.is_alive():
            return
        # A few more samples after the runner's end, so the trace covers its window to the last millisecond
        # (RAPL's power points sit between two counter reads, half an interval before the last one).
        time.sleep(3 * self.config.interval_s)
        self._stopped_by_us = True
        steps = [self._touch_stop_file, lambda: self._signal("TERM"), lambda: self._signal("KILL")]
        for step in steps:
            try:
                step()
            except EdgeSDKError:
                pass
            self._thread.join(2.0 + 3 * self.config.interval_s)
            if not self._thread.is_alive():
                return

    def _touch_stop_file(self) -> None:
        with tempfile.NamedTemporaryFile(prefix="edgesdk-stop-") as empty:
            self.transport.put(Path(empty.name), self.remote_stop)

    def _signal(self, name: str) -> None:
        if self._pid is not None:
            self.transport.run(["kill", f"-{name}", str(self._pid)], timeout=10)

    # -- after the run -------------------------------------------------------------------------------
    def finish(self, clock: dict[str, float], runs: int, latencies_ms: list[float] | None = None) -> PowerResult:
        """Fetch and save the trace, then the numbers for the timed window. PowerError when the trace
        cannot give them (a sampler that died early); the caller keeps its latency results either way."""
        self.stop()
        missing = [k for k in ("started", "timed_start", "timed_end") if k not in (clock or {})]
        if missing:
            raise PowerError(f"device '{self.device}': the runner reported no {', '.join(missing)} time (an older runner?)")
        raw_path = self.run_dir / RAW_TRACE
        try:
            self.transport.get(self.remote_trace, raw_path)
        except DeviceError as exc:
            raise PowerError(f"device '{self.device}': no power trace to fetch ({exc}); sampler: {self._why()}") from None
        finally:
            for remote in (self.remote_trace, self.remote_stop):
                try:
                    self.transport.remove(remote)
                except EdgeSDKError:
                    pass
        trace = load_trace(raw_path.read_text())
        crashed = self._crash()
        try:
            series = self.sensor.series(self.plan, trace.samples)
            started, window = float(clock["started"]), (float(clock["timed_start"]), float(clock["timed_end"]))
            # The baseline: idle_s from the first sample. The host waited that long after the first sample
            # before it launched the runner, so no runner start-up (interpreter, imports) falls inside.
            first = float(series.t[0])
            idle = (first, min(first + self.config.idle_s, started - self.config.interval_s)) if self.config.idle_s > 0 else None
            result = summarize(series, self.config.sensor, idle, window, runs, self.config.subtract_idle)
        except PowerError as exc:
            raise PowerError(f"device '{self.device}': {exc}" + (f"; {crashed}" if crashed else "")) from None
        if crashed:
            result.notes.append(crashed)
        if trace.errors:
            result.notes.append(f"{len(trace.errors)} failed reading(s), e.g. {trace.errors[0]}")
        (self.run_dir / PARSED_TRACE).write_text(series_csv(series))
        result.files = {"raw_trace": RAW_TRACE, "trace": PARSED_TRACE}
        try:
            from .plot import plot_power

            plot_power(self.run_dir / PLOT, series, idle, window, latencies_ms, result)
            result.files["plot"] = PLOT
        except EdgeSDKError as exc:  # matplotlib missing: the numbers stand without the picture
            result.notes.append(str(exc))
        return result

    def _crash(self) -> str | None:
        """A description of how the sampler ended, when that was not our stop."""
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            return f"the power sampler stopped early: {self._why()}"
        if outcome is not None and outcome.exit_code != 0:
            return f"the power sampler stopped early: {self._why()}"
        return None

    def _why(self) -> str:
        outcome = self._outcome
        said = " | ".join(list(self._said)[-3:])
        if isinstance(outcome, DeviceTimeoutError) and time.monotonic() - self._began < self._limit:
            # `timeout` reports a KILLed child as its own exit 137, which the transport reads as a time-out.
            return "killed on the device (SIGKILL)" + (f": {said}" if said else "")
        if isinstance(outcome, BaseException):
            return f"{type(outcome).__name__}: {outcome}" + (f" ({said})" if said else "")
        if outcome is None:
            return said or "no output"
        code = outcome.exit_code
        how = f"killed by signal {code - 128}" if code > 128 else (f"killed by signal {-code}" if code < 0 else f"exit {code}")
        return f"{how}" + (f": {said}" if said else "")
