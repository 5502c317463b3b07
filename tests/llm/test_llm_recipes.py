"""The LLM recipes on Gemma 3 270M with real text, one artifact each: weight-only int8 and int4 with its three
roundings (perplexity against the float model, side by side), the int8 KV cache (also through the device
runner), int8-dynamic; `inspect` on every artifact and each one's next-token agreement at export. The int8
and gguf artifacts are test_llm_commands.py's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import edgesdk
from edgesdk.cli import main
from edgesdk.quant.recipes import REGISTRY

from tests.helpers import module_folder
from tests.llm.checks import CALIBRATION_WINDOWS, evaluated, inspected, next_token_agreement

pytestmark = pytest.mark.heavy(520)  # seconds, about: its fixture converts six recipes

OWN = {"int8", "gguf"}  # test_llm_commands.py's artifacts


@pytest.fixture(scope="module")
def artifacts(gemma_graph, lm_text, tmp_path_factory):
    """One artifact per recipe (int4-rtn is int4 with its default rounding: the same artifact); fp32 with an
    int8 KV cache, so its loss is the cache's alone."""
    calibration, _ = lm_text
    made = {}
    with module_folder(tmp_path_factory, "gemma-recipes") as work:
        for recipe in sorted(set(REGISTRY) - OWN - {"int4-rtn"}):
            options = {"calibration_samples": CALIBRATION_WINDOWS} if REGISTRY[recipe].needs_calibration else {}
            if recipe == "fp32":
                options["kv_cache"] = "int8"
            quantized = edgesdk.quantize(gemma_graph, recipe, calibration=str(calibration), **options)
            made[recipe] = edgesdk.export(quantized, "host", work / recipe).path
            share_float_copy(next(iter(made.values())), made[recipe])
        made["int4-rtn"] = made["int4"]
        yield made


def share_float_copy(first: Path, other: Path) -> None:
    """other's float model files hard links to first's where the manifests give them the same sha256: six
    copies of one 1.1 GB float model filled CI's disk."""
    theirs, ours = (json.loads((p / "manifest.json").read_text())["files"] for p in (first, other))
    for name, entry in ours.items():
        if other != first and name.startswith("float/") and theirs.get(name, {}).get("sha256") == entry["sha256"]:
            (other / name).unlink()
            os.link(first / name, other / name)


def test_weight_only_recipes_perplexity(artifacts, lm_text, capsys):
    recipes = ("int8-weights", "int4-rtn", "int4-awq", "int4-gptq")
    capsys.readouterr()  # one eval of the four side by side: the float model runs once per window for all
    assert main(["eval", *(str(artifacts[r]) for r in recipes), "--perplexity", str(lm_text[1]), "--window", "128",
                 "--max-windows", "8", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["artifact"] for r in reports] == [str(artifacts[r]) for r in recipes]
    assert len({r["float_perplexity"] for r in reports}) == 1
    increase = {recipe: r["perplexity_increase"] for recipe, r in zip(recipes, reports)}
    # benchmarks/llm.py on 2040 held-out tokens in windows of 256: int8-weights +0.21 % (the bar is
    # +0.5 %), int4 +54.0 % (rtn), +25.7 % (awq), +17.6 % (gptq). Here, 8 windows of 128 tokens (less
    # context, so every error weighs more; 4 windows gave int8-weights +2.2 %, too few tokens to judge) and
    # 16 calibration windows: measured +0.62 %, +63.9 %, +22.8 %, +27.9 %. Each calibrated int4 must beat
    # plain rounding clearly.
    assert increase["int8-weights"] < 0.01, increase
    assert increase["int4-awq"] < 0.8 * increase["int4-rtn"], increase
    assert increase["int4-gptq"] < 0.8 * increase["int4-rtn"], increase


def test_the_int8_kv_cache_costs_little_and_runs_in_the_device_runner(artifacts, lm_text, capsys, tmp_path):
    artifact = artifacts["fp32"]  # float weights and activations: what is lost is the cache's
    report = evaluated(capsys, artifact, lm_text[1])
    # `edgesdk eval` on 2040 tokens of the artifact converted from the .gguf: +0.16 % (the bar +0.5 %);
    # on these 8 windows of 128 tokens that artifact measured -0.21 % (agreement 0.969): the bar is on its size
    assert abs(report["perplexity_increase"]) < 0.005 and report["next_token_agreement"] > 0.9, report
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["language_model"]["kv_cache"] == "int8"
    assert {i["name"]: i["dtype"] for i in manifest["inputs"]}["past.3.value"] == "uint8"
    # the device runner feeds the codes and scales back step by step (the local device runs it as a board does)
    capsys.readouterr()
    assert main(["profile", str(artifact), "--device", "local", "--runs", "4", "--warmup", "1",
                 "--runs-dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lm"]["decode_steps"] == 4 and doc["accuracy"]["next_token"]["agreement_with_host"] == 1.0


def test_inspect_reads_every_recipes_artifact(artifacts, capsys):
    for recipe, path in artifacts.items():
        inspected(capsys, recipe, path)


def test_each_recipe_keeps_next_token_agreement(artifacts):
    for recipe, path in artifacts.items():
        # 126 reference positions at export; fp32 has the int8 KV cache
        floor = {"fp32": 0.9, "int8-dynamic": 0.7, "int8-weights": 0.85, "int4": 0.5, "int4-rtn": 0.5,
                 "int4-awq": 0.5, "int4-gptq": 0.5}[recipe]
        agreement = next_token_agreement(path)
        assert agreement >= floor, (recipe, agreement, floor)
