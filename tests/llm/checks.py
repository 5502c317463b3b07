"""What the LLM command tests check on an artifact, shared by test_llm_commands.py and test_llm_recipes.py."""

from __future__ import annotations

import json
from pathlib import Path

from edgesdk.cli import main

CALIBRATION_WINDOWS = 16


def evaluated(capsys, artifact, text) -> dict:
    capsys.readouterr()
    assert main(["eval", str(artifact), "--perplexity", str(text), "--window", "128", "--max-windows", "8", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def inspected(capsys, recipe: str, path: Path) -> None:
    """`inspect` (JSON and text) on a Gemma artifact: its layers, and the KV cache's dtype (fp32 here carries
    the int8 cache)."""
    capsys.readouterr()
    assert main(["inspect", str(path), "--json"]) == 0, recipe
    report = json.loads(capsys.readouterr().out)
    assert report["language_model"]["config"]["layers"] == 18
    cache = "uint8" if recipe == "fp32" else "float32"
    dtypes = {o["name"]: o["dtype"] for o in report["outputs"]}
    assert dtypes["logits"] == "float32" and dtypes["present.7.value"] == cache, (recipe, dtypes)
    assert main(["inspect", str(path)]) == 0
    assert "past.N.key (18 tensors, N = layer)" in capsys.readouterr().out


def next_token_agreement(path: Path) -> float:
    """The agreement with the float model on the reference windows, measured at export."""
    return json.loads((path / "manifest.json").read_text())["accuracy"]["next_token"]["next_token_agreement"]
