"""The C backend's int4 matmul at one token (GEMV) at the decode shapes of Gemma 3 270M, against ONNX Runtime's
MatMulNBits on the same weights, and this machine's memory read bandwidth, all measured in one run at 1 and 2
threads.

    python benchmarks/c_gemv.py [--shapes 640x2048,2048x640,640x262144] [--runs 300]

Each shape is one graph y = x[1, K] · DequantizeLinear(uint4 codes [K, N], scale and zero point per block of 32)
exported by edgesdk twice from the same weights: to `host-c` (the C package: the backend's own kernel, driver
and thread pool, timed by its harness over --runs calls) and to `host` (ONNX Runtime's MatMulNBits, accuracy
level 4 as the host target sets it: activations quantized to int8 per block, VNNI dot products; timed in one
session over the same number of calls). Both report the median call. A shape whose weights fit in the caches
(640x2048 is 1 MB) stays there across calls, so its GB/s can exceed the read bandwidth; in a decode step every
layer's weights stream once (Gemma's 270 MB do not fit), which 640x262144 (84 MB of codes) shows.

Columns: ms per call; GB/s = the bytes each implementation streams per call (its codes, scales and zero points
as it stores them: C 0.75 byte per weight with float scales and float scale·zero, ORT 0.64 with float scales and
4-bit zero points) / time; weights/ns, the same work in a unit that does not depend on the layout; and the share
of this machine's read bandwidth: a C loop summing a 512 MiB buffer (int64 lanes, -O3 -march=native), best of
10 passes, 1 and 2 threads."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BLOCK = 32
BANDWIDTH_C = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define BYTES (512ull << 20)
static int64_t* buffer;
static int threads;
static volatile int64_t sink;
static void* sum_part(void* arg) {
  size_t part = (size_t)arg, n = BYTES / 8 / threads;
  const int64_t* p = buffer + part * n;
  int64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i < n; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
  sink += a + b + c + d;
  return NULL;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char** argv) {
  threads = atoi(argv[1]);
  buffer = aligned_alloc(64, BYTES);
  memset(buffer, 1, BYTES);
  double best = 1e9;
  for (int pass = 0; pass < 10; ++pass) {
    pthread_t t[64];
    double start = now();
    for (int i = 1; i < threads; ++i) pthread_create(&t[i], NULL, sum_part, (void*)(size_t)i);
    sum_part((void*)0);
    for (int i = 1; i < threads; ++i) pthread_join(t[i], NULL);
    double took = now() - start;
    if (took < best) best = took;
  }
  printf("%.3f\n", BYTES / best / 1e9);
  return 0;
}
"""


def read_bandwidth(work: Path, threads: int) -> float:
    source = work / "bandwidth.c"
    source.write_text(BANDWIDTH_C)
    binary = work / "bandwidth"
    subprocess.run(["cc", "-O3", "-march=native", "-pthread", "-o", str(binary), str(source)], check=True)
    return float(subprocess.run([str(binary), str(threads)], capture_output=True, text=True, check=True).stdout)


def qdq_graph(k: int, n: int, path: Path) -> Path:
    """x [1, K] · DequantizeLinear(uint4 [K, N], axis 0, block 32): an int4 linear as edgesdk's int4 recipe
    writes it (random codes; scales of a real layer's size)."""
    import ml_dtypes
    import onnx_ir as ir

    rng = np.random.default_rng(0)
    codes = ir.Tensor(rng.integers(0, 16, (k, n)).astype(ml_dtypes.uint4), name="w_codes")
    scale = ir.Tensor((rng.random((k // BLOCK, n)) * 0.01).astype(np.float32), name="w_scale")
    zero = ir.Tensor(rng.integers(6, 10, (k // BLOCK, n)).astype(ml_dtypes.uint4), name="w_zero")
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([1, k]))
    inits = [ir.Value(name=t.name, const_value=t, type=ir.TensorType(t.dtype), shape=ir.Shape(t.shape)) for t in (codes, scale, zero)]
    dq = ir.node("DequantizeLinear", inputs=inits, attributes={"axis": 0, "block_size": BLOCK}, name="w_dequantize")
    mm = ir.node("MatMul", inputs=[x, dq.outputs[0]], name="linear")
    mm.outputs[0].name, mm.outputs[0].shape, mm.outputs[0].type = "y", ir.Shape([1, n]), ir.TensorType(ir.DataType.FLOAT)
    graph = ir.Graph([x], [mm.outputs[0]], nodes=[dq, mm], initializers=inits, opset_imports={"": 21}, name="gemv")
    ir.save(ir.Model(graph, ir_version=10), path)
    return path


def c_median_ms(artifact: Path, threads: int, runs: int) -> float:
    from edgesdk.backends.c import build as c_build

    info = json.loads((artifact / "manifest.json").read_text())["backend_info"]
    binary = c_build.build(artifact / "c", info["cc"], info.get("host_cflags"))
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(binary), "--artifact", str(artifact), "--outputs", f"{tmp}/out.npz", "--runs", str(runs),
                               "--warmup", "20", "--threads", str(threads), "--weights", str(artifact / "c" / "weights.bin")],
                              capture_output=True, text=True, check=True)
    return statistics.median(json.loads(done.stdout.splitlines()[-1])["latencies_ms"])


def ort_median_ms(model: Path, k: int, threads: int, runs: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    x = {"x": np.random.default_rng(1).standard_normal((1, k)).astype(np.float32)}
    for _ in range(20):
        session.run(None, x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    import edgesdk

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="640x2048,2048x640,640x262144", help="KxN (default: Gemma 3 270M's MLP "
                        "up/down projections and its output layer)")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="edgesdk-gemv-"))
    bandwidth = {t: read_bandwidth(work, t) for t in (1, 2)}
    rows = []
    for k, n in shapes:
        model = qdq_graph(k, n, work / f"gemv_{k}x{n}.onnx")
        np.savez(work / f"x_{k}.npz", x=np.random.default_rng(2).standard_normal((4, k)).astype(np.float32))
        graph = edgesdk.load(str(model))
        c_art = edgesdk.export(graph, "host-c", work / f"c_{k}x{n}", reference_data=str(work / f"x_{k}.npz"))
        ort_art = edgesdk.export(graph, "host", work / f"ort_{k}x{n}", reference_data=str(work / f"x_{k}.npz"))
        weights = k * n
        c_bytes, ort_bytes = weights * 0.5 + weights / BLOCK * 8, weights * 0.5 + weights / BLOCK * 4.5
        for threads in (1, 2):
            c_ms = c_median_ms(c_art.path, threads, args.runs)
            ort_ms = ort_median_ms(ort_art.model_path, k, threads, args.runs)
            rows.append((f"{k}x{n}", threads, c_ms, c_bytes, ort_ms, ort_bytes, bandwidth[threads], weights))
        print(f"  {k}x{n} done", file=sys.stderr)
    print(f"\nread bandwidth: {bandwidth[1]:.1f} GB/s at 1 thread, {bandwidth[2]:.1f} GB/s at 2 threads; "
          f"median of {args.runs} calls at one token\n")
    print("| shape KxN | threads | C ms | C GB/s | C share of bandwidth | C weights/ns | ORT MatMulNBits ms | ORT GB/s | "
          "ORT share | ORT weights/ns | C / ORT speed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for shape, threads, c_ms, c_bytes, ort_ms, ort_bytes, bw, weights in rows:
        c_gbs, ort_gbs = c_bytes / c_ms / 1e6, ort_bytes / ort_ms / 1e6
        print(f"| {shape} | {threads} | {c_ms:.3f} | {c_gbs:.1f} | {c_gbs / bw:.0%} | {weights / c_ms / 1e6:.1f} | "
              f"{ort_ms:.3f} | {ort_gbs:.1f} | {ort_gbs / bw:.0%} | {weights / ort_ms / 1e6:.1f} | {ort_ms / c_ms:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
