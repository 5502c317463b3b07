"""Observe activations: run the float graph on calibration feeds and feed the tensors a pass names to its
observers (quant/observers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import onnx_ir as ir

from .. import progress
from ..calibration import CalibrationData
from ..graph import Graph
from ..runtime import WeightFedSession
from .observers import Observer, Ranges
from .patterns import linears

# Observers of one calibration run hold at most this much; more (a Gram matrix per linear of a 0.5B model
# is ~2 GB) are observed in several runs over the same data.
OBSERVER_BYTES = 1 << 30


def collect(
    graph: Graph,
    names: list[str],
    data: CalibrationData,
    limit: int | None = None,
    observer: Callable[[], Observer] = Ranges,
    budget: int = OBSERVER_BYTES,
) -> dict[str, Observer]:
    """Run ``graph`` on ``data`` exposing the tensors ``names``; return one ``observer()`` per tensor that
    has seen all of them."""
    observed: dict[str, Observer] = {}
    for group in collect_in_groups(graph, names, data, limit, observer, budget):
        observed.update(group)
    return observed


def collect_in_groups(
    graph: Graph,
    names: list[str],
    data: CalibrationData,
    limit: int | None = None,
    observer: Callable[[], Observer] = Ranges,
    budget: int = OBSERVER_BYTES,
) -> Iterator[dict[str, Observer]]:
    """As ``collect``, one group of tensors (in the order given) at a time, each group's observers within
    ``budget``: a pass can use a group and let it go before the next is observed (GPTQ's Hessians), and
    the next group is observed on the graph as that pass left it."""
    total = min(len(data), limit) if limit else len(data)
    groups = _groups(graph, names, observer, budget) if names else []  # nothing to observe: no run at all
    for index, group in enumerate(groups):
        observers = {name: observer() for name in group}
        # The weights are fed from the graph's own arrays: a language model's are not held twice.
        session = WeightFedSession(graph, outputs=group)
        label = "calibrating" if len(groups) == 1 else f"calibrating ({index + 1}/{len(groups)})"
        for feed in progress.track(data.feeds(graph, limit), label, total=total):
            for name, array in zip(group, session.run(group, feed)):
                observers[name].observe(array)
        del session
        yield observers


def _groups(graph: Graph, names: list[str], observer: Callable[[], Observer], budget: int) -> list[list[str]]:
    """The names in runs whose observers' estimated memory stays within ``budget`` (one name at least)."""
    channels = _channels(graph)
    probe = observer()
    groups: list[list[str]] = [[]]
    used = 0
    for name in names:
        size = probe.estimated_bytes(channels.get(name, 1))
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += size
    return groups


def _channels(graph: Graph) -> dict[str, int]:
    """Channels (last dimension) per tensor name: from the inferred shapes, and, where a graph carries
    none (the causal-LM builder's), the input size of the linear layers that read a tensor."""
    channels = {name: value.shape[-1] for name, value in ir.convenience.create_value_mapping(graph.model.graph).items()
                if value.shape is not None and len(value.shape) and isinstance(value.shape[-1], int)}
    for linear in linears(graph.model.graph):
        channels.setdefault(linear.activation.name, linear.weight.shape[linear.input_axis])
    return channels
