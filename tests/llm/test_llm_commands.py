"""Causal LMs through the commands a user runs, on Gemma 3 270M with real text: convert a .gguf straight to
an int8 artifact calibrated on a text file, eval its perplexity against the float model, generate with the
KV cache, inspect its artifacts; each refusal one line with its exit code (the other recipes: test_llm_recipes.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgesdk
from edgesdk.cli import main
from edgesdk.llm.gguf_formats import FORMATS

from tests.devices.sshd_server import write_devices
from tests.helpers import module_folder
from tests.llm.checks import CALIBRATION_WINDOWS, evaluated, inspected, next_token_agreement

pytestmark = pytest.mark.heavy(350)  # seconds, about: Gemma converted to int8 and gguf, deployed, generated with


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=900)


def one_line_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


@pytest.fixture(scope="module")
def int8_artifact(gemma_graph, lm_text, tmp_path_factory):
    """int8 calibrated on a text file (tokenized with the model's own tokenizer)."""
    calibration, _ = lm_text
    quantized = edgesdk.quantize(gemma_graph, "int8", calibration=str(calibration),
                                 calibration_samples=CALIBRATION_WINDOWS)
    with module_folder(tmp_path_factory, "gemma-int8") as work:
        yield edgesdk.export(quantized, "host", work / "int8").path


@pytest.fixture(scope="module")
def deployed(sshd, gemma_gguf, tmp_path_factory):
    """The .gguf file given straight to `edgesdk deploy` (convert with its own blocks kept, then profile on
    the loopback sshd device): (the deploy's JSON, the artifact, devices.yaml)."""
    with module_folder(tmp_path_factory, "gemma-deploy") as work:  # the device's workdir too: what it was sent
        devices = write_devices(work / "devices.yaml", {"pi": sshd.device(target="rpi4", workdir=str(work / "pi"))})
        done = cli("deploy", str(gemma_gguf), "--target", "rpi4", "--device", "pi", "--recipe", "gguf", "--runs", "8",
                   "--warmup", "2", "-o", str(work / "gguf"), "--devices", str(devices), "--runs-dir",
                   str(work / "runs"), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        yield json.loads(done.stdout), work / "gguf", devices


@pytest.fixture(scope="module")
def gguf_artifact(deployed):
    return deployed[1]


def test_int8_perplexity_against_the_float_model(int8_artifact, lm_text, capsys):
    report = evaluated(capsys, int8_artifact, lm_text[1])
    assert report["tokens"] >= 8 * 100
    assert 1.0 < report["float_perplexity"] < 100.0
    assert report["perplexity_increase"] < 0.15  # int8 on a 270M model: a few percent
    assert report["next_token_agreement"] > 0.8
    assert 0.0 < report["kl_divergence"] < 0.2


def test_gguf_keeps_the_files_blocks_exactly(gguf_artifact, lm_text, capsys):
    manifest = json.loads((gguf_artifact / "manifest.json").read_text())
    kept = manifest["quantization"]["kept_exact"]
    assert kept == {"Q8_0": 10, "Q5_0": 81, "Q4_K": 27, "Q6_K": 9} and not manifest["quantization"]["widened_to_float32"]
    # Float activations: an 8-bit block weight runs as its two exact 4-bit halves (backends/ort/blockwise.py);
    # the tied table is one of the kept tensors, read by its Gather and by the output layer.
    kernels = sum(count * (2 if FORMATS[kind].bits == 8 else 1) for kind, count in kept.items())
    assert manifest["backend_info"]["ort_kernels"]["MatMulNBits"] == kernels
    report = evaluated(capsys, gguf_artifact, lm_text[1])
    # The kept weights are the float model's weights bit for bit and the activations stay float: the
    # artifact is the float model up to float rounding (the bar: perplexity within 0.1 %).
    assert abs(report["perplexity_increase"]) < 0.001 and report["next_token_agreement"] > 0.99, report


def test_deploy_to_the_ssh_device_reports_the_lm_figures(deployed):
    doc, _, _ = deployed
    lm = doc["lm"]
    assert lm["prompt_tokens"] == 32 and lm["decode_steps"] == 8 and len(lm["tokens"]) == 9
    assert lm["time_to_first_token_ms"] > 0 and lm["prefill_tokens_per_s"] > 0 and lm["decode_tokens_per_s"] > 0
    assert doc["latency_ms"]["n"] == 8 and doc["peak_rss_mb"] > 100 and doc["runtime"]["threads"] == 4  # targets/rpi4.yaml
    agreement = doc["accuracy"]["next_token"]
    assert agreement["positions"] == 128
    assert agreement["agreement_with_host"] == 1.0  # the same runtime on the same CPU: the same next tokens
    assert agreement["agreement_with_float"] > 0.95
    assert "model.onnx.data" in doc["upload"]["uploaded"] and "tokenizer/tokenizer.json" not in doc["upload"]["uploaded"]


def test_generate_on_the_ssh_device(deployed, capsys):
    _, artifact, devices = deployed
    done = cli("generate", str(artifact), "--prompt", "The json module", "--max-tokens", "8", "--device", "pi",
               "--devices", str(devices), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout)
    assert r["device"] == "pi" and r["text"].strip() and 1 <= len(r["tokens"]) <= 8
    # the host generates the same greedy tokens with the same artifact
    assert main(["generate", str(artifact), "--prompt", "The json module", "--max-tokens", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"][: len(r["tokens"])] == r["tokens"]


def test_the_manifest_carries_a_small_next_token_reference(int8_artifact):
    manifest = json.loads((int8_artifact / "manifest.json").read_text())
    lm = manifest["language_model"]
    assert lm["config"]["architecture"] == "gemma3_text" and lm["form"] == "dynamic"
    reference = manifest["files"][lm["reference_file"]]["bytes"]
    assert reference < 100_000  # top-k per position, not 262,144 logits per position
    assert manifest["accuracy"]["next_token"]["next_token_agreement"] > 0.7
    assert "tokenizer/tokenizer.json" in manifest["files"]


def test_the_tied_embedding_is_stored_once_in_the_int8_file(int8_artifact):
    manifest = json.loads((int8_artifact / "manifest.json").read_text())
    weights = sum(v["bytes"] for k, v in manifest["files"].items() if k.startswith("model.onnx"))
    floats = sum(v["bytes"] for k, v in manifest["files"].items() if k.startswith("float/"))
    # int8 of 268M parameters, 168M of them the shared table: about a quarter of fp32, not 41 %.
    assert weights < 0.30 * floats, (weights, floats)


def test_generate_with_the_kv_cache(int8_artifact, capsys):
    capsys.readouterr()
    assert main(["generate", str(int8_artifact), "--prompt", "The json module", "--max-tokens", "12",
                 "--threads", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["prompt_tokens"] == 4 and 1 <= len(r["tokens"]) <= 12 and r["text"].strip()
    assert r["decode_steps"] == len(r["tokens"]) - 1
    assert r["time_to_first_token_s"] > 0 and (r["decode_steps"] == 0 or r["decode_tokens_per_s"] > 0)


def test_inspect_and_agreement_of_the_int8_and_gguf_artifacts(int8_artifact, gguf_artifact, capsys):
    for recipe, path in {"int8": int8_artifact, "gguf": gguf_artifact}.items():
        inspected(capsys, recipe, path)
        # 126 reference positions at export; gguf keeps the float weights and activations: float rounding only
        assert next_token_agreement(path) >= {"int8": 0.7, "gguf": 0.99}[recipe], recipe


# ------------------------------------------------------------------------------------------ refusals


def test_a_truncated_gguf_is_a_one_line_error(gemma_gguf, tmp_path):
    with open(gemma_gguf, "rb") as handle:
        (tmp_path / "half.gguf").write_bytes(handle.read(4 << 20))
    done = cli("convert", str(tmp_path / "half.gguf"), "--recipe", "fp32", "-o", str(tmp_path / "out"))
    one_line_error(done, 3, "half.gguf", "not a readable GGUF")
    assert not (tmp_path / "out").exists()


def test_a_gguf_of_an_unsupported_architecture_is_named(tmp_path):
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "bert.gguf"), "bert")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    done = cli("convert", str(tmp_path / "bert.gguf"), "--recipe", "fp32", "-o", str(tmp_path / "out"))
    one_line_error(done, 3, "architecture 'bert' is not supported", "gemma3_text")


def test_a_model_that_is_not_a_language_model(minilm_artifacts, lm_text):
    _, evaluation = lm_text
    encoder = str(minilm_artifacts("int8-dynamic").path)
    for args in (["eval", encoder, "--perplexity", str(evaluation)], ["generate", encoder, "--prompt", "hello"]):
        one_line_error(cli(*args), 2, "not a language-model artifact")


def test_text_too_short_for_perplexity(int8_artifact, tmp_path):
    (tmp_path / "short.txt").write_text("Hello there.")
    one_line_error(cli("eval", str(int8_artifact), "--perplexity", str(tmp_path / "short.txt")), 4, "too short for perplexity")


def test_a_prompt_longer_than_the_context(int8_artifact, capsys):
    capsys.readouterr()  # in process: a 33,000-word prompt is longer than one command-line argument may be
    assert main(["generate", str(int8_artifact), "--prompt", "word " * 33000, "--max-tokens", "4"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "exceeds the model's context of 32768 tokens" in err, err


def test_token_ids_of_the_wrong_shape(gemma_graph, tmp_path):
    np.savez(tmp_path / "ids.npz", input_ids=np.zeros((4, 2, 3), np.int64))
    with pytest.raises(edgesdk.EdgeSDKError, match="must be integer \\[samples, tokens\\]"):
        edgesdk.quantize(gemma_graph, "int8", calibration=tmp_path / "ids.npz")


def test_the_static_form_profiles_on_a_device(gemma_hf, tmp_path):
    """The runner feeds `position` and fixed-size caches; the device's next tokens equal this host's."""
    model, tokenizer = gemma_hf
    static = edgesdk.load(model, tokenizer=tokenizer, context=80)
    artifact = edgesdk.export(edgesdk.quantize(static, "int8-dynamic"), "host", tmp_path / "static")
    assert artifact.manifest.language_model.context == 80
    devices = write_devices(tmp_path / "devices.yaml", {"here": {"transport": "local", "target": "host",
                                                                 "workdir": str(tmp_path / "wd")}})
    result = edgesdk.profile(artifact, device="here", runs=6, warmup=1, devices=devices, runs_dir=tmp_path / "runs")
    assert result.lm["decode_steps"] == 6 and result.lm["prompt_tokens"] == 32
    assert result.accuracy["next_token"]["agreement_with_host"] == 1.0
    with pytest.raises(edgesdk.EdgeSDKError, match="exceeds the model's static context of 80 tokens"):
        edgesdk.profile(artifact, device="here", runs=60, devices=devices, runs_dir=tmp_path / "runs")
