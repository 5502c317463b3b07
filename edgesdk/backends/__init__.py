"""The registry of backends (one per runtime format; see base.py for what a backend holds).

A built-in backend is a subpackage of edgesdk/backends whose module sets ``BACKEND`` to its class: adding one
is adding a folder. Third parties add theirs under the entry point group ``edgesdk.backends`` (name = the
backend name targets use, value = ``module:BackendClass``). Backend modules import their runtime lazily, so
loading every one to read its name and requirements is cheap."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib import metadata

from ..errors import ArtifactError, UsageError
from .base import Backend

ENTRY_POINT_GROUP = "edgesdk.backends"

_loaded: dict[str, Backend] = {}


@cache
def _builtin() -> dict[str, str]:
    """name -> 'module:BACKEND' of each subpackage."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            module = importlib.import_module(f"{__name__}.{info.name}")
            if isinstance(getattr(module, "BACKEND", None), type):
                found[module.BACKEND.name] = f"{module.__name__}:BACKEND"
    return found


def _sources() -> dict[str, object]:
    """name -> 'module:attribute' (built in) or an entry point (installed plug-ins; built-ins win a clash)."""
    found: dict[str, object] = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return found | _builtin()


def available() -> list[str]:
    return sorted(_sources())


def get_backend(name: str) -> Backend:
    if name in _loaded:
        return _loaded[name]
    source = _sources().get(name)
    if source is None:
        raise UsageError(f"unknown backend '{name}' (available: {', '.join(available())})")
    if isinstance(source, str):
        module, _, attr = source.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        try:
            cls = source.load()
        except Exception as exc:  # a broken plug-in must not take the built-ins down with it
            raise UsageError(f"backend '{name}' (entry point {source.value}) failed to load: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"backend '{name}' is not an edgesdk.backends.base.Backend subclass")
    _loaded[name] = backend = cls()
    return backend


def all_backends() -> list[Backend]:
    """Every backend that loads (a broken third-party plug-in is left out here; naming it raises)."""
    backends = []
    for name in available():
        try:
            backends.append(get_backend(name))
        except UsageError:
            continue
    return backends


def backend_for_artifact(manifest) -> Backend:
    try:
        return get_backend(manifest.backend)
    except UsageError as exc:
        raise ArtifactError(f"artifact of format '{manifest.format}': {exc}") from None


def backend_for_file(path) -> Backend:
    suffix = str(path).lower()
    for backend in all_backends():
        if any(suffix.endswith(s) for s in backend.file_suffixes):
            return backend
    known = sorted({s for b in all_backends() for s in b.file_suffixes})
    raise UsageError(f"{path}: not a model file edgesdk reads ({', '.join(known)}) nor an artifact directory")
