"""edgesdk: quantize transformers, export them for edge runtimes, deploy and measure them on devices.

The API is loaded on first use so ``import edgesdk`` (and the CLI's --help) stay fast."""

from __future__ import annotations

__all__ = ["load", "quantize", "export", "verify", "evaluate", "generate", "inspect", "profile", "deploy", "EdgeSDKError"]

from .errors import EdgeSDKError


def __getattr__(name: str):
    if name in ("load", "quantize", "export", "verify"):
        from . import api

        return getattr(api, name)
    if name in ("profile", "deploy"):
        from .devices import api as device_api

        return getattr(device_api, name)
    if name == "evaluate":
        from .llm.evaluate import evaluate

        return evaluate
    if name == "generate":
        from .llm.generate import generate

        return generate
    if name == "inspect":
        from .inspection import inspect

        return inspect
    raise AttributeError(f"module 'edgesdk' has no attribute '{name}'")
