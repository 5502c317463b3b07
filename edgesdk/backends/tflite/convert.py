"""Graph -> .tflite flatbuffer: lower to TF ops (lowering.py), then TF's TFLite converter.

Modes: ``fp32`` float model; ``dynamic`` dynamic-range quantization (the graph's int8 weights, activations
quantized at run time by the hybrid kernels); ``int8`` full integer, every compute op int8, with the
graph's own weights and ranges (see lowering.py: FakeQuant ranges put the converter in its
quantization-aware mode, so it calibrates nothing: no representative dataset is given to it);
``int4`` is refused (see INT4_REFUSAL)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError, UsageError
from ...graph import Graph
from . import lowering
from .tensors import import_tf

MODES = ("fp32", "dynamic", "int8", "int4")
INT4_REFUSAL = (
    "the tflite target cannot hold int4 weights: LiteRT 2.3's converter has no path for block-wise int4 "
    "(and TFLite int4 is symmetric, without the zero points edgesdk's int4 uses); "
    "use --recipe int8 or the onnxruntime target"
)


def convert(graph: Graph, mode: str, feeds: list[dict[str, np.ndarray]], int8_io: bool = False) -> tuple[bytes, dict]:
    """(flatbuffer bytes, io) where io = {"inputs": {onnx name: signature input}, "outputs": {...}}.

    ``feeds``: calibration feeds of batch 1; the first fixes the static input shapes, and for ``int8``
    they give the ranges of the tensors the graph leaves float. ``int8_io``: int8 model inputs and
    outputs in place of float ones (int8 mode only; integer inputs such as token ids stay integer)."""
    if mode not in MODES:
        raise UsageError(f"unknown TFLite mode '{mode}' (known: {', '.join(MODES)})")
    if mode == "int4":
        raise UsageError(INT4_REFUSAL)
    if int8_io and mode != "int8":
        raise UsageError(f"int8 inputs/outputs need the int8 mode, not '{mode}'")
    feeds = list(feeds)
    lowered = lowering.lower(graph, feeds if mode == "int8" else feeds[:1], mode)
    tf = import_tf()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([lowered.concrete], lowered.module)
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    flatbuffer = _run_converter(converter)
    io = {"inputs": dict(lowered.inputs), "outputs": dict(lowered.outputs)}
    if mode == "int8":
        _require_int8(flatbuffer)
    return flatbuffer, io


def float_function(graph: Graph, feeds: list[dict[str, np.ndarray]]):
    """(concrete function, trackable module, io) of the graph in float, with the static shapes of
    feeds[0]: what TF's own post-training quantization starts from (``tf_ptq``)."""
    lowered = lowering.lower(graph, list(feeds)[:1], "fp32")
    return lowered.concrete, lowered.module, {"inputs": dict(lowered.inputs), "outputs": dict(lowered.outputs)}


def tf_ptq(graph: Graph, feeds: list[dict[str, np.ndarray]], int8_io: bool = False) -> tuple[bytes, dict]:
    """The peer: TF's own full-integer PTQ of the float function, calibrated by the converter on
    ``feeds`` (representative dataset), TFLITE_BUILTINS_INT8."""
    tf = import_tf()
    feeds = list(feeds)
    concrete, module, io = float_function(graph, feeds)
    dtypes = dict(lowering.read_graph(graph).inputs)

    def dataset():
        for feed in feeds:
            yield {sig: np.asarray(feed[name]).astype(dtypes[name]) for name, sig in io["inputs"].items()}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return _run_converter(converter), io


def _run_converter(converter) -> bytes:
    """converter.convert() with TF's C++ and MLIR diagnostics kept off the terminal; a failure becomes
    a ModelError carrying the converter's first error line."""
    with tempfile.TemporaryFile(mode="w+") as log, _redirect_fds(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bytes(converter.convert())
        except Exception as exc:
            failure = exc
        log.flush()
        log.seek(0)
        captured = log.read()
    lines = [line.strip() for line in (str(failure) + "\n" + captured).splitlines() if line.strip()]
    detail = next((line for line in lines if "error:" in line), lines[0] if lines else type(failure).__name__)
    detail = detail.split("error:", 1)[-1].strip() if "error:" in detail else detail
    raise ModelError(f"the TFLite converter failed: {detail[:300]}")


@contextlib.contextmanager
def _redirect_fds(log):
    """Point the process's stdout/stderr file descriptors at ``log`` (C++ writes there directly)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _require_int8(flatbuffer: bytes) -> None:
    from .interpreter import describe

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(flatbuffer)
        info: dict[str, Any] = describe(path)
    if not info["fully_int8"]:
        listed = ", ".join(info["not_int8"][:8]) + (" ..." if len(info["not_int8"]) > 8 else "")
        raise ModelError(f"the int8 TFLite model still computes in float at {listed}")
