"""Exporters: one lowering per runtime format, all reading the quantization parameters of the same
QDQ Graph. Each registers under the ``exporter`` name that target files use, as a module with

    FORMAT, RUNTIME                       names written to the manifest
    write(graph, target, out_dir)         -> (model path, extra manifest entries)
    runner(model_path, threads=None)      -> function(feed) -> {output: array}, to check it on this machine
"""

from __future__ import annotations

import importlib

from ..errors import UsageError

EXPORTERS = {"onnxruntime": "edgesdk.exporters.ort"}


def get_exporter(name: str):
    module = EXPORTERS.get(name)
    if module is None:
        raise UsageError(f"no exporter '{name}' yet (available: {', '.join(sorted(EXPORTERS))})")
    return importlib.import_module(module)


def exporter_for_format(fmt: str):
    for name in EXPORTERS:
        module = get_exporter(name)
        if module.FORMAT == fmt:
            return module
    raise UsageError(f"no exporter reads artifacts of format '{fmt}'")
