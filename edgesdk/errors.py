"""One exception root. Each subclass carries the CLI exit code, so the CLI never shows a traceback
for a user mistake: it prints the message and exits with the code."""


class EdgeSDKError(Exception):
    exit_code = 1


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
