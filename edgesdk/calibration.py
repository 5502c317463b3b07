"""Calibration and evaluation data: feeds for the model, one sample at a time.

Sources: an ``.npz`` file with one array per model input (first axis = samples), a mapping of the same,
or any iterable of feed dicts. Every sample is checked against the model's inputs before use, so a
wrong file fails at once with the input, the expected and the found dtype/shape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import CalibrationError
from .graph import TensorSpec

Feed = dict[str, np.ndarray]


class HasInputs(Protocol):
    """A Graph, or an Artifact (whose manifest lists the inputs without loading the model)."""

    @property
    def inputs(self) -> list[TensorSpec]: ...


class CalibrationData:
    """A list of feeds, each with the batch axis the model expects."""

    def __init__(self, samples: list[Mapping[str, np.ndarray]], origin: str = "data"):
        self.origin = origin
        self._raw = [dict(s) for s in samples]
        if not self._raw:
            raise CalibrationError(f"{origin}: holds no samples")

    @classmethod
    def from_npz(cls, path: str | Path) -> CalibrationData:
        path = Path(path).expanduser()
        if not path.exists():
            raise CalibrationError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise CalibrationError(f"{path}: not a readable .npz file: {exc}") from None
        return cls.from_arrays(arrays, origin=str(path))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], origin: str = "arrays") -> CalibrationData:
        if not arrays:
            raise CalibrationError(f"{origin}: holds no arrays")
        counts = {k: (np.asarray(a).shape[0] if np.ndim(a) else 0) for k, a in arrays.items()}
        if len(set(counts.values())) != 1:
            raise CalibrationError(f"{origin}: arrays disagree on the number of samples (first axis): {counts}")
        n = next(iter(counts.values()))
        samples = [{k: _SampleRow(np.asarray(a), i) for k, a in arrays.items()} for i in range(n)]
        return cls(samples, origin)

    @classmethod
    def coerce(cls, data: Any, origin: str = "data") -> CalibrationData:
        if isinstance(data, CalibrationData):
            return data
        if isinstance(data, (str, Path)):
            return cls.from_npz(data)
        if isinstance(data, Mapping):
            return cls.from_arrays(data, origin)
        if isinstance(data, Iterable):
            return cls(list(data), origin)
        raise CalibrationError(f"cannot use {type(data).__name__} as data: give an .npz path, a dict of arrays or feeds")

    def __len__(self) -> int:
        return len(self._raw)

    def feeds(self, model: HasInputs, limit: int | None = None) -> Iterator[Feed]:
        """Feeds checked and shaped for ``model``'s inputs; the first bad sample raises CalibrationError."""
        specs = model.inputs
        names = {s.name for s in specs}
        for index, raw in enumerate(self._raw[:limit]):
            extra = sorted(set(raw) - names)
            if extra and not names - set(raw):  # a missing input is the more useful message; _shaped gives it
                raise CalibrationError(f"{self.origin}: has arrays the model has no input for: {extra} (model inputs: {sorted(names)})")
            yield {spec.name: _shaped(spec, raw, index, self.origin) for spec in specs}

    def validate(self, model: HasInputs) -> None:
        for _ in self.feeds(model):
            pass

    def split(self, count: int) -> tuple[CalibrationData, CalibrationData | None]:
        """The first ``count`` samples and the rest (None when nothing is left)."""
        head, tail = self._raw[:count], self._raw[count:]
        return CalibrationData(head, self.origin), (CalibrationData(tail, self.origin) if tail else None)


class _SampleRow:
    """Sample ``index`` of an array whose first axis is samples; marks that the batch axis was consumed."""

    __slots__ = ("array", "index")

    def __init__(self, array: np.ndarray, index: int):
        self.array, self.index = array, index


def _shaped(spec: TensorSpec, raw: Mapping[str, Any], index: int, origin: str) -> np.ndarray:
    if spec.name not in raw:
        raise CalibrationError(
            f"{origin}: missing an array for model input '{spec.name}' ({spec.dtype}{list(spec.shape)}); it has {sorted(raw)}"
        )
    value = raw[spec.name]
    rank = len(spec.shape)
    if isinstance(value, _SampleRow):
        row = value.array[value.index]
        # An npz row lost the sample axis; give back a batch axis of 1 when the model has one more axis.
        arr = row[None, ...] if row.ndim == rank - 1 else row
    else:
        arr = np.asarray(value)
    if arr.ndim != rank:
        raise CalibrationError(
            f"{origin}: sample {index} of '{spec.name}' has shape {list(arr.shape)}, "
            f"the model expects rank {rank} {list(spec.shape)}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
        if isinstance(want, int) and want != got:
            raise CalibrationError(
                f"{origin}: sample {index} of '{spec.name}' has shape {list(arr.shape)}, "
                f"the model expects {list(spec.shape)} (axis {axis} must be {want})"
            )
    want_dtype = np.dtype(spec.dtype) if spec.dtype in np.sctypeDict else None
    if want_dtype is not None and arr.dtype != want_dtype:
        same_kind = np.can_cast(arr.dtype, want_dtype, casting="same_kind") and arr.dtype.kind == want_dtype.kind
        if not same_kind:
            raise CalibrationError(
                f"{origin}: '{spec.name}' is {arr.dtype}, the model expects {want_dtype}"
            )
        arr = arr.astype(want_dtype)
    return arr
