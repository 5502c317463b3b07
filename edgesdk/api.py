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
    count = getattr(recipe, "calibration_samples", None)
    if count is not None and recipe.max_loss is not None:
        from .quant.budget import HELD_OUT

        count += HELD_OUT  # samples past the calibrated ones, for the loss budget
    data = _data_for(graph, calibration, "calibration", count)
    if data is not None:
        data.validate(graph)
    quantized = recipe.quantize(graph, data)
    quantized.float_graph = graph.float_graph or graph
    quantized.recipe = recipe
    quantized.calibration = data
    return quantized


def _data_for(graph: Graph, data: Any, origin: str, count: int | None = None) -> CalibrationData | None:
    """Feeds for ``graph``: an LM reads text (or token ids) through its tokenizer, other models arrays."""
    if data is None:
        return None
    if graph.lm is not None:
        from .llm.text import lm_data

        return lm_data(graph.lm, data, origin, count)
    return CalibrationData.coerce(data, origin)


def export(
    graph: Graph,
    target: str | Target = "host",
    out_dir: str | Path = "out",
    reference_data: Any = None,
    overwrite: bool = True,
) -> Artifact:
    """Write the artifact directory: model, manifest.json, reference inputs/outputs, float model.

    The target's backend writes the model file. Reference inputs come from ``reference_data``, else from
    the calibration data the graph was quantized with (its last samples); the artifact's accuracy against
    the float model on them (ONNX Runtime on the float ONNX graph, whatever the backend) goes in the manifest."""
    from .backends import get_backend

    target = target if isinstance(target, Target) else load_target(target)
    backend = get_backend(target.backend)
    backend.check_recipe((graph.recipe or get_recipe("fp32")).name)
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
        artifact = _write_artifact(graph, target, backend, partial, reference_data)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    artifact.path = out
    return artifact


def _write_artifact(graph: Graph, target: Target, backend, out: Path, reference_data: Any) -> Artifact:
    float_graph = graph.float_graph or graph
    data = reference_data if reference_data is not None else graph.calibration
    if data is None and graph.lm is not None:
        # An LM always gets its next-token reference (on-device agreement needs one): without text of the
        # user's, the docstrings of a few standard-library modules (edgesdk/zoo/text.py), offline and fixed.
        from .zoo.text import lm_texts

        data = [lm_texts()[1]]
    data = _data_for(float_graph, data, "reference data")
    feeds = list(data.feeds(float_graph))[-REFERENCE_SAMPLES:] if data is not None else []
    calibration = list(graph.calibration.feeds(float_graph)) if graph.calibration is not None else feeds
    with progress.step(f"exporting for {target.name} ({backend.runtime})"):
        exported = backend.export(graph, target, out, calibration)
        # From here on the float weights are read from the file just written (a large LM's are not held
        # twice while its reference runs).
        float_path = float_graph.save(out / "float" / "model.onnx", mapped=[float_graph, graph])

    device_files = [exported.model_file, *exported.device_files]
    manifest: dict[str, Any] = {
        "edgesdk_version": version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.name,
        "format": backend.format,
        "runtime": backend.runtime,
        "target": target.name,
        "target_config": target.model_dump(),
        "model": {"name": graph.name, "source": graph.source},
        "recipe": (graph.recipe or get_recipe("fp32")).to_json(),
        "model_file": exported.model_file,
        "float_model_file": float_path.relative_to(out).as_posix(),
        "device_files": device_files,
        "inputs": exported.inputs or [s.to_json() for s in graph.inputs],
        "outputs": [s.to_json() for s in graph.outputs],
        "quantization": graph.report,
        "backend_info": exported.info,
    }
    if graph.lm is not None:
        from .llm.artifact import add_language_model

        # Runners are made one after the other, each released before the next: an LM's weights are large. The
        # float one maps its weights; the artifact runs as it will everywhere (ORT's prepacked int8 kernels
        # compute differently from the unpacked ones).
        add_language_model(manifest, graph.lm, out, feeds, lambda: _float_runner(float_path, low_memory=True),
                           lambda: backend.host_runner(out / exported.model_file, exported.info, lean=True))
    elif feeds:
        expected = _run_all(_float_runner(float_path), feeds, "float reference")
        manifest["reference"] = write_reference(out, feeds, expected)
        manifest["device_files"].append(manifest["reference"]["file"])
        actual = _run_all(backend.host_runner(out / exported.model_file, exported.info), feeds, "exported model")
        manifest["accuracy"] = {"outputs": compare(actual, expected), "samples": len(feeds), "data": data.origin}
    return finish_manifest(out, manifest)


def _float_runner(path: Path, threads: int | None = None, low_memory: bool = False):
    """The float reference: ONNX Runtime on the float ONNX graph, whatever the artifact's backend."""
    from .runtime import ort_session, run

    session = ort_session(path, threads=threads, low_memory=low_memory)
    return lambda feed: run(session, feed)


def verify(artifact: str | Path | Artifact, data: Any, limit: int | None = None, threads: int | None = None) -> dict:
    """Run the artifact and its float model on held-out data; per output: cosine mean/min, max abs error."""
    from .backends import backend_for_artifact
    from .float_outputs import float_outputs

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    backend = backend_for_artifact(art.manifest)
    float_path = art.float_model_path
    if float_path is None or not float_path.exists():
        raise ArtifactError(f"{art.path}: has no float model to verify against")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1 sample (got {limit})")
    data = CalibrationData.coerce(data, "held-out data")
    feeds = list(data.feeds(art, limit))  # the manifest's input specs: the float model is not parsed twice
    float_sha256 = art.manifest.files[art.manifest.float_model_file].sha256
    expected = float_outputs(float_sha256, feeds, lambda: _run_all(_float_runner(float_path, threads), feeds,
                                                                    "float model"))
    actual = _run_all(backend.host_runner(art.model_path, art.manifest.backend_info, threads), feeds, "artifact")
    return {"artifact": str(art.path), "samples": len(feeds), "outputs": compare(actual, expected)}


def _run_all(run, feeds: list[dict[str, np.ndarray]], label: str) -> list[dict[str, np.ndarray]]:
    return [run(feed) for feed in progress.track(feeds, f"running {label}", total=len(feeds))]
