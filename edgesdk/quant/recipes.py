"""Recipes: typed, named quantization plans. Each recipe is a small class that registers itself under
its CLI name; its options are validated fields, and ``apply`` runs its passes over a copy of the graph."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from .. import progress
from ..calibration import CalibrationData
from ..errors import CalibrationError, ModelError, UsageError
from ..graph import Graph

REGISTRY: dict[str, type[Recipe]] = {}
SMOOTH_SEARCH_ROWS = 512  # calibration rows per activation SmoothQuant's α search replays
_STRICT = ConfigDict(extra="forbid")


def register(cls: type[Recipe]) -> type[Recipe]:
    REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True, config=_STRICT)
class Recipe:
    name: ClassVar[str]
    needs_calibration: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    takes: ClassVar[str] = "any model"  # or the one kind of model the recipe applies to

    # A causal LM's KV cache: float, or int8/int4 codes with a scale and offset per head and token
    # (passes/kv_cache.py). Every recipe takes it: the cache is quantized after the recipe's own passes.
    kv_cache: Literal["float", "int8", "int4"] = "float"
    # An accuracy budget (budget.py): the layers most sensitive to quantization are kept in higher precision
    # until the loss against the float model (an LM's perplexity increase, else 1 - mean cosine) is at most
    # this. Recipes with int8 activations take it.
    max_loss: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None

    def options(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options()}

    def quantize(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        """``apply``, then the accuracy budget and the KV cache."""
        if self.kv_cache != "float" and graph.lm is None:
            raise UsageError(f"recipe '{self.name}': kv_cache={self.kv_cache} applies to causal language models; "
                             f"{graph.source or graph.name} has no KV cache")
        if self.max_loss is not None:
            if not hasattr(self, "keep_float_input"):
                raise UsageError(f"recipe '{self.name}': max_loss keeps int8 activations float, and this recipe has "
                                 f"none (recipes that take it: int8, int8-dynamic)")
            from .budget import held_out

            calibration, measured_on = held_out(_require(calibration, f"{self.name} with max_loss"))
        q = self.apply(graph, calibration)
        if self.max_loss is not None:
            from .budget import fit

            again = dataclasses.replace(self, max_loss=None, kv_cache="float")

            def requantize(layers: set[str], precision: str) -> Graph:
                field = "keep_float_input" if precision == "float input" else "keep_float"
                return dataclasses.replace(again, **{field: tuple(sorted(layers))}).apply(graph, calibration)

            q, budget = fit(graph, q, measured_on, self.max_loss, requantize)
            q.report = {**q.report, "budget": budget}
        if self.kv_cache != "float":
            q = self._quantize_cache(graph, q, calibration)
        return q

    def _quantize_cache(self, graph: Graph, q: Graph, calibration: CalibrationData | None) -> Graph:
        """The KV cache as codes; keys evened out per channel on the float graph's calibrated reach, when
        calibration data is given (else one scale per token and head only, and the report says so)."""
        from .passes.kv_cache import KvCachePass, key_channel_factors

        factors = None
        if calibration is not None:
            with progress.step("measuring the key channels' reach"):
                factors = key_channel_factors(graph, calibration)
        with progress.step(f"{self.kv_cache} KV cache"):
            KvCachePass(self.kv_cache, q.lm.cache, factors)(q.model)
        q.lm = dataclasses.replace(q.lm, kv_cache=self.kv_cache)
        q.report = {**q.report, "kv_cache": self.kv_cache,
                    "kv_cache_keys": "per-channel factors (calibrated)" if factors else "per token only"}
        return q

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        raise NotImplementedError

    def prepare(self, graph: Graph) -> Graph:
        """A copy to quantize: weights computed by constant subgraphs (other tools' int8 storage,
        transposed weights) folded into plain initializers so the passes see them as weights."""
        from .passes.fold import FoldConstantWeightsPass

        if graph.is_quantized:
            raise ModelError(
                f"{graph.source or graph.name} is already quantized (it has QuantizeLinear/DequantizeLinear or "
                f"quantized kernels); export it as it is with --recipe fp32"
            )
        copy = graph.clone()
        FoldConstantWeightsPass()(copy.model)
        return copy


def get_recipe(recipe: str | Recipe, **options: Any) -> Recipe:
    if isinstance(recipe, Recipe):
        return dataclasses.replace(recipe, **options) if options else recipe
    cls = REGISTRY.get(recipe)
    if cls is None:
        raise UsageError(f"unknown recipe '{recipe}' (known: {', '.join(sorted(REGISTRY))})")
    try:
        return cls(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"recipe '{recipe}': bad option: {problems}") from None
    except TypeError as exc:
        raise UsageError(f"recipe '{recipe}': {exc}") from None


def _require(calibration: CalibrationData | None, recipe: str) -> CalibrationData:
    if calibration is None:
        raise CalibrationError(f"recipe '{recipe}' needs calibration data (--calib FILE.npz, or calibration=...)")
    return calibration


def _ensure_opset(graph: Graph, version: int) -> Graph:
    """The graph converted up to opset ``version`` (ops whose signature changed, such as ReduceMean's
    axes becoming an input at 18, are rewritten by ONNX's version converter)."""
    import onnx_ir as ir
    from onnx import version_converter

    if graph.opset() >= version:
        return graph
    try:
        proto = version_converter.convert_version(ir.serde.serialize_model(graph.model), version)
    except Exception as exc:
        raise ModelError(f"cannot convert the model from opset {graph.opset()} to {version}: {exc}") from None
    graph.model = ir.serde.deserialize_model(proto)
    return graph


@register
@dataclass(frozen=True, config=_STRICT)
class Fp32(Recipe):
    """No quantization: the float reference."""

    name: ClassVar[str] = "fp32"
    summary: ClassVar[str] = "no quantization (the reference)"

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        return graph.clone()


@register
@dataclass(frozen=True, config=_STRICT)
class Int8(Recipe):
    """Attention-aware static W8A8.

    Weights: per-output-channel symmetric int8. Activations: asymmetric uint8 with calibrated ranges at
    the inputs of every linear layer, after SmoothQuant moved their outlier channels into the weights.
    LayerNorm, Softmax, GELU, the mask Add and the residual Adds stay float. The attention matmuls
    (QKᵀ, probs·V) are int8 only when ``attention_matmuls`` is set: at sequence lengths of a few hundred
    they are a small share of the work and ORT runs them faster in float (measured in benchmarks/)."""

    name: ClassVar[str] = "int8"
    needs_calibration: ClassVar[bool] = True
    summary: ClassVar[str] = "static W8A8, SmoothQuant, attention-aware (default)"

    # SmoothQuant's α: one number for every layer (0 turns SmoothQuant off), or "search": per group of
    # layers, the α whose int8 replay on calibration rows errs least. On Gemma 3 270M the search picks
    # α 0.8-1.0 and ends worse than 0.8 for all (+7.0 % perplexity against +4.5 %): the default is 0.8.
    smooth_alpha: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["search"] = 0.8
    smooth_min_outlier_ratio: Annotated[float, Field(ge=0.0)] = 3.0  # smooth where max/median channel range ≥ this
    percentile: Annotated[float, Field(gt=50.0, le=100.0)] | None = None  # None: min/max ranges
    attention_matmuls: bool = False
    embeddings: bool = True
    calibration_samples: Annotated[int, Field(ge=1)] = 64
    # Linear layers (node names) whose input stays float, their weights int8 per channel and not smoothed
    # (in block form: ORT runs them as MatMulNBits, whose int8 kernel quantizes the input per block of 32
    # at run time). The accuracy budget (max_loss) chooses them.
    keep_float_input: tuple[str, ...] = ()
    keep_float: tuple[str, ...] = ()  # linear layers left float altogether: input and weights

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        from .passes.activations import StaticActivationsPass, matmul_activation_inputs
        from .passes.weights import Int8WeightsPass
        from .stats import collect

        data = _require(calibration, self.name)  # each sample is checked as calibration reads it
        q = self.prepare(graph)
        report: dict[str, Any] = {}

        keep, floats = set(self.keep_float_input), set(self.keep_float)

        def activation_names(attention: bool) -> list[str]:
            return sorted({n.inputs[i].name for n, i in matmul_activation_inputs(q.model.graph, attention)
                           if n.name not in keep | floats})

        if self.smooth_alpha != 0:
            smooth = self._smooth(q, activation_names(False), data)
            report["smoothed_activations"] = len(smooth.smoothed)
            if self.smooth_alpha == "search":
                report["smooth_alphas"] = smooth.alphas
        weights = Int8WeightsPass(skip=keep | floats, share_tables_now=False)
        weights(q.model)
        # Ranges are observed on the smoothed graph: smoothing changed the activations they describe.
        stats = collect(q, activation_names(self.attention_matmuls), data, self.calibration_samples)
        weights.share_tables()
        _int8_block_weights(q, keep, report)
        with progress.step("inserting quantize/dequantize pairs"):
            acts = StaticActivationsPass(stats, self.percentile, self.attention_matmuls, skip=keep | floats)
            acts(q.model)
        report["int8_linears"] = len(weights.quantized)
        report["int8_activations"] = len(acts.ranges)
        if floats:
            report["float_linears"] = sorted(floats)
        if acts.kept_float:
            report["float_activations"] = acts.kept_float
        if self.embeddings:
            quantize_embeddings(q, report, bits=8)
        report["float_ops"] = _float_ops(q)
        q.report = report
        return q

    def _smooth(self, q: Graph, names: list[str], data: CalibrationData):
        """SmoothQuant on the inputs ``names``: one α for all, or α searched per group on calibration rows."""
        from .observers import Ranges, RowSample, Several
        from .passes.smoothquant import SmoothQuantPass
        from .stats import collect

        search = self.smooth_alpha == "search"
        runs = min(len(data), self.calibration_samples)
        observer = (lambda: Several(Ranges(), RowSample.spread(SMOOTH_SEARCH_ROWS, runs))) if search else Ranges
        observed = collect(q, names, data, self.calibration_samples, observer=observer)
        with progress.step("searching SmoothQuant's α per layer" if search else "smoothing activation outliers"):
            smooth = SmoothQuantPass(
                {n: o["ranges"] for n, o in observed.items()} if search else observed,
                None if search else self.smooth_alpha, insert_mul=True, min_outlier_ratio=self.smooth_min_outlier_ratio,
                samples={n: o["rows"].rows for n, o in observed.items()} if search else None)
            smooth(q.model)
        return smooth


@register
@dataclass(frozen=True, config=_STRICT)
class Int8Dynamic(Recipe):
    """Per-channel int8 weights; activations quantized at run time (DynamicQuantizeLinear)."""

    name: ClassVar[str] = "int8-dynamic"
    summary: ClassVar[str] = "int8 weights, activations quantized at run time"

    embeddings: bool = True
    keep_float_input: tuple[str, ...] = ()  # as int8's: layers whose input stays float (max_loss chooses them)
    keep_float: tuple[str, ...] = ()  # layers left float altogether

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        from .passes.activations import DynamicActivationsPass
        from .passes.weights import Int8WeightsPass

        q = self.prepare(graph)
        keep, floats = set(self.keep_float_input), set(self.keep_float)
        weights = Int8WeightsPass(skip=keep | floats)
        weights(q.model)
        q.report = {"int8_linears": len(weights.quantized)}
        _int8_block_weights(q, keep, q.report)
        if floats:
            q.report["float_linears"] = sorted(floats)
        acts = DynamicActivationsPass(skip=keep | floats)
        acts(q.model)
        q.report["dynamic_activations"] = acts.count
        if self.embeddings:
            quantize_embeddings(q, q.report, bits=8)
        q.report["float_ops"] = _float_ops(q)
        return q


@register
@dataclass(frozen=True, config=_STRICT)
class Gguf(Recipe):
    """Keep a GGUF file's own quantization (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K blocks as block-wise
    int4/int8 DequantizeLinear with the file's scales and offsets): exactly the values llama.cpp dequantizes
    to, no re-quantization loss. Formats with no exact integer form here stay float32 (the report lists them)."""

    name: ClassVar[str] = "gguf"
    summary: ClassVar[str] = "a .gguf model's own quantization, kept exactly"
    takes: ClassVar[str] = "a causal LM loaded from a .gguf file"

    # Backends compute with float activations against the kept weights, so the artifact matches the float
    # model to rounding; false lets them quantize activations too (ORT: int8 MatMulNBits, faster, not exact).
    float_activations: bool = True

    def apply(self, graph: Graph, calibration: CalibrationData | None) -> Graph:
        from pathlib import Path

        from .passes.gguf_weights import GgufWeightsPass

        source = Path(graph.source or "")
        if graph.lm is None or source.suffix != ".gguf" or not source.is_file():
            raise UsageError(f"recipe 'gguf' keeps a GGUF file's own quantization: load a .gguf model "
                             f"(this one came from {graph.source or graph.name})")
        q = _ensure_opset(self.prepare(graph), 21)  # int4 and block-wise DequantizeLinear arrived in opset 21
        with progress.step(f"keeping the blocks of {source.name}"):
            keep = GgufWeightsPass(source, graph.lm.config)
            keep(q.model)
        q.report = keep.report() | {"float_ops": _float_ops(q)}
        return q


def _int8_block_weights(graph: Graph, layers: set[str], report: dict[str, Any]) -> None:
    """The linears ``layers`` (whose input stays float) get int8 weights per channel in block form, the one
    float-activation kernels take; a tied table's embedding Gathers read it too."""
    if not layers:
        return
    from .passes.weights import BlockWeightsPass
    from .patterns import linears

    activations = {linear.activation.name for linear in linears(graph.model.graph) if linear.node.name in layers}
    _ensure_opset(graph, 21)  # block-wise DequantizeLinear
    blocks = BlockWeightsPass(bits=8, per_channel=True, only=activations)
    blocks(graph.model)
    report["float_input_linears"] = sorted(layers)


def quantize_embeddings(graph: Graph, report: dict[str, Any], bits: int, **options: Any) -> None:
    """Embedding tables still float quantized to ``bits`` (a table the output layer shares is done by then),
    counted in the report."""
    from .passes.embeddings import EmbeddingPass

    embeddings = EmbeddingPass(bits=bits, **options)
    embeddings(graph.model)
    report[f"int{bits}_embeddings"] = len(embeddings.quantized)


def _float_ops(graph: Graph) -> list[str]:
    """Compute ops left in float, for the report (shape plumbing and Q/DQ are not interesting)."""
    plumbing = {"Reshape", "Transpose", "Shape", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast",
                "Range", "Expand", "Where", "IsNaN", "And", "GreaterOrEqual", "Max", "GatherND", "Constant",
                "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
    return sorted({n.op_type for n in graph.model.graph if n.op_type not in plumbing})


from . import weight_only  # noqa: E402,F401  (registers int8-weights and the int4 recipes)
