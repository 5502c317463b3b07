"""The per-op lowering registry: ``register`` an ONNX op type's lowering, ``lookup`` it (see ops.py).

Each op is registered with how its outputs are quantized in full-integer TFLite:
``compute``: the output gets its own range (observed on calibration data or pinned by the graph);
``same``: data movement, the output keeps its input's range (RESHAPE, TRANSPOSE, GATHER...);
``fixed``: TFLite fixes the output range (SOFTMAX 1/256, LOGISTIC 1/256, TANH 1/128);
``none``: no float output (shapes, comparisons, integer and boolean ops)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

QUANT_KINDS = ("compute", "same", "fixed", "none")
EDGESDK_DOMAIN = "edgesdk.tflite"  # ops made by fusions.fuse() from multi-node patterns


@dataclasses.dataclass(frozen=True)
class Lowering:
    fn: Callable[..., Any]
    quant: str  # one of QUANT_KINDS
    grouped: bool = False  # takes and returns Grouped values (int8 channel groups, see Grouped)


LOWERINGS: dict[tuple[str, str], Lowering] = {}


def register(*op_types: str, quant: str = "compute", domain: str = "", grouped: bool = False):
    assert quant in QUANT_KINDS

    def wrap(fn):
        for op in op_types:
            LOWERINGS[(domain, op)] = Lowering(fn, quant, grouped)
        return fn

    return wrap


def lookup(op_type: str, domain: str = "") -> Lowering | None:
    return LOWERINGS.get(("" if domain == "ai.onnx" else domain, op_type))
