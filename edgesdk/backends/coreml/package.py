"""Write model.mlpackage: the graph with its shapes fixed from a sample, lowered to MIL, converted by
coremltools (its default MIL passes, the precision asked for) and saved with edgesdk's metadata."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedOperatorError
from ..static_graph import staticize
from .deployment import import_coremltools, target_for
from .lowering import lower


def write_package(graph, recipe: str, feed: dict[str, np.ndarray], path: Path, options) -> dict[str, Any]:
    """Write the package at ``path``; the manifest's backend_info: deployment target, precision, compute
    units and the Core ML names and dtypes of the inputs and outputs."""
    ct = import_coremltools()
    deployment_target = target_for(recipe, options.deployment_target)
    if graph.lm is not None:
        raise ModelError("the Core ML backend lowers encoders for now; causal LMs are not lowered yet "
                         "(use the onnxruntime, tflite or c backend)")
    model = staticize(graph, feed, backend="Core ML")
    program, input_names, output_names = lower(model, feed, deployment_target)
    compute_precision = options.compute_precision or ("float32" if recipe == "fp32" else "float16")
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
    mlmodel.short_description = f"{graph.name}, recipe {recipe}, written by edgesdk"
    mlmodel.user_defined_metadata.update({"edgesdk.recipe": recipe, "edgesdk.source": str(graph.source or graph.name)})
    if path.exists():
        shutil.rmtree(path)
    mlmodel.save(str(path))
    spec = mlmodel.get_spec()
    dtypes = {f.name: _feature_dtype(f) for f in [*spec.description.input, *spec.description.output]}
    return {
        "deployment_target": deployment_target,
        "compute_precision": compute_precision,
        "compute_units": options.compute_units,
        "inputs": {name: {"name": mil, "dtype": dtypes[mil]} for name, mil in input_names.items()},
        "outputs": {name: {"name": mil, "dtype": dtypes[mil]} for name, mil in output_names.items()},
    }


def _feature_dtype(feature) -> str:
    from coremltools.proto import FeatureTypes_pb2

    kind = feature.type.multiArrayType.dataType
    return {FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32", FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
            FeatureTypes_pb2.ArrayFeatureType.INT32: "int32", FeatureTypes_pb2.ArrayFeatureType.DOUBLE: "float64"}.get(kind, "float32")
