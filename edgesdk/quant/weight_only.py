"""Weight-only recipes: activations stay float, weights are int8 per channel or int4 per group, rounded
to nearest (with a clip search), after AWQ's activation-aware scaling, or by GPTQ."""

from __future__ import annotations

import collections
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from .. import progress
from ..calibration import CalibrationData
from ..graph import Graph
from .recipes import _STRICT, Recipe, _ensure_opset, _float_ops, _require, quantize_embeddings, register

AWQ_ROWS = 512  # calibration rows (tokens) each activation keeps for AWQ's scale search
GPTQ_OBSERVER_BYTES = 512 << 20  # Hessians observed per calibration run (a 0.5B model's take ~1.5 GB in all)


@register
@dataclass(frozen=True, config=_STRICT)
class Int8Weights(Recipe):
    """Weight-only int8, symmetric per output channel; embedding tables int8 per row. Activations stay
    float, so the products are the float model's to within the weights' rounding."""

    name: ClassVar[str] = "int8-weights"
    summary: ClassVar[str] = "weight-only int8 per channel, float activations"

    embeddings: bool = True
    # Backends compute with float activations against the int8 weights; false lets them quantize
    # activations too (ORT: MatMulNBits with int8 activations, faster, less exact).
    float_activations: bool = True

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        from .passes.weights import BlockWeightsPass

        q = _ensure_opset(self.prepare(graph), 21)  # block-wise DequantizeLinear arrived in opset 21
        with progress.step("int8 weights"):
            weights = BlockWeightsPass(bits=8, symmetric=True, per_channel=True)
            weights(q.model)
            report: dict[str, Any] = {"int8_linears": len(weights.quantized)}
            if weights.skipped:
                report["float_linears"] = weights.skipped
            if self.embeddings:
                quantize_embeddings(q, report, bits=8)
        q.report = report | {"float_ops": _float_ops(q)}
        return q


@register
@dataclass(frozen=True, config=_STRICT)
class Int4(Recipe):
    """Weight-only int4 per group along the input axis; embedding tables int4 too (``embedding_bits=8``
    keeps them int8) so the whole file shrinks. ``output_bits`` gives a language model's output layer its
    own width (a table shared with the embedding takes the wider of the two).

    ``rounding``: ``rtn`` round-to-nearest with a per-group clip search (no calibration); ``awq`` scales
    the weight rows that meet large activations up before rounding, α searched per layer group; ``gptq``
    rounds row by row against each layer's calibration Hessian (``act_order``: largest rows first)."""

    name: ClassVar[str] = "int4"
    summary: ClassVar[str] = "weight-only int4 per group (32/64/128), int4 embeddings; rounding rtn|awq|gptq"

    block_size: Literal[16, 32, 64, 128] = 32
    symmetric: bool = False
    embedding_bits: Literal[4, 8] = 4
    output_bits: Literal[4, 8] = 4
    clip_search: bool = True
    rounding: Literal["rtn", "awq", "gptq"] = "rtn"
    act_order: bool = True
    calibration_samples: Annotated[int, Field(ge=1)] = 32
    # ORT computes int4 matmuls with int8 activations (MatMulNBits accuracy level 4: fast, not exact); true
    # keeps them float, as the C backend always does (its greedy tokens are then ORT's).
    float_activations: bool = False

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        from .passes.weights import BlockWeightsPass
        from .patterns import linears, output_linear

        data = _require(calibration, f"{self.name} (rounding {self.rounding})") if self.rounding != "rtn" else None
        q = _ensure_opset(self.prepare(graph), 21)  # int4 tensors and block-wise DequantizeLinear arrived in opset 21
        report: dict[str, Any] = {"rounding": self.rounding}
        bits_for: dict[str, int] = {}
        output = output_linear(q.model.graph) if q.lm is not None else None
        if output is not None:
            tied = any(u.node.op_type == "Gather" for u in output.weight.uses())
            bits = max(self.output_bits, self.embedding_bits) if tied else self.output_bits
            bits_for[output.node.name] = bits
            report["output_layer"] = f"{output.node.name}: int{bits}" + (" (table shared with the embedding)" if tied else "")

        def weights_pass(**options: Any) -> BlockWeightsPass:
            return BlockWeightsPass(self.block_size, 4, self.symmetric, self.clip_search, bits_for=bits_for,
                                    act_order=self.act_order, **options)

        activations = list(dict.fromkeys(linear.activation.name for linear in linears(q.model.graph)))
        how: dict[str, str] = {}
        if self.rounding == "awq":
            report["awq_scaled_groups"] = self._awq(q, activations, data)
        elif self.rounding == "gptq":
            from .observers import Gram
            from .stats import collect_in_groups

            # Hessians a group at a time (a 0.5B model's would take GBs at once); each group's layers are
            # rounded before the next group is observed, so later layers see the rounded earlier ones.
            for grams in collect_in_groups(q, activations, data, self.calibration_samples, observer=Gram,
                                           budget=GPTQ_OBSERVER_BYTES):
                with progress.step(f"GPTQ on the layers reading {len(grams)} activations"):
                    rounded = weights_pass(grams=grams, only=set(grams))
                    rounded(q.model)
                how |= rounded.quantized
                del grams, rounded  # this group's Hessians go before the next group's are gathered
        with progress.step("int4 weights"):
            rest = weights_pass()
            rest(q.model)
            how |= rest.quantized
            report["quantized_linears"] = dict(collections.Counter(how.values()))
            if rest.skipped:
                report["float_linears"] = rest.skipped
            quantize_embeddings(q, report, self.embedding_bits, block_size=self.block_size, symmetric=self.symmetric)
        q.report = report | {"float_ops": _float_ops(q)}
        return q

    def _awq(self, q: Graph, activations: list[str], data: CalibrationData) -> int:
        from .observers import ChannelMeanAbs, RowSample, Several
        from .passes.awq import AwqScalePass
        from .stats import collect

        runs = min(len(data), self.calibration_samples)

        def observer() -> Several:
            return Several(ChannelMeanAbs(), RowSample.spread(AWQ_ROWS, runs))

        observed = collect(q, activations, data, self.calibration_samples, observer=observer)
        with progress.step("searching AWQ scales"):
            awq = AwqScalePass(observed, self.block_size, 4, self.symmetric)
            awq(q.model)
        return sum(alpha > 0 for alpha in awq.alphas.values())


@register
@dataclass(frozen=True, config=_STRICT)
class Int4Rtn(Int4):
    """``int4`` with round-to-nearest (and its per-group clip search): no calibration data."""

    name: ClassVar[str] = "int4-rtn"
    summary: ClassVar[str] = "weight-only int4, round-to-nearest with clip search"
    rounding: Literal["rtn"] = "rtn"


@register
@dataclass(frozen=True, config=_STRICT)
class Int4Awq(Int4):
    """``int4`` after AWQ's activation-aware scaling (calibration data)."""

    name: ClassVar[str] = "int4-awq"
    needs_calibration: ClassVar[bool] = True
    summary: ClassVar[str] = "weight-only int4, AWQ activation-aware scales"
    rounding: Literal["awq"] = "awq"


@register
@dataclass(frozen=True, config=_STRICT)
class Int4Gptq(Int4):
    """``int4`` rounded by GPTQ against each layer's calibration Hessian (calibration data)."""

    name: ClassVar[str] = "int4-gptq"
    needs_calibration: ClassVar[bool] = True
    summary: ClassVar[str] = "weight-only int4, GPTQ (Hessian-based, act-order)"
    rounding: Literal["gptq"] = "gptq"
