"""Core ML deployment targets: which one a recipe needs, and coremltools imported quietly.

A package's minimum deployment target decides the ops it may hold: int8 per-channel weights
(``constexpr_affine_dequantize``) from iOS 16 / macOS 13, int8 activations (``quantize``/``dequantize``, the
graph's own ranges) from iOS 17 / macOS 14, per-block weights (``constexpr_blockwise_shift_scale``: int4, and
``int8-weights``' int8 blocks of 128) from iOS 18 / macOS 15."""

from __future__ import annotations

import logging
import os
import sys

from ...errors import UsageError

TARGETS = ("iOS16", "iOS17", "iOS18")
MACOS = {"iOS16": "macOS 13", "iOS17": "macOS 14", "iOS18": "macOS 15"}
# Core ML specification version of each (what a package's spec records)
SPEC_VERSION = {"iOS15": 6, "iOS16": 7, "iOS17": 8, "iOS18": 9}
# recipe -> the lowest deployment target that expresses it
NEEDS = {"fp32": "iOS16", "int8-dynamic": "iOS16", "int8": "iOS17", "int8-weights": "iOS18",
         "int4": "iOS18", "int4-rtn": "iOS18", "int4-awq": "iOS18", "int4-gptq": "iOS18"}
WHY = {"int8": "int8 activations with the graph's own ranges (quantize/dequantize)",
       "int8-weights": "int8 per-block weights (constexpr_blockwise_shift_scale)",
       "int4": "int4 per-block weights (constexpr_blockwise_shift_scale)"}


def target_for(recipe: str, minimum: str | None) -> str:
    """The deployment target of a package of ``recipe``: ``minimum`` when it expresses the recipe, else an
    error naming the target that does; with no minimum, the lowest that does."""
    needed = NEEDS[recipe]
    if minimum is None:
        return needed
    if TARGETS.index(minimum) < TARGETS.index(needed):
        why = WHY["int4" if recipe.startswith("int4") else recipe]
        raise UsageError(f"recipe '{recipe}' needs Core ML deployment target {needed} ({MACOS[needed]}) or later for "
                         f"{why}; this target sets {minimum} (options.deployment_target)")
    return minimum


def spec_target(version: int) -> str:
    """'iOS17' for a spec of version 8 (an unknown version as 'spec N')."""
    return next((name for name, v in SPEC_VERSION.items() if v == version), f"spec {version}")


def import_coremltools():
    """coremltools, imported on first use without its noise: it imports TensorFlow and torch when they are
    installed (their C++ logging silenced) and logs every native module a Linux wheel lacks."""
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    # The MIL builder needs neither framework: when this process has not loaded TensorFlow, coremltools is
    # kept from importing it (seconds, and C++ log lines on stderr); a later `import tensorflow` still works.
    hidden = [name for name in ("tensorflow",) if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an ImportError for coremltools' optional-dependency probe
    try:
        import coremltools
    except ImportError:
        from ...errors import MissingDependencyError

        raise MissingDependencyError("coremltools", "coreml", "The Core ML backend") from None
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return coremltools
