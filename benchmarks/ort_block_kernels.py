"""ONNX Runtime's block-quantized matmul kernels at one token, the numbers behind backends/ort/blockwise.py.

    python benchmarks/ort_block_kernels.py [--shapes 640x2048,896x4864] [--threads 1]

Why an 8-bit GGUF block weight with float activations runs as two 4-bit MatMulNBits (its exact halves)
instead of one 8-bit MatMulNBits: each row is one single-node session on x [1, K], timed in this process,
all rows of a shape measured one after the other in one run (median of 5 rounds of 200 calls).
Rows: fp32 MatMul; MatMulNBits 8-bit and 4-bit at accuracy level 0 (float activations, exact) and level 4
(activations quantized to int8 per block); two 4-bit MatMulNBits + Add (the exact halves)."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

BLOCK = 32


def _session(nodes, initializers, k: int, n: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "kernel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], initializers)
    model = helper.make_model(graph, ir_version=10,
                              opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _median_ms(session, x: np.ndarray, calls: int = 200, rounds: int = 5) -> float:
    for _ in range(20):
        session.run(None, {"x": x})
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            session.run(None, {"x": x})
        times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times)


def _nbits(name: str, packed: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, k: int, n: int, bits: int,
           level: int, out: str = "y"):
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(packed, f"{name}_q"), numpy_helper.from_array(scale.reshape(-1), f"{name}_s"),
             numpy_helper.from_array(zero_point, f"{name}_z")]
    node = helper.make_node("MatMulNBits", ["x", f"{name}_q", f"{name}_s", f"{name}_z"], [out], domain="com.microsoft",
                            K=k, N=n, bits=bits, block_size=BLOCK, accuracy_level=level)
    return [node], inits


def _pack(nibbles: np.ndarray) -> np.ndarray:
    return (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).astype(np.uint8)


def bench_shape(k: int, n: int, threads: int) -> dict[str, float]:
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, k)).astype(np.float32)
    u = rng.integers(0, 256, (n, k // BLOCK, BLOCK), dtype=np.uint8)
    scale = (rng.random((n, k // BLOCK)) * 0.01).astype(np.float16).astype(np.float32)
    zp8 = np.full((n, k // BLOCK), 128, np.uint8).reshape(-1)
    zp4_high = np.full((n, (k // BLOCK + 1) // 2), 0x88, np.uint8).reshape(-1)
    zp4_low = np.zeros_like(zp4_high)
    rows: dict[str, float] = {}
    weight = rng.standard_normal((k, n)).astype(np.float32)
    rows["fp32 MatMul"] = _median_ms(_session([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                              [numpy_helper.from_array(weight, "w")], k, n, threads), x)
    for level in (0, 4):
        nodes, inits = _nbits("a", u, scale, zp8, k, n, 8, level)
        rows[f"8-bit, level {level}"] = _median_ms(_session(nodes, inits, k, n, threads), x)
        nodes, inits = _nbits("a", _pack(u >> 4), scale, zp4_high, k, n, 4, level)
        rows[f"4-bit, level {level}"] = _median_ms(_session(nodes, inits, k, n, threads), x)
    high, inits_high = _nbits("h", _pack(u >> 4), scale * 16, zp4_high, k, n, 4, 0, out="yh")
    low, inits_low = _nbits("l", _pack(u & 15), scale, zp4_low, k, n, 4, 0, out="yl")
    add = helper.make_node("Add", ["yh", "yl"], ["y"])
    rows["two 4-bit halves + Add, level 0"] = _median_ms(_session([*high, *low, add], inits_high + inits_low, k, n, threads), x)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="640x2048,2048x640,896x4864", help="KxN at one token (default: Gemma 3 270M and Qwen2.5 0.5B MLP shapes)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    results = {f"{k}x{n}": bench_shape(k, n, args.threads) for k, n in shapes}
    names = list(next(iter(results.values())))
    print(f"ms per call at one token, {args.threads} thread(s), block {BLOCK}\n")
    print("| kernel | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.3f}" for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
