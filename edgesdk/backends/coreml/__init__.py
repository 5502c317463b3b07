"""The Core ML backend: the quantized Graph lowered with coremltools' MIL builder (lowering.py, ops.py) into
``model.mlpackage`` — fp32 or fp16 compute, the graph's own int8 per-channel weights (``int8-weights``,
``int8-dynamic``, ``int8``), its int4 per-block weights (``int4*``, iOS 18), and W8A8 with its own activation
ranges (``int8``, iOS 17). The input shapes are fixed from a sample, as Core ML models on the Neural Engine
take them.

Prediction runs only on macOS. On a Mac the host runner is coremltools' own predict; elsewhere it is
evaluate.py, which runs the package's MIL program op by op with numpy (so ``verify`` checks the package's
numbers on Linux too). The device runner (templates/coreml_runner.py.j2) runs on a Mac over SSH."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import CalibrationError, UsageError
from ..base import Backend, DeviceModule, Exported, template_runner
from .deployment import NEEDS, TARGETS

PACKAGE = "model.mlpackage"


class CoreMLOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The lowest OS the package loads on; unset: the lowest that expresses the recipe (fp32 and int8 per-channel
    # weights iOS16 / macOS 13, int8 activations iOS17 / macOS 14, per-block weights (int4, int8-weights) iOS18 /
    # macOS 15).
    deployment_target: Literal["iOS16", "iOS17", "iOS18"] | None = None
    # Compute precision of the float ops: float16 runs on the GPU and Neural Engine, float32 on the CPU and GPU.
    # Unset: float32 for the fp32 recipe (the float model as it is) and for causal LMs (their activations pass
    # float16's range), float16 for quantized encoders.
    compute_precision: Literal["float16", "float32"] | None = None
    # Which units Core ML may use on the Mac (MLComputeUnits).
    compute_units: Literal["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"] = "ALL"
    # Build the package only (an iOS target: no device runs it from here).
    build_only: bool = False
    # Causal LMs: tokens per call of the package's prefill function (a longer prompt takes several calls, the
    # tokens left over go through the decode function one by one).
    prefill_tokens: int = Field(default=32, ge=2, le=4096)


class CoreMLBackend(Backend):
    name: ClassVar[str] = "coreml"
    format: ClassVar[str] = "mlpackage"
    runtime: ClassVar[str] = "coreml"
    summary: ClassVar[str] = "Core ML .mlpackage (MIL program with the graph's own int8/int4 weights), run on macOS"
    file_suffixes: ClassVar[tuple[str, ...]] = (".mlpackage",)
    Options: ClassVar[type[BaseModel]] = CoreMLOptions
    recipes: ClassVar[frozenset[str] | None] = frozenset(NEEDS)
    device_modules: ClassVar[tuple[DeviceModule, ...]] = (DeviceModule("coremltools", "coremltools"),
                                                          DeviceModule("numpy", "numpy"))
    install: ClassVar[str] = "python3 -m pip install coremltools numpy"
    device_systems: ClassVar[tuple[str, ...]] = ("Darwin",)  # Core ML predicts only on macOS

    def export(self, graph, target, out_dir: Path, feeds) -> Exported:
        import numpy as np

        from .package import write_package

        options: CoreMLOptions = target.backend_options
        recipe = graph.recipe.name if graph.recipe is not None else "fp32"
        if not feeds and graph.lm is None:
            raise CalibrationError("the coreml backend fixes the model's input shapes from a sample input: give "
                                   "calibration or reference data (--calib or --reference)")
        info = write_package(graph, recipe, feeds[0] if feeds else {}, out_dir / PACKAGE, options)
        dtypes = {s.name: s.dtype for s in (graph.float_graph or graph).inputs}
        sample = feeds[0] if graph.lm is None else graph.lm.prefill_feed(np.zeros(info["lm"]["prefill_tokens"], np.int64))
        inputs = [{"name": name, "dtype": dtypes.get(name, str(value.dtype)), "shape": list(value.shape)}
                  for name, value in sample.items()]
        if graph.lm is not None:  # any number of tokens a call: whole prefill chunks, the rest decoded one by one
            inputs[0]["shape"][1] = "sequence"
        files = sorted(str(p.relative_to(out_dir)) for p in (out_dir / PACKAGE).rglob("*") if p.is_file())
        model_file = f"{PACKAGE}/Manifest.json"
        return Exported(model_file, device_files=[f for f in files if f != model_file], info=info, inputs=inputs)

    def host_runner(self, model_path: Path, info: dict[str, Any], threads: int | None = None, lean: bool = False):
        package = _package_dir(model_path)
        if platform.system() == "Darwin":
            from .predict import host_runner

            return host_runner(package, info)
        from .evaluate import host_runner

        return host_runner(package, info)

    @classmethod
    def check_deployable(cls, target) -> None:
        if target.backend_options.build_only:
            raise UsageError(f"target '{target.name}' builds Core ML packages only (options.build_only): no device "
                             f"runs them from here; deploy with --target macos-coreml to a Mac")

    def device_runner(self, target, info: dict[str, Any], artifact: Path | None = None, cross: bool = False):
        if cross:
            self.check_cross(target)
        self.check_deployable(target)
        return template_runner("coreml", "coreml_runner.py.j2", target)

    def describe(self, model_path: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
        from .describe import describe

        return describe(_package_dir(model_path))

    def describe_lines(self, report: dict[str, Any]) -> list[str]:
        from .describe import describe_lines

        return describe_lines(report)


def _package_dir(model_path: Path) -> Path:
    """The .mlpackage folder of an artifact's model file (its Manifest.json) or of the folder itself."""
    path = Path(model_path)
    while path.suffix != ".mlpackage" and path != path.parent:
        path = path.parent
    if path.suffix != ".mlpackage":
        raise UsageError(f"{model_path}: not inside an .mlpackage")
    return path


__all__ = ["BACKEND", "TARGETS"]

BACKEND = CoreMLBackend
