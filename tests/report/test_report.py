"""`edgesdk report` end to end: real runs (the local device, with the emulated board's power supply playing a
known profile for a RAPL sensor) made into one HTML file, opened in a real headless Chromium (Debian's, driven
by Playwright): it renders with no console error and no request leaving the file, and its charts are there."""

from __future__ import annotations

import json
import shutil

import pytest

import edgesdk
from edgesdk.cli import main
from tests.devices.sshd_server import write_devices
from tests.helpers import mlp_artifacts, module_folder
from tests.power.profile_player import ProfilePlayer, sensor_configs
from tests.power.stand_in import matmul_artifact

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(runs dir, [fp32 run, int8 run] results, int8 artifact): both runs with power on the local device."""
    with module_folder(tmp_path_factory, "report") as base:
        workdir = base / "device-workdir"
        player = ProfilePlayer(base / "board", marker=str(workdir), idle_w=2.0, busy_w=6.5).start()
        try:
            power = {**sensor_configs(player)["rapl"], "idle_s": 0.5, "rate_hz": 20}
            devices = write_devices(base / "devices.yaml", {"bench": {"transport": "local", "target": "host",
                                                                      "workdir": str(workdir), "power": power}})
            artifacts = mlp_artifacts(base, ("fp32", "int8"))
            results = [edgesdk.profile(a.path, device="bench", devices=devices, runs=300, warmup=5,
                                       runs_dir=base / "runs", power=True) for a in artifacts.values()]
            artifact = artifacts["int8"]
            stand_in = matmul_artifact(base / "matmul", layers=2, width=128, tokens=32)
            yield base / "runs", results, artifact, stand_in
        finally:
            player.stop()


def open_in_chromium(page_path):
    """(console errors, requests other than the file itself, {css selector: count}, the summary table's text,
    the runs the first histogram's bars hold) of the rendered page."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is missing: make system-deps installs Debian's chromium"
    errors, requests = [], []
    selectors = ["svg", "svg#latency-histogram-0 rect.bar", "svg#latency-cdf-0 polyline.series",
                 "svg#latency-cdf-0 line.rule", "svg#power-0 polyline.series", "svg#power-0 rect.band",
                 "svg#power-1 polyline.series", "svg#latency-cdf-all polyline.series",
                 "svg#pareto-size-0 circle.point", "svg#pareto-latency-0 circle.point", "circle.frontier",
                 "table#summary tr", "span.emulated", "script"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda request: requests.append(request.url)
                    if request.url != page_path.as_uri() else None)
            page.goto(page_path.as_uri(), wait_until="load")
            counts = {selector: page.locator(selector).count() for selector in selectors}
            summary_text = page.locator("table#summary").inner_text()
            bars = page.locator("svg#latency-histogram-0 rect.bar")
            histogram_total = sum(int(bars.nth(i).get_attribute("data-count")) for i in range(bars.count()))
        finally:
            browser.close()
    return errors, requests, counts, summary_text, histogram_total


def test_the_report_renders_in_chromium_with_its_charts(measured, tmp_path, capsys):
    runs, results, artifact, _ = measured
    out = tmp_path / "report.html"
    code = main(["report", str(results[0].run_dir), results[1].run_id, str(artifact.path), "--runs-dir", str(runs),
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    errors, requests, counts, summary, histogram_total = open_in_chromium(out)
    assert errors == [] and requests == []
    assert counts["script"] == 0  # nothing runs: the charts are inline SVG
    assert counts["svg#latency-histogram-0 rect.bar"] >= 2 and histogram_total == 300  # every timed run in a bar
    assert counts["svg#latency-cdf-0 polyline.series"] == 1 and counts["svg#latency-cdf-0 line.rule"] == 3  # p50/p90/p99
    assert counts["svg#power-0 polyline.series"] >= 1 and counts["svg#power-0 rect.band"] == 1  # the timed window
    assert counts["svg#power-1 polyline.series"] >= 1
    assert counts["svg#latency-cdf-all polyline.series"] == 2  # both runs on one CDF
    assert counts["svg#pareto-size-0 circle.point"] == 3 and counts["svg#pareto-latency-0 circle.point"] == 2
    assert counts["circle.frontier"] >= 2
    assert counts["table#summary tr"] == 4 and counts["span.emulated"] == 0
    for result in results:  # the measured energy per inference, as the run recorded it
        assert f"{result.power['energy_per_inference_mj']:.3f}" in summary
        assert f"{result.latency.p50:.3f}" in summary


def test_names_from_a_manifest_are_escaped(measured, tmp_path):
    """A run's files come from wherever it was shared: a model named like markup stays text."""
    _, results, _, _ = measured
    run = tmp_path / "run"
    shutil.copytree(results[1].run_dir, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"]["name"] = "<img src=x onerror=alert(1)>"
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_an_artifact_alone_reports_its_size_and_host_accuracy(measured, tmp_path):
    _, _, artifact, stand_in = measured
    out = tmp_path / "report.html"
    assert main(["report", str(artifact.path), str(stand_in.path), "-o", str(out), "--json"]) == 0
    html = out.read_text()
    assert f"{artifact.manifest.model_bytes / 1e6:.3g}" in html and "latency-histogram" not in html


@pytest.mark.parametrize("source, problem", [("no-such-run", "neither a run folder"), (".", "neither a run folder")])
def test_a_source_that_is_not_a_run_or_artifact_is_one_line(source, problem, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", source, "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()
