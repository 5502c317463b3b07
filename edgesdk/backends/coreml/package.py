"""Write model.mlpackage: the graph with its shapes fixed from a sample, lowered to MIL, converted by
coremltools (its default MIL passes, the precision asked for) and saved with edgesdk's metadata.

A causal LM (its static form: the KV cache as inputs and outputs of fixed size) becomes one package of two
functions, ``prefill`` (``prefill_tokens`` tokens a call) and ``decode`` (one), each lowered from the graph
with its shapes, merged by coremltools' multifunction utility, which stores the weights they share once."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedOperatorError, UsageError
from ..static_graph import staticize
from .deployment import TARGETS, import_coremltools, target_for
from .lowering import lower


def write_package(graph, recipe: str, feed: dict[str, np.ndarray], path: Path, options) -> dict[str, Any]:
    """Write the package at ``path``; the manifest's backend_info: deployment target, precision, compute
    units, the Core ML names and dtypes of the inputs and outputs, and a causal LM's prefill size."""
    ct = import_coremltools()
    deployment_target = target_for(recipe, options.deployment_target)
    # float16 by default for a quantized encoder; float32 for a causal LM, whose residual stream passes float16's
    # 65504 (Gemma 3 270M: 66136 at the BOS token, every later logit then NaN)
    compute_precision = options.compute_precision or ("float32" if recipe == "fp32" or graph.lm is not None else "float16")
    if graph.lm is None:
        names, spec = _convert(graph, recipe, feed, deployment_target, compute_precision, options, path)
        lm = None
    else:
        entries, lm = lm_entries(graph, options)
        deployment_target = _multifunction_target(deployment_target, options)
        with tempfile.TemporaryDirectory(prefix="edgesdk-coreml-", dir=path.parent) as work:
            described = ct.utils.MultiFunctionDescriptor()
            for name, entry_feed in entries.items():
                names, _ = _convert(graph, recipe, entry_feed, deployment_target, compute_precision, options, Path(work) / f"{name}.mlpackage")
                described.add_function(str(Path(work) / f"{name}.mlpackage"), src_function_name="main", target_function_name=name)
            described.default_function_name = "prefill"
            merged = Path(work) / "merged.mlpackage"
            with contextlib.redirect_stderr(io.StringIO()):
                ct.utils.save_multifunction(described, str(merged))
            mlmodel = ct.models.MLModel(str(merged), skip_model_load=True)
            _save(mlmodel, graph, recipe, path)  # the merge keeps no metadata
        spec = mlmodel.get_spec()
    input_names, output_names = names
    features = [*spec.description.input, *spec.description.output]
    for function in spec.description.functions:
        features += [*function.input, *function.output]
    dtypes = {f.name: _feature_dtype(f) for f in features}
    return {
        "deployment_target": deployment_target,
        "compute_precision": compute_precision,
        "compute_units": options.compute_units,
        "inputs": {name: {"name": mil, "dtype": dtypes[mil]} for name, mil in input_names.items()},
        "outputs": {name: {"name": mil, "dtype": dtypes[mil]} for name, mil in output_names.items()},
        **({"lm": lm} if lm else {}),
    }


def lm_entries(graph, options) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """A causal LM's two sample feeds (prefill: prefill_tokens tokens; decode: one) and what its runners need."""
    lm = graph.lm
    if not lm.context:
        raise UsageError("the Core ML backend runs a causal LM in its static form, the KV cache as inputs and "
                         "outputs of fixed size: convert with --context N (the cache slots, e.g. --context 256)")
    if lm.kv_cache != "float":
        raise UsageError(f"the Core ML backend keeps a float KV cache (this graph's is {lm.kv_cache}; a Core ML "
                         "model takes no uint8 inputs): convert without --kv-cache")
    tokens = min(options.prefill_tokens, lm.context)
    return ({"prefill": lm.prefill_feed(np.zeros(tokens, np.int64)), "decode": lm.prefill_feed(np.zeros(1, np.int64))},
            {"prefill_tokens": tokens, "context": lm.context})


def _multifunction_target(deployment_target: str, options) -> str:
    """A package of two functions loads from iOS 18 / macOS 15 on."""
    if TARGETS.index(deployment_target) >= TARGETS.index("iOS18"):
        return deployment_target
    if options.deployment_target is not None:
        raise UsageError(f"a causal LM's Core ML package holds two functions (prefill and decode), which Core ML "
                         f"loads from iOS18 (macOS 15) on; this target sets {options.deployment_target} "
                         "(options.deployment_target)")
    return "iOS18"


def _convert(graph, recipe, feed, deployment_target: str, compute_precision: str, options, path: Path):
    """Lower the graph with the shapes of ``feed``, convert and save it at ``path``: (its names, its spec)."""
    ct = import_coremltools()
    model = staticize(graph, feed, backend="Core ML")
    program, input_names, output_names = lower(model, feed, deployment_target)
    precision = ct.precision.FLOAT32
    if compute_precision == "float16":
        # float16 compute, except the quantized weights' constexpr ops: their scales stay the graph's float32
        # (bit for bit), and a cast to float16 follows the dequantized weight
        precision = ct.transform.FP16ComputePrecision(op_selector=lambda op: not op.op_type.startswith("constexpr_"))
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # coremltools draws a progress bar per pass pipeline
            mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, deployment_target),
                                 compute_precision=precision, compute_units=getattr(ct.ComputeUnit, options.compute_units),
                                 skip_model_load=True)
    except (ModelError, UnsupportedOperatorError):
        raise
    except Exception as exc:
        raise ModelError(f"coremltools could not convert the lowered program: {str(exc).splitlines()[0][:300]}") from None
    _save(mlmodel, graph, recipe, path)
    return (input_names, output_names), mlmodel.get_spec()


def _save(mlmodel, graph, recipe: str, path: Path) -> None:
    mlmodel.short_description = f"{graph.name}, recipe {recipe}, written by edgesdk"
    mlmodel.user_defined_metadata.update({"edgesdk.recipe": recipe, "edgesdk.source": str(graph.source or graph.name)})
    if path.exists():
        shutil.rmtree(path)
    mlmodel.save(str(path))


def _feature_dtype(feature) -> str:
    from coremltools.proto import FeatureTypes_pb2

    kind = feature.type.multiArrayType.dataType
    return {FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32", FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
            FeatureTypes_pb2.ArrayFeatureType.INT32: "int32", FeatureTypes_pb2.ArrayFeatureType.DOUBLE: "float64"}.get(kind, "float32")
