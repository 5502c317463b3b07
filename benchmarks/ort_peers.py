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
        # Without the graph's shape annotations: with them, the quantizer's own shape inference fails on
        # Gemma ("differ in dimension 0: (640) vs (262144)", around the table the Gather and the tied
        # output Gemm share); without them it infers its own.
        plain = onnx.load(float_model)
        del plain.graph.value_info[:]
        bare = out.parent / f"{out.stem}-input.onnx"
        onnx.save(plain, bare, save_as_external_data=True, location=f"{bare.name}.data")
        del plain
        quantize_dynamic(bare, out, weight_type=QuantType.QInt8, per_channel=True, use_external_data_format=True)
    else:
        algorithm = label.rsplit(" ", 1)[-1]
        config = {
            "RTN": lambda: RTNWeightOnlyQuantConfig(),
            "GPTQ": lambda: GPTQWeightOnlyQuantConfig(calibration_data_reader=_Feeds(calibration), block_size=BLOCK,
                                                      actorder=True),
            "HQQ": lambda: HQQWeightOnlyQuantConfig(block_size=BLOCK, bits=4),
        }[algorithm]()
        quantizer = MatMulNBitsQuantizer(onnx.load(float_model), block_size=BLOCK, is_symmetric=False,
                                         algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=True)
    print(f"  {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out
