"""An accuracy budget (``max_loss``): give the layers most sensitive to quantization their input in float
until the quantized model's loss against the float model holds the budget.

Loss: for a causal LM the perplexity increase (perplexity ratio - 1), for other models 1 - the mean cosine
of the outputs, on the last HELD_OUT calibration samples, which the recipe then does not calibrate on (a
model calibrated on its budget's text looks better there than elsewhere: Gemma 3 270M int8 measured -1.9 %
on its text's last 8 windows, 6 of them calibrated on, +5.0 % on held-out text).

Sensitivity is measured end to end, once per quantized activation (on RANKED_ON of the held-out samples: a
ranking needs fewer than the budget's check), in one ONNX Runtime session: every
activation's quantize→dequantize is blended with its float value by a scalar gate fed at run time
(x + g·(QDQ(x) - x)), so turning one gate off is that activation left float with everything else as the
recipe made it. The activations are ranked by how much loss they alone remove (an LM: the mean absolute
change of the per-token log-likelihood, steadier on a few windows than the perplexity).

Kept, a layer group (the linears reading one activation) takes its input in float and its weights int8
per channel without smoothing (SmoothQuant's rescaled weights round worse, and a float input no longer
needs them), in block form: ORT runs such a layer as MatMulNBits, whose int8 kernel quantizes the input per
block of 32 at run time — far finer than one static scale per tensor, at the speed of an int8 kernel, and
the file does not grow (keeping Gemma 3 270M's most sensitive layer, the output layer that shares its
table with the embedding, fully float made a 941.5 MB file of a 270.7 MB one). Where even every group
so kept misses the budget (int8 weights have a loss of their own: all-MiniLM-L6-v2's is about 0.0006 of
cosine), kept groups are float altogether, weights too. The recipe is run again with the kept layers and
the loss measured on the result (with the kept inputs in float; the artifact's figure at export is with
ORT's per-block quantization), for the smallest prefix of the ranking that meets the budget (bisection: a
few recipe runs per precision)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir

from .. import progress
from ..calibration import CalibrationData
from ..errors import CalibrationError, UsageError
from ..graph import Graph
from .edit import GraphEditor

ACTIVATION_QUANTIZERS = ("QuantizeLinear", "DynamicQuantizeLinear")
HELD_OUT = 16  # calibration samples (an LM's windows) the budget is measured on, never calibrated on
PRECISIONS = ("float input", "float")  # a kept layer: float input and int8 weights; failing that, all float
RANKED_ON = 4  # of those, the ones each activation's sensitivity is measured on (once per activation)


def held_out(data: CalibrationData) -> tuple[CalibrationData, CalibrationData]:
    """(the samples to calibrate on, the last HELD_OUT ones to measure the budget on)."""
    if len(data) <= HELD_OUT:
        raise CalibrationError(f"{data.origin}: max_loss measures the loss on {HELD_OUT} samples the recipe does not "
                               f"calibrate on, and the calibration data has only {len(data)}; give more (an LM: a longer text)")
    calibrate, measure = data.split(len(data) - HELD_OUT)
    return calibrate, measure


@dataclasses.dataclass
class Site:
    """One quantized activation: its float value, its dequantized value and the nodes reading that."""

    source: ir.Value
    dequantized: ir.Value
    readers: list[ir.Node]

    @property
    def name(self) -> str:
        return self.source.name


def sites(graph: ir.Graph) -> list[Site]:
    """Every activation the graph quantizes (a DequantizeLinear of a run-time QuantizeLinear)."""
    found = []
    for node in graph:
        if node.op_type != "DequantizeLinear":
            continue
        quantizer = node.inputs[0].producer()
        if quantizer is None or quantizer.op_type not in ACTIVATION_QUANTIZERS or quantizer.inputs[0].const_value is not None:
            continue
        readers = list(dict.fromkeys(use.node for use in node.outputs[0].uses()))
        found.append(Site(quantizer.inputs[0], node.outputs[0], readers))
    return found


def fit(float_graph: Graph, quantized: Graph, measured_on: CalibrationData, max_loss: float,
        requantize: Callable[[set[str], str], Graph]) -> tuple[Graph, dict[str, Any]]:
    """The recipe's graph with the fewest most sensitive layer groups kept (``requantize(layers, precision)``
    runs the recipe with those linears kept at a precision of PRECISIONS) that brings the loss within
    ``max_loss``, and the report."""
    found = sites(quantized.model.graph)
    if not found:
        raise UsageError("max_loss keeps quantized activations in float, and this recipe quantizes none "
                         "(recipes with int8 activations: int8, int8-dynamic)")
    meter = _LossMeter(float_graph, quantized, measured_on)
    before = meter.measure(quantized)
    report: dict[str, Any] = {"max_loss": max_loss, "metric": meter.metric, "samples": meter.samples,
                              "loss_before": before}
    if before <= max_loss:
        return quantized, report | {"loss_after": before, "met": True, "kept": []}
    order, gains = _ranked(meter, quantized, found)

    def layers(count: int) -> set[str]:
        return {node.name for i in order[:count] for node in found[i].readers}

    kept_graph: dict[int, Graph] = {}  # the smallest passing count's graph (or the all-kept one): the answer

    for precision in PRECISIONS:
        def loss_keeping(count: int) -> float:
            with progress.step(f"{count} of {len(order)} layer groups kept ({precision}): quantizing again"):
                graph = requantize(layers(count), precision)
            loss = meter.measure(graph)
            if loss <= max_loss or count == len(order):
                kept_graph.clear()
                kept_graph[count] = graph
            return loss

        count, after = _smallest_prefix(loss_keeping, len(order), max_loss)
        if after <= max_loss:
            break
    graph = kept_graph[count]
    kept = [(found[i], gains[i]) for i in order[:count]]
    report |= {
        "loss_after": after,
        "met": after <= max_loss,
        "kept_as": precision,
        "kept": [{"activation": site.name, "layers": [n.name for n in site.readers], "sensitivity": gain}
                 for site, gain in kept],
        "weight_bytes_added": _weight_bytes(graph) - _weight_bytes(quantized),  # the block form's repeated scales
    }
    return graph, report


def _ranked(meter: _LossMeter, quantized: Graph, found: list[Site]) -> tuple[list[int], list[float]]:
    """Site indices, most sensitive first, and each one's loss reduction when it alone is float."""
    gated = meter.gated(quantized)
    every = np.ones(len(found), np.float32)
    base = gated(every)
    gains = []
    for i in progress.track(range(len(found)), "per-activation sensitivity", total=len(found)):
        gates = every.copy()
        gates[i] = 0.0
        gains.append(float(base - gated(gates)))
    return [int(i) for i in np.argsort(gains)[::-1]], gains


def _weight_bytes(graph: Graph) -> int:
    return sum(v.const_value.nbytes for v in graph.model.graph.initializers.values() if v.const_value is not None)


def _smallest_prefix(loss_keeping: Callable[[int], float], total: int, max_loss: float) -> tuple[int, float]:
    """The smallest count whose loss meets the budget (bisection: the loss falls as more is kept), and its
    loss; ``total`` and its loss if even that does not."""
    low, high = 0, total
    losses = {total: loss_keeping(total)}
    if losses[total] > max_loss:
        return total, losses[total]
    while high - low > 1:
        middle = (low + high) // 2
        losses[middle] = loss_keeping(middle)
        if losses[middle] <= max_loss:
            high = middle
        else:
            low = middle
    return high, losses[high]


class _LossMeter:
    """The float model's answers on the budget samples, and the loss of a quantized graph against them."""

    def __init__(self, float_graph: Graph, quantized: Graph, data: CalibrationData):
        from ..runtime import WeightFedSession, ort_session

        self.lm = quantized.lm
        self.metric = "perplexity increase" if self.lm is not None else "1 - mean cosine"
        self.feeds = list(data.feeds(quantized))
        self.samples = len(self.feeds)
        with progress.step("float reference for the loss budget"):
            if self.lm is not None:
                session = WeightFedSession(float_graph, ["logits"])
                self.expected = [_token_nll(f["input_ids"][0], session.run(["logits"], f)[0][0]) for f in self.feeds]
            else:
                session = ort_session(float_graph)
                names = [o.name for o in session.get_outputs()]
                self.expected = [dict(zip(names, session.run(names, f))) for f in self.feeds]
            del session
        self.outputs = ["logits"] if self.lm is not None else list(self.expected[0])

    def measure(self, graph: Graph) -> float:
        """The budget's loss of ``graph``."""
        from ..runtime import ort_session

        return self._losses(ort_session(graph, arena=False), {})["loss"]

    def gated(self, quantized: Graph) -> Callable[[np.ndarray], float]:
        """gates (1: quantized, 0: float, one per site) -> the sensitivity metric on the first RANKED_ON
        samples, in one session."""
        from ..runtime import ort_session

        graph, names = _gated(quantized)
        session = ort_session(graph, arena=False)

        def rank(gates: np.ndarray) -> float:
            return self._losses(session, {n: np.array(g, np.float32) for n, g in zip(names, gates)}, RANKED_ON)["rank"]

        return rank

    def _losses(self, session, extra: dict[str, np.ndarray], samples: int | None = None) -> dict[str, float]:
        feeds, expected = self.feeds[:samples], self.expected[:samples]
        if self.lm is not None:
            nll = np.concatenate([_token_nll(f["input_ids"][0], session.run(self.outputs, f | extra)[0][0])
                                  for f in feeds])
            float_nll = np.concatenate(expected)
            return {"loss": float(np.exp(nll.mean() - float_nll.mean()) - 1.0), "rank": float(np.abs(nll - float_nll).mean())}
        from ..metrics import compare

        actual = [dict(zip(self.outputs, session.run(self.outputs, f | extra))) for f in feeds]
        cosine = min(m["cosine_mean"] for m in compare(actual, expected).values())
        return {"loss": 1.0 - cosine, "rank": 1.0 - cosine}


def _token_nll(ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """-log p(ids[t+1]) at every position t of one window."""
    from ..llm.metrics import log_softmax

    logp = log_softmax(logits[:-1])
    return -logp[np.arange(len(ids) - 1), ids[1:]]


def _gated(quantized: Graph) -> tuple[Graph, list[str]]:
    """A copy whose every quantized activation is x + g·(QDQ(x) - x), g a scalar input per activation."""
    model = quantized.model.clone()
    graph = model.graph
    editor = GraphEditor(graph)
    names = []
    for site in sites(graph):
        gate = ir.Value(name=editor.name(f"gate.{site.name}"), type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([]))
        graph.inputs.append(gate)
        names.append(gate.name)
        error = editor.add("Sub", [site.dequantized, site.source], hint=f"{site.name}_error").outputs[0]
        scaled = editor.add("Mul", [error, gate], hint=f"{site.name}_gated").outputs[0]
        blended = editor.add("Add", [site.source, scaled], hint=f"{site.name}_blend").outputs[0]
        for reader in site.readers:
            for index, value in enumerate(reader.inputs):
                if value is site.dequantized:
                    reader.replace_input_with(index, blended)
    editor.finish()
    return dataclasses.replace(quantized, model=model), names
