"""Helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys

from ..errors import UsageError


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout (no progress)")


def print_json(document) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE strings to typed values (YAML scalars: 64 -> int, true -> bool, 0.7 -> float)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option '{pair}': expected KEY=VALUE")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else None
    return options
