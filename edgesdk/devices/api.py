"""profile and deploy: the device half of the Python API (the CLI calls these; `devices check` is check.py).

    result = edgesdk.profile("out/minilm", device="pi-lab", runs=200)
    result = edgesdk.deploy("model.onnx", target="rpi4", calibration="calib.npz")
    assert result.latency.p90_ms < 25 and result.cosine > 0.995

A profile: connect -> device facts (runtime present?) -> push artifact + runner (sha256-checked,
skipped when already there) -> run the runner -> fetch its reference outputs -> accuracy against the
float reference. Every step's result is written to the run directory as it arrives."""

from __future__ import annotations

import hashlib
import posixpath
import time
from pathlib import Path
from typing import Any

from .. import progress
from ..artifact import MANIFEST, Artifact, inside, sha256_file
from ..backends import backend_for_artifact, get_backend
from ..backends.base import DeviceRunner
from ..errors import EdgeSDKError, UsageError
from ..metrics import compare
from ..runs import Run, RunStore
from ..targets import Target, load_target
from . import facts as device_facts
from . import lm as device_lm
from . import runner as device_runner
from .inventory import Device, Inventory, load_inventory
from .lock import DeviceLock
from .result import ProfileResult
from .transport import Transport, open_transport
from .upload import FileToPush, push

DEFAULT_TIMEOUT_S = 900.0


class DeviceSession:
    """An open transport to one device plus its facts; several profiles can share one."""

    def __init__(self, device: Device, transport: Transport, facts: device_facts.DeviceFacts, phases: dict[str, float],
                 target: Target | None = None):
        self.device, self.transport, self.facts, self.phases = device, transport, facts, phases
        self.target = target or load_target(device.target)  # deploy's target: another runtime on the same board

    @classmethod
    def open(cls, device: Device, target: Target | None = None) -> DeviceSession:
        phases: dict[str, float] = {}
        start = time.perf_counter()
        with progress.step(f"connecting to {device.name} ({device.address})"):
            transport = open_transport(device)
        phases["connect"] = time.perf_counter() - start
        try:
            start = time.perf_counter()
            facts = device_facts.gather(transport, device.interpreter)
            phases["facts"] = time.perf_counter() - start
        except BaseException:
            transport.close()
            raise
        return cls(device, transport, facts, phases, target)

    def require(self, backend) -> None:
        """Refuse (with the install command) when the device lacks what ``backend``'s runner imports."""
        device_facts.require_runtime(self.facts, backend, self.target, self.device.name, self.device.interpreter)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_device(device: str | Device | None, devices: str | Path | Inventory | None = None,
                   target: str | None = None) -> Device:
    if isinstance(device, Device):
        return device
    inventory = devices if isinstance(devices, Inventory) else load_inventory(devices)
    if device:
        return inventory.get(device)
    return inventory.for_target(target or "host")


def profile(
    artifact: str | Path | Artifact,
    device: str | Device = "local",
    runs: int = 100,
    warmup: int = 10,
    budget_s: float | None = None,
    devices: str | Path | Inventory | None = None,
    runs_dir: str | Path | None = None,
    timeout_s: float | None = None,
    session: DeviceSession | None = None,
    power: bool = False,
    prompt: str | list[int] | None = None,
    threads: int | None = None,
    cross: bool = False,
    wait: float | None = None,
) -> ProfileResult:
    """Run an artifact on a device: latency of ``runs`` timed iterations (after ``warmup``), peak RSS,
    and on-device accuracy on the artifact's reference inputs. ``budget_s`` stops the timed runs early.
    ``power``: sample the device's power sensor (its `power:` in devices.yaml) during the runs.

    An LM artifact: the prompt (``prompt``: text or token ids; else the start of its reference text) is prefilled, then
    ``runs`` tokens are decoded one call each with the KV cache; a decode step is the timed iteration, so
    energy per inference is energy per token. ``threads`` overrides the target's runtime threads. ``cross``: a
    compiled backend pushes the program it builds on this host instead of building it on the device. The device is
    locked for the run (devices/lock.py): held by another pipeline, it is refused, or waited for ``wait`` seconds."""
    if runs < 1 or warmup < 0:
        raise UsageError(f"--runs must be >= 1 and --warmup >= 0 (got {runs} and {warmup})")
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    backend = backend_for_artifact(art.manifest)
    dev = session.device if session else resolve_device(device, devices)
    backend.check_deployable(load_target(dev.target))  # refused before anything connects
    if cross:
        backend.check_cross(load_target(dev.target))
    if power:  # a device without a sensor is refused before anything connects
        from ..power.session import power_config, require_sensor

        require_sensor(power_config(dev, load_target(dev.target)), dev.name)
    # An LM's prompt is tokenized and checked against its context before anything connects.
    prompt_ids = device_lm.prompt_ids(art, prompt, runs) if art.manifest.language_model else None
    model = art.manifest.model.name or art.path.name
    recipe = art.manifest.recipe.name
    run = RunStore(runs_dir).start(dev.name, model, str(art.path), dev.target, recipe)
    own_session = session is None
    try:
        run.copy_in(art.path / MANIFEST, "manifest.json")
        if own_session:
            session = DeviceSession.open(dev)
        run.write_json("device.json", {"device": _device_record(dev), "facts": session.facts.to_json()})
        session.require(backend)
        start = time.perf_counter()
        with DeviceLock(session.transport, dev.interpreter, dev.workdir, wait_s=wait) as lock:
            session.phases["lock"] = time.perf_counter() - start
            if lock.broke_stale:
                run.write_json("stale_locks.json", lock.broke_stale)
            return _profile_on(session, art, backend, run, runs, warmup, budget_s, timeout_s, model, recipe, power,
                               prompt_ids, threads, cross)
    except BaseException as exc:
        run.fail(exc if isinstance(exc, (EdgeSDKError, KeyboardInterrupt)) else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own_session and session is not None:
            session.close()


def plan_files(art: Artifact, runner: DeviceRunner, run_dir: Path) -> tuple[list[FileToPush], str, str]:
    """What a profile pushes, named relative to the device's workdir: the runner's files in a folder named by
    their content, the artifact's device files (each with its manifest sha256) and manifest.json in a folder
    named by the manifest's hash. Returns (files, runner folder, artifact folder)."""
    local_runner = run_dir / "runner"
    local_runner.mkdir(parents=True, exist_ok=True)
    runner_dir = posixpath.join("runners", f"{runner.name}-{runner.digest[:16]}")
    files = []
    for name, content in runner.files.items():
        local = local_runner / name
        local.write_bytes(content)
        files.append(FileToPush(local, posixpath.join(runner_dir, name), hashlib.sha256(content).hexdigest(), len(content)))
    manifest_path = art.path / MANIFEST
    manifest_sha = sha256_file(manifest_path)
    artifact_dir = posixpath.join("artifacts", manifest_sha[:16])
    for name in art.manifest.device_files:  # names validated with the manifest; inside() checked them on load
        entry = art.manifest.files[name]
        files.append(FileToPush(inside(art.path, name), posixpath.join(artifact_dir, name), entry.sha256, entry.bytes))
    files.append(FileToPush(manifest_path, posixpath.join(artifact_dir, MANIFEST), manifest_sha,
                            manifest_path.stat().st_size))
    return files, runner_dir, artifact_dir


def _profile_on(session: DeviceSession, art: Artifact, backend, run: Run, runs: int, warmup: int,
                budget_s: float | None, timeout_s: float | None, model: str, recipe: str,
                power: bool = False, prompt_ids: list[int] | None = None, threads: int | None = None,
                cross: bool = False) -> ProfileResult:
    dev, transport = session.device, session.transport
    phases = {k: session.phases.get(k, 0.0) for k in ("connect", "facts", "lock")}
    python = dev.interpreter
    workdir = transport.path(dev.workdir)  # '~/x' as the device's commands and file calls both read it

    runner = backend.device_runner(session.target, art.manifest.backend_info, art.path, cross=cross)
    files, runner_dir, artifact_dir = plan_files(art, runner, run.dir)
    start = time.perf_counter()
    with progress.bar(f"uploading to {dev.name}", None, unit="bytes") as update:
        pushed = push(transport, python, workdir, files, progress=update)
    phases["upload"] = time.perf_counter() - start

    remote_outputs = posixpath.join(workdir, "outputs", f"{run.id}.npz")
    argv = device_runner.runner_argv(runner.argv, python, posixpath.join(workdir, runner_dir),
                                     posixpath.join(workdir, artifact_dir), remote_outputs, runs, warmup,
                                     threads or session.target.threads, budget_s)
    is_lm = prompt_ids is not None
    if is_lm:
        argv += device_lm.runner_flags(prompt_ids)
    timeout = timeout_s or (budget_s + DEFAULT_TIMEOUT_S if budget_s else DEFAULT_TIMEOUT_S)
    sampling = _start_power(session, run, workdir, timeout) if power else None
    try:
        start = time.perf_counter()
        with progress.bar(f"running on {dev.name}", warmup + runs) as update:
            def on_line(line: str) -> None:
                parsed = device_runner.parse_progress(line)
                if parsed:
                    phase, done, _ = parsed
                    update(done if phase == "warmup" else warmup + done)

            completed = transport.run(argv, timeout=timeout, on_stderr_line=on_line)
        phases["run"] = time.perf_counter() - start
    finally:
        if sampling is not None:  # never outlives the run, whatever ended it
            sampling.stop()
    document = device_runner.parse_output(completed.stdout, completed.stderr, completed.exit_code)
    run.write_json("latencies.json", {"warmup": document["warmup"], "latencies_ms": document["latencies_ms"]})
    phases.update({f"runner_{k}": v for k, v in (document.get("phases_s") or {}).items()})

    start = time.perf_counter()
    _, expected = art.reference()
    accuracy: dict[str, Any] = {}
    lm_figures = None
    if is_lm:
        local_outputs = run.dir / "outputs.npz"
        transport.get(remote_outputs, local_outputs)
        accuracy, lm_figures = device_lm.results(art, document, local_outputs)
    elif expected:
        local_outputs = run.dir / "outputs.npz"
        transport.get(remote_outputs, local_outputs)
        actual = device_runner.read_outputs(local_outputs, document["outputs"], len(expected))
        accuracy = compare(actual, expected)
    transport.remove(remote_outputs)
    phases["collect"] = time.perf_counter() - start
    power_result = _finish_power(sampling, document) if sampling is not None else None

    result = ProfileResult(
        run_id=run.id, run_dir=run.dir, device=dev.name, target=dev.target, artifact=str(art.path), model=model,
        recipe=recipe, latency=device_runner.LatencyStats.of(document["latencies_ms"]),
        latencies_ms=document["latencies_ms"], peak_rss_mb=float(document["peak_rss_mb"]), accuracy=accuracy,
        host_accuracy=(art.manifest.accuracy or {}).get("next_token" if is_lm else "outputs", {}), facts=session.facts,
        runtime=document.get("runtime", {}), upload=pushed, phases_s=phases, clock=document.get("clock") or {},
        power=power_result, lm=lm_figures, emulated=dev.emulated,
    )
    if lm_figures is not None and power_result and "energy_per_inference_mj" in power_result:
        lm_figures["energy_per_token_mj"] = power_result["energy_per_inference_mj"]
    run.finish(result.to_json())
    return result


def _start_power(session: DeviceSession, run: Run, workdir: str, timeout: float):
    """The power sampler, running, after its idle baseline (edgesdk/power/session.py)."""
    from ..power.session import PowerSampling, power_config

    config = power_config(session.device, session.target)
    sampling = PowerSampling(session.transport, config, session.device.interpreter, workdir, run.dir)
    with progress.step(f"starting the power sampler ({config.sensor}) on {session.device.name}"):
        sampling.prepare()
        sampling.start(max_s=timeout + config.idle_s + 60)
    try:
        with progress.step(f"idle power baseline ({config.idle_s:g} s)"):
            sampling.wait_idle()
    except BaseException:
        sampling.stop()
        raise
    return sampling


def _finish_power(sampling, document: dict[str, Any]) -> dict[str, Any]:
    """The power numbers; a sampler that failed mid-run costs the power figures, not the latency results."""
    from ..errors import PowerError

    try:
        return sampling.finish(document.get("clock") or {}, len(document["latencies_ms"]), document["latencies_ms"]).to_json()
    except PowerError as exc:
        return {"sensor": sampling.config.sensor, "error": str(exc)}


def _device_record(device: Device) -> dict[str, Any]:
    """The device's settings for the run record (the key's path is left out: records get shared)."""
    return device.model_dump(exclude={"key"}) | {"python": device.interpreter}


def deploy(
    model: Any,
    target: str | Target = "host",
    device: str | Device | None = None,
    recipe: str | None = None,
    calibration: Any = None,
    runs: int = 100,
    warmup: int = 10,
    out_dir: str | Path | None = None,
    reference_data: Any = None,
    devices: str | Path | Inventory | None = None,
    runs_dir: str | Path | None = None,
    budget_s: float | None = None,
    power: bool = False,
    cross: bool = False,
    threads: int | None = None,
    wait: float | None = None,
    **recipe_options: Any,
) -> ProfileResult:
    """Convert (load -> quantize -> export for ``target``) and profile on a device of that target: the
    named one, else the first of the target in the inventory (the local device for target 'host')."""
    from .. import api

    tgt = target if isinstance(target, Target) else load_target(target)
    dev = resolve_device(device, devices, tgt.name)
    if not tgt.runs_on(load_target(dev.target)):
        raise UsageError(f"device '{dev.name}' is a '{dev.target}' device, not '{tgt.name}' (nor the same board); "
                         "pick a device of that target or change --target")
    if runs < 1 or warmup < 0:
        raise UsageError(f"--runs must be >= 1 and --warmup >= 0 (got {runs} and {warmup})")
    # Reach the device (and find its runtime) before a conversion that may take minutes.
    if power:
        from ..power.session import power_config, require_sensor

        require_sensor(power_config(dev, tgt), dev.name)
    backend = get_backend(tgt.backend)
    recipe_name = recipe or tgt.default_recipe
    backend.check_recipe(recipe_name)
    backend.check_deployable(tgt)
    if cross:
        backend.check_cross(tgt)
    with DeviceSession.open(dev, tgt) as session:
        session.require(backend)
        graph = api.load(model)
        quantized = api.quantize(graph, recipe_name, calibration=calibration, **recipe_options)
        out = out_dir or Path("out") / f"{_plain(graph.name or 'model')}-{tgt.name}-{recipe_name}"
        artifact = api.export(quantized, tgt, out, reference_data=reference_data)
        return profile(artifact, runs=runs, warmup=warmup, budget_s=budget_s, runs_dir=runs_dir, session=session,
                       power=power, cross=cross, threads=threads, wait=wait)


def profile_fleet(artifact: str | Path | Artifact, devices: list[Device], **options: Any) -> list:
    """profile() on every device at once (devices/fleet.py): one outcome per device, failures included."""
    from .fleet import run_fleet

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    return run_fleet(devices, lambda device: profile(art, device=device, **options))


def deploy_fleet(model: Any, target: str | Target, devices: list[Device], recipe: str | None = None,
                 calibration: Any = None, out_dir: str | Path | None = None, reference_data: Any = None,
                 cross: bool = False, recipe_options: dict[str, Any] | None = None,
                 **profile_options: Any) -> tuple[Artifact, list]:
    """Convert once for ``target``, then profile on every device (each must run the target) at once."""
    from .. import api

    tgt = target if isinstance(target, Target) else load_target(target)
    for dev in devices:
        if not tgt.runs_on(load_target(dev.target)):
            raise UsageError(f"device '{dev.name}' is a '{dev.target}' device, not '{tgt.name}' (nor the same board)")
    backend = get_backend(tgt.backend)
    recipe_name = recipe or tgt.default_recipe
    backend.check_recipe(recipe_name)
    backend.check_deployable(tgt)
    if cross:
        backend.check_cross(tgt)
    graph = api.load(model)
    quantized = api.quantize(graph, recipe_name, calibration=calibration, **(recipe_options or {}))
    out = out_dir or Path("out") / f"{_plain(graph.name or 'model')}-{tgt.name}-{recipe_name}"
    artifact = api.export(quantized, tgt, out, reference_data=reference_data)
    return artifact, profile_fleet(artifact, devices, cross=cross, **profile_options)


def _plain(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"
