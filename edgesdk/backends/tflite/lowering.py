"""An edgesdk Graph (standard ONNX, float or QDQ) as a TF function: weights as constants, inputs named
as the ONNX inputs with the static shapes of a feed, outputs named as the ONNX outputs.

Three modes, one graph walk:

``fp32``     the graph's exact float semantics: QDQ pairs are simulated (round, clip), weights are the
             graph's dequantized values.
``dynamic``  activation QDQ pairs (static or DynamicQuantizeLinear) become identities: TFLite's hybrid
             kernels quantize activations at run time; weights are the graph's q·scale values, which the
             converter's per-channel max-abs quantization maps back to the graph's own int8 values.
``int8``     every float tensor TFLite computes gets a range, written as a FakeQuant op. The converter
             then runs in its quantization-aware mode (no representative dataset: TF calibrates nothing;
             a tensor without a range would stay float, which convert.py refuses):
             - at the graph's QuantizeLinear points, the graph's own range (-zp·s, (255-zp)·s): exact;
             - elsewhere, the range edgesdk's observers (quant.observers.Ranges) saw on the calibration
               feeds, running this same TF function (the graph's QDQ points applied) before the ranges
               are known. Softmax inputs keep [min row max - 12, max]: masked scores saturate at the
               bottom, where exp() is < 1e-5 of the row maximum;
             - the residual stream and smoothed GELU outputs travel as channel groups (groups.py),
               planned from a first observation (groups.channel_plan).
             Attention-mask constants (float32 lowest, -inf) become MASK_VALUE, and scores + mask becomes
             a select (an int8 ADD of a huge constant overflows in LiteRT's optimized kernel).

The graph is read as plain data (graph_view.py) and its multi-node GELU, LayerNorm, RMSNorm and masked
mean pooling forms fused into one node each (fusions.py) before the walk.

Measured on all-MiniLM-L6-v2 (int8 recipe, 64 calibration sentences, mean cosine of the sentence
embedding to the fp32 model, LiteRT, 100 held-out sentences unless said): one range per tensor 0.81;
residual stream in 4 channel groups 0.985; smoothed GELU outputs grouped 0.9877. Leaving one family of
taps float at a time then showed Σ(x-mean)² per token as the dominant loss (0.9880 -> 0.9922 with it
float, in the TF simulation of the same ranges): it spans up to ~300x between ordinary and outlier
tokens, and on one int8 grid ordinary tokens had 1-2 levels. It is now taken on several grids
(ops_nn._inverse_std): 0.9921. Finer groups (groups.py) 0.9939; groups put straight onto the graph's
grid at its QDQ points 0.9942; mean pooling as one weighted BATCH_MATMUL (fusions, ops_nn._masked_mean)
0.9945. What remains is spread thin: each family of taps costs 0.0003-0.0015 when it alone is int8
(LayerNorm internals and outputs 0.0015, residual adds 0.0011, linear outputs 0.0007, SmoothQuant
scales 0.0006, GELU outputs 0.0003), and MSE-chosen ranges in place of min/max gained nothing.
600 held-out sentences, 1 thread: full int8 0.99445 at 20.1-20.8 ms, TFLite fp32 16.1 ms (ORT's int8
artifact, which keeps LayerNorm, softmax, GELU and residuals in float: 0.99820). Speed: linear layers
fed by channel groups take their concatenation with the weight rows in group order (a GATHER back to
channel order costs ~0.1 ms in LiteRT), embeddings are gathered per group from per-group tables;
the int8 SOFTMAX (~0.4 ms per layer) and ~90 small sum-of-squares BATCH_MATMULs are the next costs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...errors import ModelError
from ...graph import Graph
from .fusions import fuse
from .graph_view import GraphView, check_supported, read_graph
from .groups import ChannelPlan, channel_plan
from .ranges import observe, ranges_from
from .tensors import import_tf
from .tracer import MASK_VALUE, MODES, Tracer

__all__ = ["MASK_VALUE", "MODES", "Lowered", "Tracer", "fuse", "lower", "read_graph"]


@dataclasses.dataclass
class Lowered:
    """A traced graph: the tf.function (inside ``module`` for the converter) and the name maps."""

    function: Any
    module: Any
    concrete: Any
    inputs: dict[str, str]  # ONNX input name -> signature input name
    outputs: dict[str, str]  # ONNX output name -> signature output name
    input_dtypes: dict[str, np.dtype]  # ONNX input name -> dtype of the signature input
    ranges: dict[str, tuple[float, float]]  # the int8 range of every tap (int8 mode)
    plan: ChannelPlan | None = None

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the TF function itself on a feed (a check of the lowering before any conversion)."""
        out = self.function(*[np.asarray(feed[name]).astype(dtype) for name, dtype in self.input_dtypes.items()])
        return {onnx: out[sig].numpy() for onnx, sig in self.outputs.items()}


# ----------------------------------------------------------------------------------------------- API


def _input_shapes(view: GraphView, feed: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    missing = [name for name, _ in view.inputs if name not in feed]
    if missing:
        raise ModelError(f"the feed lacks the model input(s) {', '.join(missing)}")
    return {name: tuple(int(d) for d in np.shape(feed[name])) for name, _ in view.inputs}


def lower(graph: Graph, feeds: list[dict[str, np.ndarray]], mode: str = "fp32") -> Lowered:
    """The graph as a TF function for ``mode`` (see the module docstring); feeds[0] fixes the shapes,
    and in int8 mode all feeds are the calibration data for the ranges the graph does not give."""
    if not feeds:
        raise ModelError("lowering needs at least one feed (it fixes the static input shapes)")
    tf = import_tf()
    view = read_graph(graph)
    check_supported(view)
    fuse(view)
    shapes = _input_shapes(view, feeds[0])
    ranges = int_ranges = plan = None
    if mode == "int8":
        first = Tracer(view, shapes, mode)
        plan = channel_plan(first, observe(first, feeds)[0])
        second = Tracer(view, shapes, mode, plan=plan)
        stats, row_max, int_ranges = observe(second, feeds)
        ranges = ranges_from(second, stats, row_max)
    tracer = Tracer(view, shapes, mode, ranges=ranges, int_ranges=int_ranges, plan=plan)
    function = tracer.function()
    concrete = function.get_concrete_function()
    module = tf.Module()
    module.function = function
    return Lowered(
        function, module, concrete, tracer.input_names, tracer.output_names, dict(view.inputs), ranges or {}, plan
    )
