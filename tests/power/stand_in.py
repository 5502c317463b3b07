"""A stand-in workload for tests below the profile API: a process whose command line marks it as a runner
(the profile player's busy condition) and that prints its clock the way the real runner reports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """import json, sys, time
started = time.time()
time.sleep(0.3)  # startup: imports, model load
start = time.time()
time.sleep(float(sys.argv[1]))  # the timed window
end = time.time()
time.sleep(0.1)  # reference outputs
print(json.dumps({"started": started, "timed_start": start, "timed_end": end}))
"""


def run_stand_in(directory: Path, seconds: float = 1.0) -> dict[str, float]:
    """Run it (its file name holds '_runner.py' and it lives under ``directory``, the player's marker)."""
    script = directory / "stand_in_runner.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(seconds)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def matmul_artifact(directory: Path, layers: int = 8, width: int = 512, tokens: int = 256):
    """A small float artifact whose inference takes a few milliseconds: ``layers`` x (MatMul + Relu) on
    [1, tokens, width]. Small enough to build in a second, slow enough that a timed window holds samples."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import edgesdk

    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.normal(0, 1, (width, width)) / np.sqrt(width)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}" if i + 1 < layers else "y"], name=f"relu{i}")]
        name = f"r{i}"
    graph = helper.make_graph(nodes, "matmuls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, width])], initializer=inits)
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / "matmuls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), model)
    data = directory / "inputs.npz"
    np.savez(data, x=rng.normal(0, 1, (4, 1, tokens, width)).astype(np.float32)[:, 0])
    graph = edgesdk.load(model)
    return edgesdk.export(edgesdk.quantize(graph, "fp32"), "host", directory / "artifact", reference_data=data)
