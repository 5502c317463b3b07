"""ONNX Runtime's own quantizers as peers, run on the float ONNX graph edgesdk exported (the fp32 artifact's
model.onnx): quantize_dynamic (int8 weights, activations quantized at run time) and MatMulNBitsQuantizer
(int4 weight-only, block 32) with its RTN, GPTQ and HQQ algorithms. Each writes a plain .onnx file that
benchmarks/llm.py runs with the same feeds as the edgesdk rows."""

from __future__ import annotations

import sys
import time
from pathlib import Path

BLOCK = 32  # the int4 group size of edgesdk's int4 rows

PEERS = ("ORT quantize_dynamic", "ORT MatMulNBits RTN", "ORT MatMulNBits GPTQ", "ORT MatMulNBits HQQ")


class _Feeds:
    """A list of feeds as onnxruntime's CalibrationDataReader (get_next) and as the iterable its GPTQ reads."""

    def __init__(self, feeds: list[dict]):
        self.feeds, self._next = feeds, iter(feeds)

    def get_next(self):
        return next(self._next, None)

    def __iter__(self):
        return iter(self.feeds)


def make(label: str, float_model: Path, out: Path, calibration: list[dict]) -> Path:
    """Quantize ``float_model`` (with its external data beside it) as the peer ``label``; the output path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        GPTQWeightOnlyQuantConfig,
        HQQWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
        RTNWeightOnlyQuantConfig,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if label == "ORT quantize_dynamic":
        # Prepared: without the graph's shape annotations (with them the quantizer's own shape inference
        # fails: "differ in dimension 0: (640) vs (262144)"), and with the tied output layer's table untied:
        # the quantizer turns a transB Gemm into a MatMul by transposing its weight in place, and the
        # embedding Gather reading the same table would then gather from [hidden, vocab].
        plain = onnx.load(float_model)
        del plain.graph.value_info[:]
        _untie_output_layer(plain)
        bare = out.parent / f"{out.stem}-input.onnx"
        onnx.save(plain, bare, save_as_external_data=True, location=f"{bare.name}.data")
        del plain
        # Its defaults but per-channel weights.
        quantize_dynamic(bare, out, weight_type=QuantType.QInt8, per_channel=True, use_external_data_format=True)
        bare.unlink()
        (bare.parent / f"{bare.name}.data").unlink()
    else:
        algorithm = label.rsplit(" ", 1)[-1]
        config = {
            "RTN": lambda: RTNWeightOnlyQuantConfig(),
            "GPTQ": lambda: GPTQWeightOnlyQuantConfig(calibration_data_reader=_Feeds(calibration), block_size=BLOCK,
                                                      actorder=True),
            "HQQ": lambda: HQQWeightOnlyQuantConfig(block_size=BLOCK, bits=4),
        }[algorithm]()
        # By path: ORT's GPTQ saves an augmented copy of a model over 2 GB next to its path (given a ModelProto it
        # has none: "unsupported operand type(s) for +: 'NoneType' and 'str'" on Qwen2.5 0.5B)
        quantizer = MatMulNBitsQuantizer(str(float_model), block_size=BLOCK, is_symmetric=False, algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=True)
    print(f"  {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def _untie_output_layer(model) -> None:
    """A Gemm whose weight an embedding Gather also reads gets a copy of its own."""
    import onnx

    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    tables = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gemm" and node.input[1] in gathered and node.input[1] in tables:
            copy = onnx.TensorProto()
            copy.CopyFrom(tables[node.input[1]])
            copy.name = node.input[1] + "_output_layer"
            model.graph.initializer.append(copy)
            node.input[1] = copy.name
