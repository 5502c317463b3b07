"""The ONNX Runtime backend: model.onnx runnable by plain onnxruntime, lowered to ORT's fused kernels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ... import progress
from ..base import Backend, DeviceModule, Exported, template_runner


class OrtOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ORT contrib kernels (MatMulIntegerToFloat, MatMulNBits, GatherBlockQuantized) are in every ORT CPU
    # build; a target whose runtime lacks them sets this false and gets plain QDQ.
    contrib_ops: bool = True
    # ORT 1.31's SkipLayerNormalization CPU kernel is slower than Add + LayerNormalization; a target whose
    # ORT build has a faster one sets this true (see the fp32 rows of benchmarks/minilm_recipes.py).
    skip_layernorm_fusion: bool = False
    # MatMulNBits compute precision for int4 weights: 4 = int8 activations (faster), 0 = float.
    nbits_accuracy_level: Literal[0, 1, 2, 3, 4] = 4


class OrtBackend(Backend):
    name: ClassVar[str] = "onnxruntime"
    format: ClassVar[str] = "onnx"
    runtime: ClassVar[str] = "onnxruntime"
    summary: ClassVar[str] = "ONNX Runtime (CPU), QDQ lowered to its fused int8/int4 kernels"
    file_suffixes: ClassVar[tuple[str, ...]] = (".onnx",)
    Options: ClassVar[type[BaseModel]] = OrtOptions
    device_modules: ClassVar[tuple[DeviceModule, ...]] = (DeviceModule("onnxruntime", "onnxruntime"),
                                                          DeviceModule("numpy", "numpy"))
    install: ClassVar[str] = "python3 -m pip install onnxruntime numpy"

    def lower(self, graph, options: OrtOptions):
        """A copy of ``graph`` in the form ORT runs fastest, and what was rewritten."""
        from .lowering import MS, lower_for_ort

        lowered = graph.clone()
        counts: dict[str, int] = {}
        # A recipe that keeps exact weights (gguf) asks for float activations against them.
        level = 0 if getattr(graph.recipe, "float_activations", False) else options.nbits_accuracy_level
        if options.contrib_ops:
            with progress.step("lowering to ONNX Runtime kernels"):
                counts = lower_for_ort(lowered.model.graph, options.skip_layernorm_fusion, level)
            if counts:
                lowered.model.opset_imports.setdefault(MS, 1)
        return lowered, counts

    def export(self, graph, target, out_dir: Path, feeds) -> Exported:
        lowered, counts = self.lower(graph, target.backend_options)
        path = lowered.save(out_dir / "model.onnx")
        weights = [f.name for f in out_dir.glob(f"{path.name}.data")]  # written beside it for large models
        return Exported("model.onnx", device_files=weights, info={"ort_kernels": counts})

    def host_runner(self, model_path: Path, info: dict[str, Any], threads: int | None = None, lean: bool = False):
        from ...runtime import ort_session, run

        # lean: no memory arena (buffers go back after each run; a 262k-vocabulary LM's check stays in budget)
        session = ort_session(Path(model_path), threads=threads, arena=not lean)
        return lambda feed: run(session, feed)

    def device_runner(self, target, info: dict[str, Any], artifact: Path | None = None, cross: bool = False):
        if cross:
            self.check_cross(target)
        return template_runner("ort", "ort_runner.py.j2", target)

    def describe(self, model_path: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
        from ...importers.onnx_file import load_onnx
        from .describe import describe_graph

        return describe_graph(load_onnx(model_path))

    def describe_lines(self, report: dict[str, Any]) -> list[str]:
        from .describe import report_lines

        return report_lines(report)

BACKEND = OrtBackend
