"""int8 channel groups: one tensor carried as several (``Grouped``), each a group of channels with its
own range, and the plan of which values travel that way (``channel_plan``): the residual stream and the
smoothed GELU outputs, decided from a first observation on the calibration feeds."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModelError
from .tensors import is_const, shape_of, tf

if TYPE_CHECKING:
    from .tracer import Tracer


@dataclasses.dataclass
class Grouped:
    """One int8 tensor held as several, each a group of channels (last axis) with its own range.

    Transformer residual streams carry a few outlier channels (50-200x the others in BERT-style models):
    one per-tensor int8 grid for all channels rounds the ordinary channels to a handful of levels. TFLite
    only has per-tensor activation ranges, so the residual stream (linear outputs feeding residual adds,
    the adds, the normalizations) is carried as channel groups of similar magnitude, each its own tensor
    (per-embedding-group quantization, Bondarenko et al. 2021). ``index[j]`` are the channels of
    ``parts[j]``; ops that do not take groups get them merged back (CONCATENATION + GATHER), linear layers
    take the CONCATENATION alone, their weight rows in its channel order."""

    parts: list[Any]
    index: list[np.ndarray]
    joined: Any = None  # the groups as one tensor, in group order, when the value is one (a graph QDQ point)

    @property
    def channels(self) -> int:
        return int(sum(len(i) for i in self.index))


def split(value: Any, index: list[np.ndarray]) -> list[Any]:
    """A plain value (constant, tensor or channel vector) cut into the channel groups ``index``."""
    if isinstance(value, Grouped):
        if all(np.array_equal(a, b) for a, b in zip(value.index, index)) and len(value.index) == len(index):
            return list(value.parts)
        raise ModelError("internal: channel groups that do not match")
    if is_const(value):
        if np.ndim(value) == 0 or np.shape(value)[-1] == 1:
            return [value] * len(index)
        return [np.take(value, i, axis=-1) for i in index]
    if shape_of(value)[-1] == 1:
        return [value] * len(index)
    return [tf.gather(value, i, axis=-1) for i in index]


def concatenated(value: Grouped, ranged: Callable[[Any], Any]):
    """The channel groups as one tensor, in group order. ``ranged`` gives the CONCATENATION its int8 range
    (TFLite requantizes every part to it; without one the converter would take the first part's range)."""
    return ranged(tf.concat(value.parts, -1))


def unpermute(joined: Any, index: list[np.ndarray]):
    """A tensor in group order back in the original channel order (a GATHER: ~0.1 ms at 128x384 in LiteRT,
    so a linear layer takes the groups' order in its weight rows instead)."""
    return tf.gather(joined, np.argsort(np.concatenate(index)), axis=-1)


def slices(joined: Any, index: list[np.ndarray]) -> list[Any]:
    """The groups of a tensor in group order, as slices of it."""
    bounds = np.cumsum([0] + [len(i) for i in index])
    return [joined[..., int(a) : int(b)] for a, b in itertools.pairwise(bounds)]


@dataclasses.dataclass
class ChannelPlan:
    """How int8 lowering carries channel groups (see Grouped), decided from a first observation: the
    residual stream's groups (channels by magnitude) and every value carried as groups, with its groups."""

    groups: list[np.ndarray] | None = None  # the residual stream's channel groups
    grouped_values: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)  # value -> its groups


NORMS = {"LayerNormalization", "RMSNorm", "SimplifiedLayerNormalization"}


# Channel groups: a channel's tier is how many of these its calibration max exceeds, in multiples of
# the median channel's (measured on all-MiniLM-L6-v2: 2 groups lift the simulated mean cosine from 0.81
# to 0.986; with the variance grids of ops_nn and SMOOTH_TIER 1.5, 4 groups give 0.9936 and these 6 give
# 0.9941, for ~0.3 ms; splitting the ordinary channels too, at 1.5x, adds only 0.0003).
GROUP_THRESHOLDS = (2.5, 4.0, 6.0, 10.0, 20.0, 40.0)

def channel_plan(tracer: Tracer, stats) -> ChannelPlan:
    """From a first (plain) observation: the residual stream's channel groups (from the per-channel maxima
    of every normalization's input), the values that carry them, and the smoothed GELU outputs' groups."""
    view = tracer.view
    key_of = {name: key for key, name in tracer.tap_tensor.items()}
    ratios: dict[int, list[np.ndarray]] = defaultdict(list)
    norms = [n for n in view.nodes if n.op_type in NORMS and len(n.outputs) == 1]
    for node in norms:
        observed = stats.get(key_of.get(node.inputs[0], ""))
        if observed is not None and observed.channel_absmax is not None:
            absmax = observed.channel_absmax
            ratios[len(absmax)].append(absmax / max(float(np.median(absmax)), 1e-12))
    grouped: dict[str, list[np.ndarray]] = {}
    groups = None
    if ratios:
        channels = max(ratios, key=lambda c: len(ratios[c]))
        worst = np.max(ratios[channels], axis=0)
        tier = sum((worst > t).astype(int) for t in GROUP_THRESHOLDS)
        groups = [np.flatnonzero(tier == t) for t in range(len(GROUP_THRESHOLDS) + 1) if (tier == t).any()]
    if groups is not None and len(groups) > 1:
        stack = []
        for node in norms:
            for name in (node.inputs[0], node.outputs[0]):
                if name not in tracer.pinned and name not in tracer.static:
                    grouped[name] = groups
                    stack.append(name)
        while stack:  # back through the residual adds
            producer = tracer.producers.get(stack.pop())
            if producer is None or producer.op_type != "Add":
                continue
            for name in producer.inputs:
                if name and name not in grouped and name not in tracer.static and name not in tracer.pinned:
                    grouped[name] = groups
                    stack.append(name)
    grouped.update(_smoothing_groups(tracer))
    return ChannelPlan(groups if grouped else None, grouped)


# Channels of a smoothed GELU output are grouped by their factor, in steps of this ratio (all-MiniLM-L6-v2,
# simulated, 4 residual groups: steps of 3 give 0.9922, of 2 give 0.9934, of 1.5 give 0.9936).
SMOOTH_TIER = 1.5


def _smoothing_groups(tracer: Tracer) -> dict[str, list[np.ndarray]]:
    """Linear -> (bias) -> GELU -> per-channel scale (SmoothQuant's Mul before a QDQ point): the GELU output
    is quantized before the scale multiplies it by up to ~8, so its int8 step would grow with it. Carried
    as groups of channels with similar factors, each group's range fits what the scale makes of it."""
    view, found = tracer.view, {}
    for node in view.nodes:
        if node.op_type != "Mul" or node.outputs[0] not in tracer.pinned:
            continue
        factors = [view.value(i) for i in node.inputs]
        for vec, x in ((factors[1], node.inputs[0]), (factors[0], node.inputs[1])):
            if vec is None or vec.ndim == 0 or vec.size < 2 or np.any(vec <= 0):
                continue
            chain, value = [], x
            while True:
                producer = tracer.producers.get(value)
                if producer is None or len(tracer.consumers.get(value, [])) != 1:
                    break
                chain.append(value)
                if producer.op_type == "Gelu" or (producer.op_type == "Add" and len(chain) > 1):
                    value = next(i for i in producer.inputs if i not in tracer.static)
                    continue
                break
            producer = tracer.producers.get(chain[-1]) if chain else None
            if not chain or producer is None or producer.op_type != "MatMul" or producer.inputs[1] not in tracer.static:
                continue
            if not any(tracer.producers[v].op_type == "Gelu" for v in chain):
                continue
            tier = np.floor(np.log(vec.reshape(-1) / vec.min()) / np.log(SMOOTH_TIER)).astype(int)
            groups = [np.flatnonzero(tier == t) for t in range(tier.max() + 1) if (tier == t).any()]
            if len(groups) > 1:
                found.update({v: groups for v in chain})
    return found
