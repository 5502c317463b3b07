"""Write the C package of a plan: kernels.c (TVM, target "c"), model.h / model.c / runtime.c / main.c and the
Makefile (templates/c_*.j2), the five headers the generated code includes (copied from the apache-tvm and
apache-tvm-ffi wheels), and weights.bin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError
from .builder import Plan

PACKAGE_DIR = "c"
HEADERS = {  # path inside the package's include/ -> (python package, path under its include/)
    "dlpack/dlpack.h": ("tvm_ffi", "dlpack/dlpack.h"),
    "tvm/ffi/c_api.h": ("tvm_ffi", "tvm/ffi/c_api.h"),
    "tvm/ffi/extra/c_env_api.h": ("tvm_ffi", "tvm/ffi/extra/c_env_api.h"),
    "tvm/runtime/base.h": ("tvm", "tvm/runtime/base.h"),
    "tvm/runtime/c_backend_api.h": ("tvm", "tvm/runtime/c_backend_api.h"),
}
TEMPLATES = {"model.h": "c_model.h.j2", "model.c": "c_model.c.j2", "edgesdk_runtime.h": "c_runtime.h.j2",
             "runtime.c": "c_runtime.c.j2", "npz.h": "c_npz.h.j2", "npz.c": "c_npz.c.j2", "main.c": "c_main.c.j2",
             "Makefile": "c_Makefile.j2"}
DLPACK_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}  # numpy kind -> DLPack type code (bool: kDLBool)


def import_tvm():
    try:
        import tvm
    except ImportError:
        raise MissingDependencyError("apache-tvm", "c", "the C backend (TVM-generated kernels)") from None
    return tvm


def kernels_source(plan: Plan) -> str:
    tvm = import_tvm()
    module = tvm.IRModule(dict(plan.kernels))
    # Argument checks off: the driver passes exactly the shapes each kernel was built for.
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        return tvm.compile(module, target="c").mod.inspect_source()


def _c_string(text: str) -> str:
    out = []
    for ch in str(text).encode("utf-8"):
        c = chr(ch)
        out.append(c if 32 <= ch < 127 and c not in '"\\?' else f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def _tensor_view(plan: Plan) -> list[dict[str, Any]]:
    views, at = [], 0
    for t in plan.tensors:
        dtype = np.dtype(t.dtype)
        views.append({"name": t.name, "storage": t.storage, "offset": t.offset, "code": DLPACK_CODES[dtype.kind],
                      "bits": 8 if dtype.kind == "b" else dtype.itemsize * 8, "shape": list(t.shape), "shape_at": at})
        at += len(t.shape)
    return views


def write(plan: Plan, out_dir: Path, *, model_name: str, recipe: str, target, cflags: str,
          input_names: list[str], output_names: list[str], lm: dict[str, Any] | None = None) -> list[str]:
    """The package under out_dir/c; the files written, relative to out_dir. Every entry point has the same
    inputs and outputs (names and order); ``lm`` (a causal LM's entry points, see c_model.c.j2) adds
    model_prefill/model_decode."""
    import jinja2

    from ...about import version
    from ...devices.runner import templates_dirs

    tvm = import_tvm()
    import tvm_ffi

    package = out_dir / PACKAGE_DIR
    package.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, data: bytes | str) -> None:
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        written.append(f"{PACKAGE_DIR}/{name}")

    put("kernels.c", kernels_source(plan))
    tensors = _tensor_view(plan)
    first = index = 0
    entries = []
    for entry in plan.entries:
        calls = []
        for call in entry.calls:
            calls.append({"node": call.node, "kernel": call.kernel, "args": call.args, "first": first, "int4": call.int4,
                          "op": call.op, "index": index})
            first += len(call.args)
            index += 1
        entries.append({"name": entry.name, "calls": calls})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in templates_dirs()]),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["c_string"] = _c_string
    env.filters["c_comment"] = lambda s: str(s).replace("*/", "* /")
    def io_view(ids, names):
        return [dict(tensors[i], name=n, index=i, dtype=plan.tensors[i].dtype, descr=np.dtype(plan.tensors[i].dtype).str)
                for i, n in zip(ids, names)]

    for view, entry in zip(entries, plan.entries):
        view.update(inputs=io_view(entry.inputs, input_names), outputs=io_view(entry.outputs, output_names))
    io = {"inputs": entries[0]["inputs"], "outputs": entries[0]["outputs"]}
    state_inputs = [name for name, i in zip(input_names, plan.entries[0].inputs) if plan.tensors[i].storage == "state"]
    ops = sorted({call["op"] for view in entries for call in view["calls"]})
    values = {"ops": ops, "edgesdk_version": version(), "model_name": model_name, "recipe": recipe, "target": target.name,
              "cflags": cflags, "kernels": list(plan.kernels), "tensors": tensors, "entries": entries,
              "arena_bytes": plan.arena_bytes, "state_bytes": plan.state_bytes, "scratch_floats": plan.scratch_floats,
              "weights_bytes": plan.weights_bytes, "state_inputs": state_inputs, "lm": lm, **io}
    for name, template in TEMPLATES.items():
        put(name, env.get_template(template).render(**values))
    roots = {"tvm": Path(tvm.__file__).parent / "include", "tvm_ffi": Path(tvm_ffi.__file__).parent / "include"}
    for name, (owner, source) in HEADERS.items():
        put(f"include/{name}", (roots[owner] / source).read_bytes())
    with open(package / "weights.bin", "wb") as blob:
        for tensor, array in zip((t for t in plan.tensors if t.storage == "weights"), plan.weights):
            blob.seek(tensor.offset)
            blob.write(np.ascontiguousarray(array).tobytes())
        blob.truncate(plan.weights_bytes)
    written.append(f"{PACKAGE_DIR}/weights.bin")
    summary = {"kernels": len(plan.kernels), "calls": len(plan.calls), "arena_bytes": plan.arena_bytes,
               "state_bytes": plan.state_bytes, "weights_bytes": plan.weights_bytes, "op_counts": plan.op_counts,
               "int4_matmuls": sum(1 for c in plan.calls if c.int4),
               "entries": {e.name: len(e.calls) for e in plan.entries}, **io}
    put("plan.json", json.dumps(summary, indent=1, default=str))
    return written
