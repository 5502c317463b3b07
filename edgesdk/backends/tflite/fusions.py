"""Before tracing, ``fuse`` rewrites multi-node forms TFLite has one good op for (GELU written with Erf or
Tanh, LayerNorm and RMSNorm written as reductions, sentence-transformers' masked mean pooling) into one
node each, checked structurally and, for GELU, numerically. The fused nodes are standard
LayerNormalization or ops of ops.EDGESDK_DOMAIN."""

from __future__ import annotations

import math

import numpy as np

from .graph_view import GraphView, Node, other_input
from .ops import EDGESDK_DOMAIN


def fuse(view: GraphView) -> GraphView:
    """Rewrite GELU (Erf/Tanh forms), LayerNorm, RMSNorm and masked mean pooling into one node each."""
    for matcher in (_match_layernorm, _match_rmsnorm, _match_gelu, _match_masked_mean):
        while True:
            consumers, producers = view.consumers(), view.producers()
            for node in view.nodes:
                found = matcher(view, node, consumers, producers)
                if found:
                    _replace(view, *found)
                    break
            else:
                break
    return view


def _replace(view: GraphView, remove: list[Node], fused: Node) -> None:
    gone = {id(n) for n in remove}
    last = max(i for i, n in enumerate(view.nodes) if id(n) in gone)
    nodes = [n for n in view.nodes[: last + 1] if id(n) not in gone] + [fused] + view.nodes[last + 1 :]
    view.nodes = nodes


def _scalar(view: GraphView, name: str) -> float | None:
    value = view.value(name) if name else None
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.number):
        return None
    return float(value.reshape(()))


def _only(consumers, name: str, op_type: str | tuple, outputs: set[str]) -> Node | None:
    users = consumers.get(name, [])
    if name in outputs or len(users) != 1:
        return None
    node = users[0]
    return node if node.op_type in ((op_type,) if isinstance(op_type, str) else op_type) else None


def _last_axis_reduce(view: GraphView, node: Node) -> bool:
    if node.op_type != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        value = view.value(node.inputs[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return axes is not None and list(axes) == [-1]


def _is_square(view: GraphView, node: Node) -> str | None:
    """The squared tensor of Pow(x, 2) or Mul(x, x)."""
    if node.op_type == "Pow" and _scalar(view, node.inputs[1]) == 2.0:
        return node.inputs[0]
    if node.op_type == "Mul" and node.inputs[0] == node.inputs[1]:
        return node.inputs[0]
    return None


def _norm_tail(view, consumers, outputs, normed: str, allow_bias: bool):
    """Optional Mul by a constant gain, then optional Add of a constant bias, after a normalization."""
    chain, gain, bias, end = [], "", "", normed
    mul = _only(consumers, end, "Mul", outputs)
    if mul is not None and view.value(other_input(mul, end)) is not None:
        chain.append(mul)
        gain, end = other_input(mul, end), mul.outputs[0]
        add = _only(consumers, end, "Add", outputs) if allow_bias else None
        if add is not None and view.value(other_input(add, end)) is not None:
            chain.append(add)
            bias, end = other_input(add, end), add.outputs[0]
    return chain, gain, bias, end


def _mean_eps_sqrt(view, consumers, outputs, squared: str):
    """ReduceMean (last axis) → Add eps → Sqrt after ``squared``: (mean, add, eps, sqrt), or None."""
    mean = _only(consumers, squared, "ReduceMean", outputs)
    if mean is None or not _last_axis_reduce(view, mean):
        return None
    add = _only(consumers, mean.outputs[0], "Add", outputs)
    eps = _scalar(view, other_input(add, mean.outputs[0])) if add is not None else None
    sqrt = _only(consumers, add.outputs[0], "Sqrt", outputs) if eps is not None else None
    return None if sqrt is None else (mean, add, eps, sqrt)


def _match_layernorm(view, node, consumers, producers):
    """ReduceMean → Sub → Pow 2 → ReduceMean → Add eps → Sqrt → Div (→ Mul γ → Add β)."""
    if not _last_axis_reduce(view, node):
        return None
    outputs = set(view.outputs)
    x = node.inputs[0]
    sub = _only(consumers, node.outputs[0], "Sub", outputs)
    if sub is None or sub.inputs != [x, node.outputs[0]]:
        return None
    d = sub.outputs[0]
    users = consumers.get(d, [])
    square = next((u for u in users if _is_square(view, u) == d), None)
    div = next((u for u in users if u.op_type == "Div" and u.inputs[0] == d), None)
    if square is None or div is None or len(users) != 2 or d in outputs:
        return None
    found = _mean_eps_sqrt(view, consumers, outputs, square.outputs[0])
    if found is None:
        return None
    mean2, add, eps, sqrt = found
    if div.inputs[1] != sqrt.outputs[0] or len(consumers.get(sqrt.outputs[0], [])) != 1:
        return None
    tail, gain, bias, end = _norm_tail(view, consumers, outputs, div.outputs[0], allow_bias=True)
    chain = [node, sub, square, mean2, add, sqrt, div] + tail
    fused = Node("LayerNormalization", "", f"{node.name}_layernorm", [x, gain, bias], [end], {"epsilon": eps, "axis": -1})
    return chain, fused


def _match_rmsnorm(view, node, consumers, producers):
    """Pow 2 → ReduceMean → Add eps → Sqrt → Reciprocal → Mul x (→ Mul γ), or … Sqrt → Div(x, ·)."""
    x = _is_square(view, node)
    if x is None:
        return None
    outputs = set(view.outputs)
    found = _mean_eps_sqrt(view, consumers, outputs, node.outputs[0])
    if found is None:
        return None
    mean, add, eps, sqrt = found
    chain = [node, mean, add, sqrt]
    after = _only(consumers, sqrt.outputs[0], ("Reciprocal", "Div"), outputs)
    if after is None:
        return None
    if after.op_type == "Div" and after.inputs[1] == sqrt.outputs[0] and after.inputs[0] == x:
        normed = after.outputs[0]
        chain.append(after)
    else:
        if after.op_type == "Div" and _scalar(view, after.inputs[0]) != 1.0:
            return None
        mul = _only(consumers, after.outputs[0], "Mul", outputs)
        if mul is None or other_input(mul, after.outputs[0]) != x:
            return None
        chain += [after, mul]
        normed = mul.outputs[0]
    tail, gain, _, end = _norm_tail(view, consumers, outputs, normed, allow_bias=False)
    fused = Node("RMSNorm", EDGESDK_DOMAIN, f"{node.name}_rmsnorm", [x, gain], [end], {"epsilon": eps, "axis": -1})
    return chain + tail, fused


_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Erf", "Tanh", "Sqrt"}


def _match_gelu(view, node, consumers, producers):
    """The elementwise region around an Erf/Tanh that computes gelu(x) for one tensor x, verified by
    evaluating it on sample values (exporters write the same GELU in several orders)."""
    if node.op_type not in ("Erf", "Tanh"):
        return None
    outputs = set(view.outputs)
    candidates, frontier = [], [node.inputs[0]]
    for _ in range(5):  # the dynamic tensors up to five elementwise steps before the seed
        nxt = []
        for name in frontier:
            if name in candidates or view.value(name) is not None:
                continue
            candidates.append(name)
            p = producers.get(name)
            if p is not None and p.op_type in _ELEMENTWISE:
                nxt += [i for i in p.inputs if i]
        frontier = nxt
    for x in reversed(candidates):
        region = _grow_region(view, consumers, x)
        if node not in region:
            continue
        escaping = [o for n in region for o in n.outputs if o in outputs or any(c not in region for c in consumers.get(o, []))]
        if len(escaping) != 1:
            continue
        approximate = _evaluates_to_gelu(view, region, x, escaping[0])
        if approximate is not None:
            fused = Node("Gelu", EDGESDK_DOMAIN, f"{node.name}_gelu", [x], [escaping[0]], {"approximate": approximate})
            return region, fused
    return None


def _grow_region(view: GraphView, consumers, x: str, limit: int = 12) -> list[Node]:
    """The elementwise nodes computable from ``x`` and scalar constants alone, in graph order."""
    region: list[Node] = []
    values = {x}
    changed = True
    while changed and len(region) < limit:
        changed = False
        for name in sorted(values):  # a copy: values grows in the loop
            for c in consumers.get(name, []):
                if c in region or c.op_type not in _ELEMENTWISE:
                    continue
                if all(i in values or _scalar(view, i) is not None for i in c.inputs if i):
                    region.append(c)
                    values.update(c.outputs)
                    changed = True
    order = {id(n): i for i, n in enumerate(view.nodes)}
    region.sort(key=lambda n: order[id(n)])
    return region


def _evaluates_to_gelu(view: GraphView, region: list[Node], x: str, y: str) -> str | None:
    erf = np.vectorize(math.erf)
    fns = {
        "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
        "Erf": erf, "Tanh": np.tanh, "Sqrt": np.sqrt,
    }
    sample = np.linspace(-6.0, 6.0, 121)
    env = {x: sample}
    with np.errstate(all="ignore"):
        for n in region:
            args = [env[i] if i in env else view.value(i).astype(np.float64) for i in n.inputs if i]
            if any(np.ndim(a) and np.size(a) != sample.size for a in args):
                return None  # GELU's constants are scalars
            env[n.outputs[0]] = fns[n.op_type](*args)
    got = env.get(y)
    if got is None or got.shape != sample.shape:
        return None
    exact = 0.5 * sample * (1.0 + erf(sample / math.sqrt(2.0)))
    tanh = 0.5 * sample * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (sample + 0.044715 * sample**3)))
    if np.allclose(got, exact, atol=1e-5):
        return "none"
    if np.allclose(got, tanh, atol=1e-5):
        return "tanh"
    return None


def _sum_over_axis1(view: GraphView, node: Node | None) -> int | None:
    """keepdims of a ReduceSum over axis 1 alone, else None."""
    if node is None or node.op_type != "ReduceSum":
        return None
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        value = view.value(node.inputs[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return int(node.attrs.get("keepdims", 1)) if axes is not None and list(axes) == [1] else None


def _match_masked_mean(view, node, consumers, producers):
    """Div(ReduceSum(x·m, axis 1), Clip/Max(ReduceSum(m, axis 1), eps)): mean pooling over the tokens m keeps."""
    if node.op_type != "Div":
        return None
    outputs = set(view.outputs)
    total, count = producers.get(node.inputs[0]), producers.get(node.inputs[1])
    floor, eps = None, 0.0
    if count is not None and count.op_type in ("Clip", "Max"):
        eps = _scalar(view, count.inputs[1]) if len(count.inputs) > 1 else None
        floor, count = count, producers.get(count.inputs[0])
        if eps is None or (floor.op_type == "Clip" and len(floor.inputs) > 2 and floor.inputs[2]):
            return None
    keep = _sum_over_axis1(view, total)
    if keep is None or _sum_over_axis1(view, count) != keep:
        return None
    mul, mask = producers.get(total.inputs[0]), count.inputs[0]
    if mul is None or mul.op_type != "Mul" or mask not in mul.inputs or mul.inputs[0] == mul.inputs[1]:
        return None
    chain = [mul, total, count] + ([floor] if floor is not None else []) + [node]
    inner = [mul.outputs[0], total.outputs[0], count.outputs[0]] + ([floor.outputs[0]] if floor else [])
    if any(name in outputs or len(consumers.get(name, [])) != 1 for name in inner):
        return None
    x = other_input(mul, mask)
    fused = Node("MaskedMean", EDGESDK_DOMAIN, f"{node.name}_masked_mean", [x, mask], [node.outputs[0]],
                 {"epsilon": eps, "keepdims": keep})
    return chain, fused
