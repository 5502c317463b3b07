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


def add_recipe_flags(parser) -> None:
    """The recipe options every recipe takes, as flags of their own."""
    parser.add_argument("--kv-cache", choices=["float", "int8", "int4"], default=None,
                        help="causal LMs: store the KV cache as int8 or int4 codes with a scale and offset per head "
                        "and token (default: float); the same as -O kv_cache=...")
    parser.add_argument("--max-loss", type=float, default=None, metavar="LOSS",
                        help="an accuracy budget (int8, int8-dynamic): keep the layers most sensitive to quantization "
                        "float until the loss against the float model is at most LOSS — an LM's perplexity increase "
                        "(0.02 = +2 %%), else 1 - mean cosine of the outputs (0.001); needs --calib")


def recipe_options(args) -> dict:
    """The recipe options of a command line: every -O KEY=VALUE, --kv-cache and --max-loss."""
    options = parse_options(args.option)
    for key in ("kv_cache", "max_loss"):
        flag = getattr(args, key)
        if flag is None:
            continue
        if options.get(key, flag) != flag:
            raise UsageError(f"--{key.replace('_', '-')} {flag} and -O {key}={options[key]} disagree")
        options[key] = flag
    return options


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (--limit 0 or --threads -1 are refused by argparse, exit 2)."""
    import argparse

    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'")
    return int(text)
