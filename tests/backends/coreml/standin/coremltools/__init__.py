"""A stand-in for coremltools on a Linux test device, with the predict API the Core ML runner uses on a Mac:
``ComputeUnit``, ``models.MLModel(path, compute_units)`` with ``predict`` and ``get_compiled_model_path``,
``models.CompiledMLModel(path, compute_units)``, each with ``function_name`` (a multifunction package's).

Its predictions are real numbers: a worker process (this interpreter without the stand-in on its path, so the
real coremltools Linux wheel and edgesdk import there) runs the package's MIL program with edgesdk's numpy
evaluator. What the stand-in cannot give is Core ML's own kernels: the test of the runner is of the protocol,
upload, compiled-model cache, timeout handling and parsing, as a real Mac takes the same path."""

from __future__ import annotations

import enum
import io
import os
import struct
import subprocess
import sys
import tempfile

__version__ = "9.0-standin"

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORKER = r"""
import io, struct, sys
import numpy as np
from edgesdk.backends.coreml.evaluate import Program
program = Program(sys.argv[1], sys.argv[2] or None)
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = stdin.read(8)
    if len(head) < 8:
        break
    feed = dict(np.load(io.BytesIO(stdin.read(struct.unpack("<Q", head)[0]))))
    out = io.BytesIO()
    np.savez(out, **program.run(feed))
    stdout.write(struct.pack("<Q", len(out.getvalue())) + out.getvalue())
    stdout.flush()
"""


class ComputeUnit(enum.Enum):
    CPU_ONLY = 1
    CPU_AND_GPU = 2
    ALL = 3
    CPU_AND_NE = 4


class _Model:
    def __init__(self, package: str, compute_units: ComputeUnit = ComputeUnit.ALL, function_name: str | None = None):
        if not os.path.isfile(os.path.join(package, "Manifest.json")):
            raise RuntimeError(f"not a Core ML package: {package}")
        self.package, self.compute_units = package, compute_units
        path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != _HERE]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        self._worker = subprocess.Popen([sys.executable, "-c", _WORKER, package, function_name or ""], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)

    def predict(self, data: dict) -> dict:
        import numpy as np

        delay = float(os.environ.get("COREML_STANDIN_PREDICT_S", "0"))  # a model that hangs, for the timeout test
        if delay:
            import time

            time.sleep(delay)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in data.items()})
        self._worker.stdin.write(struct.pack("<Q", len(buffer.getvalue())) + buffer.getvalue())
        self._worker.stdin.flush()
        head = self._worker.stdout.read(8)
        if len(head) < 8:
            raise RuntimeError("the stand-in's evaluator exited")
        return dict(np.load(io.BytesIO(self._worker.stdout.read(struct.unpack("<Q", head)[0]))))


class _Models:
    class MLModel(_Model):
        def get_compiled_model_path(self) -> str:
            compiled = tempfile.mkdtemp(suffix=".mlmodelc")
            with open(os.path.join(compiled, "package"), "w") as handle:  # where the "compiled" model came from
                handle.write(os.path.abspath(self.package))
            return compiled

    class CompiledMLModel(_Model):
        def __init__(self, path: str, compute_units: ComputeUnit = ComputeUnit.ALL, function_name: str | None = None):
            with open(os.path.join(path, "package")) as handle:
                super().__init__(handle.read(), compute_units, function_name)


models = _Models
