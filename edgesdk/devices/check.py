"""`edgesdk devices check`: reachability, host key, arch, python, runtimes and power sensor of one device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends import get_backend
from ..errors import DeviceAuthError, DeviceConnectionError, EdgeSDKError, HostKeyError
from . import facts as device_facts
from .api import DeviceSession
from .inventory import Device


def _check_power(session: DeviceSession) -> dict[str, Any] | None:
    """One reading of the device's power sensor (None when it has none configured)."""
    import tempfile

    from ..power.session import PowerSampling, power_config

    config = power_config(session.device, session.target)
    if config.sensor == "none":
        return None
    with tempfile.TemporaryDirectory(prefix="edgesdk-check-") as tmp:
        sampling = PowerSampling(session.transport, config, session.device.interpreter,
                                 session.transport.path(session.device.workdir), Path(tmp))
        try:
            sampling.prepare()  # pushes the sampler, finds the sensor files, parses one reading
        except EdgeSDKError as exc:
            return {"sensor": config.sensor, "ok": False, "error": str(exc)}
    return {"sensor": config.sensor, "ok": True}


def check_device(device: Device) -> dict[str, Any]:
    """Reachability, host key, arch, python and runtimes of one device; never raises for device problems."""
    report: dict[str, Any] = {"device": device.name, "target": device.target, "transport": device.transport,
                              "address": device.address, "ok": False}
    try:
        with DeviceSession.open(device) as session:
            facts = session.facts
            report.update(reachable=True, host_key="ok" if device.transport == "ssh" else "n/a",
                          connect_s=round(session.phases["connect"], 3), arch=facts.arch, cpu=facts.cpu,
                          cores=facts.cores, kernel=facts.kernel, os=facts.os, python=facts.python,
                          python_executable=facts.python_executable, runtimes=facts.runtimes)
            backend = get_backend(session.target.backend)
            missing = device_facts.missing_runtimes(facts, backend)
            if missing:
                report["error"] = (f"missing {' and '.join(missing)}; install with: "
                                   f"{device_facts.install_command(session.target, device.interpreter)}")
            else:
                report["ok"] = True
            power = _check_power(session)
            if power is not None:
                report["power"] = power
                report["ok"] = report["ok"] and power["ok"]
    except (HostKeyError, DeviceAuthError) as exc:  # the port answered; the key exchange or login did not
        report.update(reachable=True, host_key="ok" if isinstance(exc, DeviceAuthError) else "refused", error=str(exc))
    except DeviceConnectionError as exc:
        report.update(reachable=False, error=str(exc))
    except EdgeSDKError as exc:
        report["error"] = str(exc)
    return report
