"""One exception root. Each subclass carries the CLI exit code, so the CLI never shows a traceback
for a user mistake: it prints the message and exits with the code."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's multi-line error in a one-line message)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(text: str) -> str:
    """``text`` safe for one terminal line: control characters (a newline or an escape sequence in a device
    name, a YAML key or a manifest value) shown escaped, never acted on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class EdgeSDKError(Exception):
    """``detail``: lines shown under the message (a compiler's first errors)."""

    exit_code = 1

    def __init__(self, *args, detail: str = ""):
        super().__init__(*args)
        self.detail = detail


class UsageError(EdgeSDKError):
    """A wrong option value: unknown recipe, unknown target, bad group size."""

    exit_code = 2


class ModelError(EdgeSDKError):
    """The model file cannot be read, is not ONNX, or uses something we cannot handle."""

    exit_code = 3


class UnsupportedOperatorError(ModelError):
    def __init__(self, op_type: str, node_name: str, domain: str = "", detail: str = ""):
        where = f"{domain}::{op_type}" if domain else op_type
        msg = f"unsupported operator {where} at node '{node_name}'"
        super().__init__(msg + (f": {detail}" if detail else ""))
        self.op_type, self.node_name, self.domain = op_type, node_name, domain


class CalibrationError(EdgeSDKError):
    """Calibration or evaluation data that does not fit the model's inputs."""

    exit_code = 4


class ArtifactError(EdgeSDKError):
    """An artifact directory that is missing files, has a bad manifest, or fails its checksums."""

    exit_code = 5


class MissingDependencyError(EdgeSDKError):
    """An optional framework is not installed; the message names the pip extra."""

    exit_code = 6

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed: "
            f"pip install 'edgesdk[{extra}]'"
        )


class DeviceError(EdgeSDKError):
    """A device that cannot be reached, refuses us, or fails to run an artifact."""

    exit_code = 7


class InventoryError(DeviceError):
    """devices.yaml is missing, not valid YAML, or has a wrong key or value (the message names the line)."""

    exit_code = 2


class DeviceConnectionError(DeviceError):
    """The device is unreachable: closed port, no route, timeout, connection lost."""


class HostKeyError(DeviceConnectionError):
    """The device's host key is unknown (under strict) or differs from known_hosts."""

    exit_code = 8


class DeviceAuthError(DeviceConnectionError):
    """The device refused our key (or we have no usable key)."""

    exit_code = 8


class DeviceTimeoutError(DeviceError):
    """A command on the device ran past its time limit (it was killed there too)."""


class MissingRuntimeError(DeviceError):
    """The device lacks the runtime an artifact needs; the message holds the install command."""


class UploadError(DeviceError):
    """A file pushed to the device did not arrive intact."""


class RunnerError(DeviceError):
    """The on-device runner failed or printed something that is not its JSON document."""


class PowerError(DeviceError):
    """A power sensor that is not configured, not found on the device, or whose output cannot be read."""


class EmulatorError(EdgeSDKError):
    """An emulated board that cannot be built or started: not root, a tool missing, its root file system broken."""

    exit_code = 9


class DeviceBusyError(DeviceError):
    """Another pipeline holds the device's lock (the message names it)."""

    exit_code = 10


class RegressionError(EdgeSDKError):
    """`runs compare --fail-on-regression`: a run got worse than the threshold allows (the message says what)."""

    exit_code = 11
