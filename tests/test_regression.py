"""`edgesdk runs compare BASE NEW --fail-on-regression PCT` on real runs (the MLP at fp32 and int8 on the local
device): a run against itself passes, a worse figure exits 11 naming it, in the store or as saved folders."""

from __future__ import annotations

import json
import shutil

import pytest

import edgesdk
from edgesdk.cli import main
from edgesdk.errors import UsageError
from edgesdk.regression import compare, figures, parse_threshold
from tests.helpers import mlp_artifacts, module_folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(runs dir, fp32 result, int8 result)."""
    with module_folder(tmp_path_factory, "regression") as base:
        yield base / "runs", *(edgesdk.profile(artifact.path, device="local", runs=50, warmup=2, runs_dir=base / "runs")
                                for artifact in mlp_artifacts(base, ("fp32", "int8")).values())


def summary(result) -> dict:
    return json.loads((result.run_dir / "summary.json").read_text())


def test_a_run_against_itself_passes(runs, capsys):
    root, _, int8 = runs
    assert main(["runs", "--runs-dir", str(root), "compare", int8.run_id, int8.run_id,
                 "--fail-on-regression", "0%", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["regressions"] == [] and document["threshold"] == 0
    assert {c["metric"] for c in document["runs"][1]["changes"]} == {"p50 latency", "accuracy"}
    assert all(c["worse_by"] == 0 for c in document["runs"][1]["changes"])


def test_lower_accuracy_than_the_base_fails_with_exit_11(runs, capsys):
    root, fp32, int8 = runs
    drop = fp32.cosine - int8.cosine
    assert drop > 0  # int8 against its own float model
    args = ["runs", "--runs-dir", str(root), "compare", fp32.run_id, int8.run_id, "--fail-on-regression", "1000%"]
    assert main(args + ["--max-accuracy-drop", f"{drop * 2}"]) == 0  # within both limits (latency too: 10x)
    capsys.readouterr()
    assert main(args + ["--max-accuracy-drop", f"{drop / 2}"]) == 11
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{int8.run_id}: accuracy" in err


def test_a_slower_run_fails_by_its_relative_latency(runs):
    _, fp32, int8 = runs
    slow, fast = sorted((fp32, int8), key=lambda r: r.latency.p50, reverse=True)
    worse_by = slow.latency.p50 / fast.latency.p50 - 1
    changes = {c.metric: c for c in compare(summary(fast), summary(slow), threshold=worse_by / 2)}
    assert changes["p50 latency"].regressed and changes["p50 latency"].worse_by == pytest.approx(worse_by)
    changes = {c.metric: c for c in compare(summary(fast), summary(slow), threshold=worse_by * 2)}
    assert not changes["p50 latency"].regressed


def test_saved_run_folders_compare_without_the_index(runs, tmp_path, capsys):
    _, fp32, int8 = runs
    saved = shutil.copytree(int8.run_dir, tmp_path / "baseline" / int8.run_id)  # a CI job's kept baseline
    assert main(["runs", "--runs-dir", str(tmp_path / "elsewhere"), "compare", str(saved), str(int8.run_dir),
                 "--fail-on-regression", "0%", "--json"]) == 0
    assert figures(summary(int8))["accuracy"] == pytest.approx(int8.cosine)
    assert "energy per inference" not in figures(summary(fp32))  # not measured: not compared


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("12.5", 0.125), (" 0% ", 0.0)])
def test_thresholds(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-1%", "%", "nan"])
def test_a_bad_threshold_is_a_usage_error(text, runs, capsys):
    with pytest.raises(UsageError):
        parse_threshold(text)
    root, fp32, int8 = runs
    assert main(["runs", "--runs-dir", str(root), "compare", fp32.run_id, int8.run_id,
                 f"--fail-on-regression={text}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
