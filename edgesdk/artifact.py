"""An artifact: a directory holding the exported model, reference data and manifest.json.

manifest.json is the contract between the exporters, verification and the device runners:

    format, runtime, target, model {name, source}, recipe {name, options}, model_file,
    inputs/outputs [{name, dtype, shape}], files {name: {sha256, bytes}},
    reference {file, samples: [{inputs: {name: key}, outputs: {name: key}}]}   (keys into reference.npz)
    accuracy {outputs: {name: {cosine_mean, cosine_min, max_abs_error}}, samples, data}, quantization {...}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError
from .graph import TensorSpec

MANIFEST = "manifest.json"
REFERENCE = "reference.npz"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_reference(directory: Path, feeds: list[dict[str, np.ndarray]], outputs: list[dict[str, np.ndarray]]) -> dict:
    arrays: dict[str, np.ndarray] = {}
    samples = []
    for i, (feed, out) in enumerate(zip(feeds, outputs)):
        entry: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
        for j, (name, value) in enumerate(feed.items()):
            arrays[f"s{i}_in{j}"] = value
            entry["inputs"][name] = f"s{i}_in{j}"
        for j, (name, value) in enumerate(out.items()):
            arrays[f"s{i}_out{j}"] = value
            entry["outputs"][name] = f"s{i}_out{j}"
        samples.append(entry)
    np.savez(directory / REFERENCE, **arrays)
    return {"file": REFERENCE, "samples": samples}


@dataclasses.dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model_file"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs as the manifest records them (no need to load the model)."""
        return [TensorSpec.from_json(spec) for spec in self.manifest["inputs"]]

    @classmethod
    def load(cls, path: str | Path, check_files: bool = True) -> Artifact:
        path = Path(path).expanduser()
        manifest_path = path / MANIFEST
        if not path.is_dir():
            raise ArtifactError(f"{path}: not an artifact directory")
        if not manifest_path.exists():
            raise ArtifactError(f"{path}: no {MANIFEST} (not an edgesdk artifact)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{manifest_path}: not valid JSON: {exc}") from None
        for key in ("format", "model_file", "files", "inputs", "outputs"):
            if key not in manifest:
                raise ArtifactError(f"{manifest_path}: missing '{key}'")
        artifact = cls(path, manifest)
        if check_files:
            artifact.check_files()
        return artifact

    def check_files(self) -> None:
        for name, entry in self.manifest["files"].items():
            file = self.path / name
            if not file.exists():
                raise ArtifactError(f"{self.path}: {name} is listed in the manifest but missing")
            if sha256_file(file) != entry["sha256"]:
                raise ArtifactError(f"{self.path}: {name} does not match its sha256 in the manifest (changed or truncated)")

    def reference(self) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """The reference inputs and the float model's outputs for them."""
        ref = self.manifest.get("reference")
        if not ref:
            return [], []
        with np.load(self.path / ref["file"], allow_pickle=False) as npz:
            feeds = [{n: npz[k] for n, k in s["inputs"].items()} for s in ref["samples"]]
            outputs = [{n: npz[k] for n, k in s["outputs"].items()} for s in ref["samples"]]
        return feeds, outputs


def finish_manifest(directory: Path, manifest: dict[str, Any]) -> Artifact:
    """Hash every file in the directory into the manifest and write it."""
    files = {}
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[str(file.relative_to(directory))] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    manifest["files"] = files
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    return Artifact(directory, manifest)


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
