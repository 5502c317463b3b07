"""The runner's host side: template rendering, progress lines, its JSON document, latency statistics."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgesdk.backends import get_backend
from edgesdk.devices import runner
from edgesdk.errors import MissingRuntimeError, RunnerError
from edgesdk.targets import load_target


def document(**overrides) -> str:
    doc = {"ok": True, "protocol": runner.PROTOCOL, "latencies_ms": [3.0, 1.0, 2.0], "peak_rss_mb": 50.0,
           "outputs": ["y"], "warmup": 1}
    doc.update(overrides)
    return json.dumps(doc)


def test_render_bakes_in_the_targets_threads_and_is_valid_python():
    text = runner.render("ort_runner.py.j2", load_target("rpi4"))
    assert "DEFAULT_THREADS = 4" in text and "target 'rpi4'" in text
    compile(text, "ort_runner.py", "exec")


def test_a_runner_folder_is_named_by_its_content():
    backend = get_backend("onnxruntime")
    one, same = backend.device_runner(load_target("rpi4"), {}), backend.device_runner(load_target("rpi4"), {})
    other = backend.device_runner(load_target("host"), {})  # another thread count baked in
    assert one.digest == same.digest != other.digest


def test_runner_argv_fills_in_the_placeholders():
    argv = runner.runner_argv(("{python}", "{dir}/ort_runner.py"), "/usr/bin/python3", "/wd/runners/x", "/wd/a", "/wd/o.npz",
                              5, 1, 4, None)
    assert argv[:2] == ["/usr/bin/python3", "/wd/runners/x/ort_runner.py"]
    assert argv[2:] == ["--artifact", "/wd/a", "--outputs", "/wd/o.npz", "--runs", "5", "--warmup", "1", "--threads", "4",
                        "--budget", "0"]


def test_render_unknown_template():
    with pytest.raises(Exception, match="runner template nothing.j2 not found"):
        runner.render("nothing.j2", load_target("host"))


def test_rendered_runner_reports_a_missing_runtime_as_json(tmp_path):
    """Run under `python -S -I` (no site-packages, so no numpy/onnxruntime), as on a bare device."""
    script = tmp_path / "runner.py"
    script.write_text(runner.render("ort_runner.py.j2", load_target("host")))
    done = subprocess.run([sys.executable, "-S", "-I", str(script), "--artifact", str(tmp_path), "--outputs",
                           str(tmp_path / "o.npz")], capture_output=True, text=True)
    assert done.returncode == 3
    with pytest.raises(MissingRuntimeError, match="cannot import numpy"):
        runner.parse_output(done.stdout, done.stderr, done.returncode)


def test_parse_output_picks_the_json_line_after_noise():
    parsed = runner.parse_output("some library banner\n" + document() + "\n", "", 0)
    assert parsed["latencies_ms"] == [3.0, 1.0, 2.0]


@pytest.mark.parametrize("stdout, code, error", [
    ("", 1, r"printed no result \(exit 1\): Traceback"),
    ("{not json\n", 0, "printed no result"),
    (document(protocol=99), 0, "protocol 99"),
    (document(ok=False, error={"kind": "bad-artifact", "message": "model.onnx does not match its sha256"}), 4,
     r"failed \(bad-artifact\): model.onnx does not match"),
    (document(latencies_ms=[]), 0, "no latencies"),
    (document(latencies_ms=["fast"]), 0, "no latencies"),
    (document(), 2, "exited with 2"),
])
def test_parse_output_errors(stdout, code, error):
    with pytest.raises(RunnerError, match=error):
        runner.parse_output(stdout, "Traceback (most recent call last):\n  boom", code)


def test_parse_progress():
    assert runner.parse_progress("edgesdk-progress run 5 100") == ("run", 5, 100)
    assert runner.parse_progress("edgesdk-progress warmup 1 10") == ("warmup", 1, 10)
    assert runner.parse_progress("edgesdk-progress run five 100") is None
    assert runner.parse_progress("2026-01-01 W onnxruntime: something") is None


def test_latency_stats_are_ordered_and_exact_on_known_samples():
    stats = runner.LatencyStats.of([float(x) for x in range(1, 101)])  # 1..100 ms
    assert stats.n == 100 and stats.min == 1 and stats.max == 100 and stats.mean == pytest.approx(50.5)
    assert stats.p50 == pytest.approx(50.5) and stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)
    assert stats.std == pytest.approx(np.std(np.arange(1, 101)))
    assert stats.p90_ms == stats.p90
    one = runner.LatencyStats.of([7.0])
    assert one.to_json() == {"n": 1, "mean": 7.0, "std": 0.0, "min": 7.0, "p50": 7.0, "p90": 7.0, "p99": 7.0, "max": 7.0}
    with pytest.raises(ValueError):
        runner.LatencyStats.of([])


def test_read_outputs(tmp_path):
    np.savez(tmp_path / "o.npz", s0_o0=np.ones(3), s0_o1=np.zeros(2), s1_o0=np.ones(3) * 2, s1_o1=np.zeros(2))
    got = runner.read_outputs(tmp_path / "o.npz", ["a", "b"], 2)
    assert [sorted(g) for g in got] == [["a", "b"], ["a", "b"]] and got[1]["a"][0] == 2
    with pytest.raises(RunnerError, match="incomplete"):
        runner.read_outputs(tmp_path / "o.npz", ["a", "b"], 3)
