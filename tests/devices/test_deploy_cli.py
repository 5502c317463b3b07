"""The device commands end to end: deploy (convert + push + profile) of all-MiniLM-L6-v2 int8 to the loopback
SSH device and to the local device, profile, devices, runs; and every refusal as a one-line message with a
non-zero exit and no traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgesdk.artifact import Artifact
from edgesdk.cli import main
from edgesdk.metrics import compare
from edgesdk.runtime import ort_session, run

from tests.devices.sshd_server import free_port, keygen, write_devices

RUNS = 10


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=600)


def check_profile_json(doc: dict, device: str, runs: int) -> None:
    lat = doc["latency_ms"]
    assert doc["device"] == device
    assert set(lat) == {"n", "mean", "std", "min", "p50", "p90", "p99", "max"} and lat["n"] == runs
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert doc["peak_rss_mb"] > 20
    # The host's verification of the same reference inputs, run here with the target's one thread.
    artifact = Artifact.load(doc["artifact"])
    feeds, expected = artifact.reference()
    session = ort_session(artifact.model_path, threads=1)
    host = compare([run(session, f) for f in feeds], expected)["sentence_embedding"]
    on_device = doc["accuracy"]["sentence_embedding"]
    assert {"cosine_mean", "max_abs_error"} <= set(on_device)
    assert on_device["cosine_mean"] == pytest.approx(host["cosine_mean"], abs=1e-6)
    assert on_device["cosine_mean"] == pytest.approx(doc["host_accuracy"]["sentence_embedding"]["cosine_mean"], abs=1e-6)
    assert on_device["cosine_mean"] > 0.99


@pytest.mark.parametrize("where", ["loop", "local"])
def test_deploy_minilm_int8(where, minilm_onnx, minilm_data, devices_file, tmp_path, capsys):
    """--device loop: the sshd device. --target host without --device: the local device."""
    calib, _ = minilm_data
    device_args = ["--device", "loop"] if where == "loop" else []
    code = main(["deploy", str(minilm_onnx), "--target", "host", *device_args, "--recipe", "int8", "--calib", str(calib),
                 "--runs", str(RUNS), "--warmup", "2", "-o", str(tmp_path / "art"), "--devices", str(devices_file),
                 "--runs-dir", str(tmp_path / "runs"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    check_profile_json(doc, where, RUNS)
    assert doc["recipe"] == "int8" and doc["artifact"] == str(tmp_path / "art")
    assert "model.onnx" in doc["upload"]["uploaded"] or "model.onnx" in doc["upload"]["skipped"]

    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"]
    assert (row["id"], row["status"], row["n"]) == (doc["run_id"], "ok", RUNS)


def test_profile_human_output_and_runs_compare(int8_artifact, devices_file, tmp_path, capsys):
    runs_dir = str(tmp_path / "runs")
    for device in ("loop", "local"):
        assert main(["profile", str(int8_artifact.path), "--device", device, "--runs", "5", "--warmup", "1",
                     "--devices", str(devices_file), "--runs-dir", runs_dir]) == 0
        text = capsys.readouterr().out
        assert "latency (ms)" in text and "p90" in text and "peak RSS" in text and "sentence_embedding" in text
    assert main(["runs", "--runs-dir", runs_dir, "--json"]) == 0
    ids = [r["id"] for r in json.loads(capsys.readouterr().out)["runs"]]
    assert len(ids) == 2
    assert main(["runs", "--runs-dir", runs_dir, "compare", *ids, "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)["runs"]
    assert compared[0]["p50_vs_first"] == 1.0 and compared[1]["p50_vs_first"] > 0
    assert main(["runs", "--runs-dir", runs_dir, "show", ids[0]]) == 0
    assert ids[0] in capsys.readouterr().out
    assert main(["runs", "--runs-dir", runs_dir, "show", "nope"]) == 2


def test_devices_list_and_check(devices_file, capsys):
    assert main(["devices", "list", "--devices", str(devices_file), "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    assert listed["loop"]["transport"] == "ssh" and listed["local"]["transport"] == "local"
    assert main(["devices", "check", "--devices", str(devices_file), "--json"]) == 0
    checked = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    assert checked["loop"]["ok"] and checked["loop"]["host_key"] == "ok" and checked["loop"]["arch"]
    assert checked["local"]["ok"]
    assert main(["devices", "check", "loop", "--devices", str(devices_file)]) == 0
    assert "loop" in capsys.readouterr().out


# -- refusals: one clear line on stderr, non-zero exit, nothing run -----------------------------------

@pytest.fixture
def refusal_inventory(sshd, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    other_host = keygen(tmp_path / "other_host")
    kind, blob = Path(f"{other_host}.pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return write_devices(tmp_path / "devices.yaml", {
        "unknown-key": sshd.device(known_hosts=str(empty)),
        "changed-key": sshd.device(known_hosts=str(changed)),
        "wrong-client-key": sshd.device(key=str(stranger)),
        "closed-port": sshd.device(port=free_port()),
        "no-runtime": sshd.device(python=str(bare / "bin" / "python")),
    }), bare


@pytest.mark.parametrize("device, code, message", [
    ("unknown-key", 8, r"offered a host key not in .* refused under host_key_policy strict"),
    ("changed-key", 8, r"offered a host key that DIFFERS from the one in .*ssh-keygen -R"),
    ("wrong-client-key", 8, r"refused authentication with key .*stranger"),
    ("closed-port", 7, r"is unreachable"),
    ("no-runtime", 7, r"lacks onnxruntime and numpy .* install on the device with: .*/bare/bin/python -m pip install onnxruntime numpy"),
    ("nope", 2, r"unknown device 'nope' in .*devices.yaml; known: unknown-key"),
])
def test_profile_refusals(device, code, message, refusal_inventory, int8_artifact, tmp_path, capsys):
    devices, _ = refusal_inventory
    got = main(["profile", str(int8_artifact.path), "--device", device, "--runs", "2", "--devices", str(devices),
                "--runs-dir", str(tmp_path / "runs"), "--json"])
    err = capsys.readouterr().err
    assert got == code
    assert err.startswith("edgesdk: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_refusal_in_a_real_process_has_no_traceback(refusal_inventory, int8_artifact, tmp_path):
    devices, _ = refusal_inventory
    done = cli("profile", str(int8_artifact.path), "--device", "unknown-key", "--devices", str(devices),
               "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 8 and "Traceback" not in done.stderr and "refused under host_key_policy strict" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("entry_yaml, message", [
    ("  'pi;touch {marker}':\n    target: host\n    host: 127.0.0.1\n", r"devices.yaml:2: device 'pi;touch .*', key 'name'"),
    ("  pi:\n    target: host\n    host: 127.0.0.1\n    workdir: /tmp/$(touch {marker})\n",
     r"devices.yaml:5: device 'pi', key 'workdir': .*shell metacharacters"),
    ("  pi:\n    target: host\n    host: 127.0.0.1\n    python: 'python3; touch {marker}'\n",
     r"devices.yaml:5: device 'pi', key 'python': .*shell metacharacters"),
])
def test_shell_metacharacters_are_refused_and_nothing_runs(entry_yaml, message, int8_artifact, tmp_path, capsys):
    marker = tmp_path / "pwned"
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n" + entry_yaml.format(marker=marker))
    for command in (["profile", str(int8_artifact.path), "--device", "pi"], ["devices", "check"], ["devices", "list"]):
        assert main([*command, "--devices", str(devices), "--runs-dir", str(tmp_path / "runs")] if command[0] == "profile"
                    else [*command, "--devices", str(devices)]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # refused before a run was even recorded


def test_malformed_devices_yaml_names_line_and_key(tmp_path, capsys):
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  pi:\n    target: rpi4\n    host: 10.0.0.2\n    port: 22x\n")
    assert main(["devices", "list", "--devices", str(devices)]) == 2
    assert f"{devices}:5: device 'pi', key 'port': Input should be a valid integer" in capsys.readouterr().err
    devices.write_text("devices:\n  pi:\n    target: rpi4\n    host: [unclosed\n")
    assert main(["devices", "check", "--devices", str(devices)]) == 2
    assert f"{devices}:5: not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at line 4)" in capsys.readouterr().err


def test_deploy_refusals_happen_before_converting(devices_file, tmp_path, capsys):
    # A device of another target, and a target with no device: both refused without loading any model.
    assert main(["deploy", "does-not-exist.onnx", "--target", "rpi4", "--device", "loop", "--devices", str(devices_file)]) == 2
    assert "device 'loop' is a 'host' device, not 'rpi4'" in capsys.readouterr().err
    assert main(["deploy", "does-not-exist.onnx", "--target", "rpi4", "--devices", str(devices_file)]) == 2
    assert "no device with target 'rpi4'" in capsys.readouterr().err
    assert main(["deploy", "does-not-exist.onnx", "--target", "host", "--runs", "0", "--devices", str(devices_file)]) == 2
    assert "--runs must be >= 1" in capsys.readouterr().err
