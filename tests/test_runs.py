"""Run records: directories written as a run goes, an SQLite index to list and compare them."""

from __future__ import annotations

import json

import pytest

from edgesdk.errors import UsageError
from edgesdk.runs import RunStore


def test_a_run_is_recorded_as_it_goes(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.start("pi-lab", "all-MiniLM-L6-v2", "/out/minilm", "rpi4", "int8")
    assert run.dir.name.endswith("-pi-lab-all-MiniLM-L6-v2")
    assert json.loads((run.dir / "run.json").read_text())["status"] == "running"
    assert store.list()[0]["status"] == "running"
    run.write_json("latencies.json", {"latencies_ms": [1.0, 2.0]})
    run.finish({"latency_ms": {"n": 2, "mean": 1.5, "p50": 1.5, "p90": 1.9, "p99": 1.99},
                "peak_rss_mb": 80.0, "accuracy": {"a": {"cosine_mean": 0.99}, "b": {"cosine_mean": 0.98}}})
    row = store.get(run.id)
    assert (row["status"], row["n"], row["p90_ms"], row["peak_rss_mb"], row["cosine_mean"]) == ("ok", 2, 1.9, 80.0, 0.98)
    assert row["summary"]["latency_ms"]["n"] == 2


def test_a_failed_run_keeps_its_files_and_error(tmp_path):
    store = RunStore(tmp_path)
    run = store.start("loop", "m", "/a")
    run.write_json("device.json", {"arch": "aarch64"})
    run.fail(RuntimeError("connection lost"))
    assert (run.dir / "device.json").exists()
    info = json.loads((run.dir / "run.json").read_text())
    assert (info["status"], info["error"]) == ("failed", "connection lost")
    assert store.get(run.id)["error"] == "connection lost"


def test_names_are_made_safe_and_unique(tmp_path):
    store = RunStore(tmp_path)
    first = store.start("dev/../x", "a model: v2", "/a")
    second = store.start("dev/../x", "a model: v2", "/a")
    assert first.id != second.id and "/" not in first.id and " " not in first.id
    assert first.dir.parent == tmp_path and second.dir.parent == tmp_path


def test_list_filters_and_unknown_run(tmp_path):
    store = RunStore(tmp_path)
    assert store.list() == []
    store.start("a", "m1", "/x")
    store.start("b", "m2", "/x")
    assert [r["device"] for r in store.list(device="b")] == ["b"]
    assert [r["model"] for r in store.list(model="m1")] == ["m1"]
    assert len(store.list(limit=1)) == 1
    with pytest.raises(UsageError, match="no run 'nope'"):
        store.get("nope")
