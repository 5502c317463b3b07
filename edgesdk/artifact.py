"""An artifact: a directory holding the exported model, reference data and manifest.json (edgesdk/manifest.py).

Loading one validates the manifest, then checks every listed file: it must lie inside the directory once
symlinks are resolved (a symlinked folder cannot lead out of the artifact) and match its sha256."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError
from .graph import TensorSpec
from .manifest import MANIFEST, SCHEMA_VERSION, Manifest, read_manifest

REFERENCE = "reference.npz"

__all__ = ["MANIFEST", "REFERENCE", "SCHEMA_VERSION", "Artifact", "Manifest", "sha256_file", "write_reference",
           "finish_manifest"]


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


def inside(directory: Path, name: str) -> Path:
    """``directory/name`` if it stays inside ``directory`` with symlinks resolved, else ArtifactError."""
    root = os.path.realpath(directory)
    real = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, real]) != root:
        raise ArtifactError(f"{directory}: {name} leads outside the artifact (through a symlink); refused")
    return Path(directory) / name


@dataclasses.dataclass
class Artifact:
    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def float_model_path(self) -> Path | None:
        return self.path / self.manifest.float_model_file if self.manifest.float_model_file else None

    @property
    def model_bytes(self) -> int:
        return self.manifest.model_bytes

    @property
    def format(self) -> str:
        return self.manifest.format

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs as the manifest records them (no need to load the model)."""
        return [TensorSpec(s.name, s.dtype, tuple(s.shape)) for s in self.manifest.inputs]

    @classmethod
    def load(cls, path: str | Path, check_files: bool = True) -> Artifact:
        path = Path(path).expanduser()
        artifact = cls(path, read_manifest(path))
        if check_files:
            artifact.check_files()
        return artifact

    def check_files(self) -> None:
        for name, entry in self.manifest.files.items():
            file = inside(self.path, name)
            if not file.is_file():
                raise ArtifactError(f"{self.path}: {name} is listed in the manifest but missing")
            if sha256_file(file) != entry.sha256:
                raise ArtifactError(f"{self.path}: {name} does not match its sha256 in the manifest (changed or truncated)")

    def reference(self) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """The reference inputs and the float model's outputs for them."""
        ref = self.manifest.reference
        if not ref:
            return [], []
        with np.load(inside(self.path, ref.file), allow_pickle=False) as npz:
            feeds = [{n: npz[k] for n, k in s.inputs.items()} for s in ref.samples]
            outputs = [{n: npz[k] for n, k in s.outputs.items()} for s in ref.samples]
        return feeds, outputs


def finish_manifest(directory: Path, manifest: dict[str, Any]) -> Artifact:
    """Hash every file in the directory into the manifest, validate it and write it."""
    files = {}
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[file.relative_to(directory).as_posix()] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    document = json.loads(json.dumps({"schema_version": SCHEMA_VERSION, **manifest, "files": files}, default=_json_default))
    checked = Manifest.model_validate(document)  # what we write is what every reader will accept
    (directory / MANIFEST).write_text(json.dumps(checked.to_json(), indent=2) + "\n")
    return Artifact(directory, checked)


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
