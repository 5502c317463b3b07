"""Targets are data: one YAML file per board or platform in targets/ (or $EDGESDK_TARGETS).

Adding a board is adding a file; the code reads the fields below and nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    arch: Literal["native", "x86_64", "aarch64", "armv7l", "cortex-m"] = "native"
    cpu: str = ""
    exporter: Literal["onnxruntime", "tflite", "coreml", "tvm-c"] = "onnxruntime"
    default_recipe: str = "int8"
    runner: str = "ort"
    # ORT contrib kernels (MatMulIntegerToFloat, MatMulNBits, GatherBlockQuantized) are in every ORT
    # CPU build; a target whose runtime lacks them sets this false and gets plain QDQ.
    ort_contrib_ops: bool = True
    # ORT 1.31's SkipLayerNormalization CPU kernel is slower than Add + LayerNormalization; a target
    # whose ORT build has a faster one sets this true (see the fp32 rows of benchmarks/minilm_recipes.py).
    ort_skip_layernorm_fusion: bool = False
    # MatMulNBits compute precision for int4 weights: 4 = int8 activations (faster), 0 = float.
    ort_nbits_accuracy_level: Literal[0, 1, 2, 3, 4] = 4
    threads: int = Field(default=0, ge=0, description="intra-op threads on the device; 0 = runtime default")
    cflags: list[str] = []
    power_sensor: str = "none"
    install: str = "python3 -m pip install onnxruntime numpy"


def targets_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGESDK_TARGETS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "targets")
    dirs.append(Path(__file__).resolve().parent / "_targets")  # installed wheel layout (pyproject package-dir)
    return [d for d in dirs if d.is_dir()]


def available_targets() -> list[str]:
    return sorted({p.stem for d in targets_dirs() for p in d.glob("*.yaml")})


def load_target(name: str) -> Target:
    import yaml

    for directory in targets_dirs():
        path = directory / f"{name}.yaml"
        if path.exists():
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise UsageError(f"{path}: not valid YAML: {exc}") from None
            data.setdefault("name", name)
            try:
                return Target(**data)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise UsageError(f"{path}: {problems}") from None
    raise UsageError(f"unknown target '{name}' (known: {', '.join(available_targets()) or 'none'})")
