"""The TFLite backend: the quantized Graph lowered to TF ops, converted by TF's TFLite converter with the
graph's own int8 weights and ranges (convert.py, lowering.py, ops.py), run by LiteRT (interpreter.py on the
host, templates/litert_runner.py.j2 on the device, with tflite_runtime as a fallback there).

Recipes: fp32 -> float TFLite; int8-dynamic -> dynamic-range (int8 weights, hybrid kernels); int8 -> full
integer (every compute op int8, TFLITE_BUILTINS_INT8). int4 is refused: LiteRT has no path for the graph's
block-wise int4 weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ...errors import CalibrationError, UsageError
from ..base import Backend, DeviceModule, Exported, template_runner

MODE_FOR_RECIPE = {"fp32": "fp32", "int8-dynamic": "dynamic", "int8": "int8"}


class TFLiteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Full int8 only: int8 model inputs/outputs (quantized with their own scale/zero point) instead of float
    # ones; integer inputs such as token ids stay integer either way.
    int8_io: bool = False


class TFLiteBackend(Backend):
    name: ClassVar[str] = "tflite"
    format: ClassVar[str] = "tflite"
    runtime: ClassVar[str] = "litert"
    summary: ClassVar[str] = "TFLite flatbuffer (full int8 with the graph's own ranges), run by LiteRT"
    file_suffixes: ClassVar[tuple[str, ...]] = (".tflite",)
    Options: ClassVar[type[BaseModel]] = TFLiteOptions
    recipes: ClassVar[frozenset[str] | None] = frozenset(MODE_FOR_RECIPE)
    device_modules: ClassVar[tuple[DeviceModule, ...]] = (
        DeviceModule("ai_edge_litert", "ai-edge-litert", alternatives=(("tflite_runtime", "tflite-runtime"),)),
        DeviceModule("numpy", "numpy"),
    )
    install: ClassVar[str] = "python3 -m pip install ai-edge-litert numpy"

    @classmethod
    def check_recipe(cls, recipe: str) -> None:
        if recipe == "int4":
            from .convert import INT4_REFUSAL

            raise UsageError(f"recipe 'int4': {INT4_REFUSAL}")
        super().check_recipe(recipe)

    def export(self, graph, target, out_dir: Path, feeds) -> Exported:
        from .convert import convert

        recipe = graph.recipe.name if graph.recipe is not None else "fp32"  # api.export checked it
        if not feeds:
            raise CalibrationError("the tflite backend fixes the model's input shapes from sample inputs: give "
                                   "calibration or reference data (--calib or --reference)")
        options: TFLiteOptions = target.backend_options
        flatbuffer, io = convert(graph, MODE_FOR_RECIPE[recipe], feeds, int8_io=options.int8_io)
        (out_dir / "model.tflite").write_bytes(flatbuffer)
        # The file's shapes are static: the manifest records the ones it takes (those of the first sample).
        dtypes = {s.name: s.dtype for s in (graph.float_graph or graph).inputs}
        inputs = [{"name": name, "dtype": dtypes.get(name, str(value.dtype)), "shape": list(value.shape)}
                  for name, value in feeds[0].items()]
        return Exported("model.tflite", info={"io": io, "int8_io": options.int8_io}, inputs=inputs)

    def host_runner(self, model_path: Path, info: dict[str, Any], threads: int | None = None, lean: bool = False):
        from .interpreter import host_runner

        return host_runner(model_path, info["io"], threads)

    def device_runner(self, target, info: dict[str, Any], artifact: Path | None = None, cross: bool = False):
        if cross:
            self.check_cross(target)
        return template_runner("litert", "litert_runner.py.j2", target)

    def describe(self, model_path: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
        from .interpreter import describe

        return describe(model_path)

    def describe_lines(self, report: dict[str, Any]) -> list[str]:
        lines = []
        for kind in ("inputs", "outputs"):
            for s in report[kind]:
                q = s.get("quantization")
                quant = f" (scale {q['scale']:.6g}, zero point {q['zero_point']})" if q and "scale" in q else ""
                lines.append(f"  {kind[:-1]:6s} {s['name']}: {s['dtype']}{s['shape']}{quant}")
        lines.append("  operators: " + ", ".join(f"{op}×{n}" for op, n in
                                                 sorted(report["op_counts"].items(), key=lambda kv: -kv[1])))
        if report["fully_int8"]:
            lines.append("  fully int8: yes (every compute op reads and writes int8)")
        else:
            shown = ", ".join(report["not_int8"][:12]) + (" ..." if len(report["not_int8"]) > 12 else "")
            lines.append(f"  fully int8: no ({len(report['not_int8'])} compute ops touch float: {shown})")
        lines.append("  ops (index: op  inputs -> outputs):")
        for op in report["ops"]:
            lines.append(f"    {op['index']:4d}: {op['op']:<22s} {','.join(op['inputs'])} -> {','.join(op['outputs'])}")
        return lines


BACKEND = TFLiteBackend
