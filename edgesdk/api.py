"""The Python API. The CLI calls these and nothing else.

    g = edgesdk.load("model.onnx")                     # or load(module, example_inputs=...)
    q = edgesdk.quantize(g, recipe="int8", calibration="calib.npz")
    art = edgesdk.export(q, target="host", out_dir="out/")
    report = edgesdk.verify(art, "heldout.npz")
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from . import progress
from .about import version
from .artifact import Artifact, finish_manifest, write_reference
from .calibration import CalibrationData
from .errors import ArtifactError, UsageError
from .graph import Graph
from .importers import load as _load
from .metrics import compare
from .quant.recipes import Recipe, get_recipe
from .targets import Target, load_target

REFERENCE_SAMPLES = 8  # reference inputs stored in each artifact for on-device accuracy checks


def load(model: Any, example_inputs: Any = None, **options: Any) -> Graph:
    """An ONNX path, a .py model file, or an nn.Module (with example inputs) as a Graph."""
    return _load(model, example_inputs, **options)


def quantize(graph: Graph, recipe: str | Recipe = "int8", calibration: Any = None, **options: Any) -> Graph:
    """Apply a recipe; the result keeps a link to the float graph for export and verification."""
    recipe = get_recipe(recipe, **options)
    data = CalibrationData.coerce(calibration, "calibration") if calibration is not None else None
    if data is not None:
        data.validate(graph)
    quantized = recipe.apply(graph, data)
    quantized.float_graph = graph.float_graph or graph
    quantized.recipe = recipe
    quantized.calibration = data
    return quantized


def export(
    graph: Graph,
    target: str | Target = "host",
    out_dir: str | Path = "out",
    reference_data: Any = None,
    overwrite: bool = True,
) -> Artifact:
    """Write the artifact directory: model, manifest.json, reference inputs/outputs, float model.

    Reference inputs come from ``reference_data``, else from the calibration data the graph was
    quantized with (its last samples). The accuracy against the float model on them goes in the manifest."""
    from .exporters import get_exporter

    target = target if isinstance(target, Target) else load_target(target)
    exporter = get_exporter(target.exporter)
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise UsageError(f"{out}: exists and is not empty")
        if not (out / "manifest.json").exists():
            raise UsageError(f"{out}: exists, is not empty and is not an edgesdk artifact; choose another -o")
    # Write beside the destination and rename at the end: a failed export leaves the old artifact intact
    # and no half-written directory behind.
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        artifact = _write_artifact(graph, target, exporter, partial, reference_data)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    artifact.path = out
    return artifact


def _write_artifact(graph: Graph, target: Target, exporter, out: Path, reference_data: Any) -> Artifact:
    float_graph = graph.float_graph or graph
    with progress.step(f"exporting for {target.name} ({exporter.RUNTIME})"):
        model_path, extra = exporter.write(graph, target, out)
        float_path = float_graph.save(out / "float" / "model.onnx")

    manifest: dict[str, Any] = {
        "edgesdk_version": version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "format": exporter.FORMAT,
        "runtime": exporter.RUNTIME,
        "target": target.name,
        "target_config": target.model_dump(),
        "model": {"name": graph.name, "source": graph.source},
        "recipe": (graph.recipe or get_recipe("fp32")).to_json(),
        "model_file": model_path.name,
        "float_model_file": str(float_path.relative_to(out)),
        "device_files": [model_path.name, "reference.npz", "manifest.json"],
        "inputs": [s.to_json() for s in graph.inputs],
        "outputs": [s.to_json() for s in graph.outputs],
        "quantization": graph.report,
        **extra,
    }
    data = reference_data if reference_data is not None else graph.calibration
    if data is not None:
        data = CalibrationData.coerce(data, "reference data")
        feeds = list(data.feeds(float_graph))[-REFERENCE_SAMPLES:]
        expected = _run_all(exporter.runner(float_path), feeds, "float reference")
        manifest["reference"] = write_reference(out, feeds, expected)
        actual = _run_all(exporter.runner(model_path), feeds, "exported model")
        manifest["accuracy"] = {"outputs": compare(actual, expected), "samples": len(feeds), "data": data.origin}
    else:
        manifest["device_files"].remove("reference.npz")
    return finish_manifest(out, manifest)


def verify(artifact: str | Path | Artifact, data: Any, limit: int | None = None, threads: int | None = None) -> dict:
    """Run the artifact and its float model on held-out data; per output: cosine mean/min, max abs error."""
    from .exporters import exporter_for_format

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    exporter = exporter_for_format(art.format)
    float_file = art.manifest.get("float_model_file")
    if not float_file or not (art.path / float_file).exists():
        raise ArtifactError(f"{art.path}: has no float model to verify against")
    data = CalibrationData.coerce(data, "held-out data")
    feeds = list(data.feeds(art, limit))  # the manifest's input specs: the float model is not parsed twice
    expected = _run_all(exporter.runner(art.path / float_file, threads), feeds, "float model")
    actual = _run_all(exporter.runner(art.model_path, threads), feeds, "artifact")
    return {"artifact": str(art.path), "samples": len(feeds), "outputs": compare(actual, expected)}


def _run_all(run, feeds: list[dict[str, np.ndarray]], label: str) -> list[dict[str, np.ndarray]]:
    return [run(feed) for feed in progress.track(feeds, f"running {label}", total=len(feeds))]

