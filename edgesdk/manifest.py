"""manifest.json, the contract between export, verification, inspection and the device runners, as a typed
model loaded and validated in one place (``read_manifest``).

Every file name in it is a plain relative POSIX path inside the artifact: no absolute path, no '..', no
empty or '.' component, no backslash or control character. Every file the artifact holds is listed in
``files`` with its sha256, and every name used elsewhere (model, float model, reference, device files) must
be one of them. A manifest that breaks any of this is refused as a whole: a downloaded artifact must not be
able to point a runner or an upload outside the artifact (or the device's workdir)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ArtifactError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain_relative_path(name: str) -> str:
    """``name`` if it is a plain relative path inside a directory, else ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("empty file name")
    if _CONTROL.search(name) or "\\" in name:
        raise ValueError(f"file name {name!r} holds a control character or backslash")
    if name.startswith("/"):
        raise ValueError(f"file name {name!r} is absolute")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"file name {name!r} is not a plain relative path (empty, '.' or '..' component)")
    if name == MANIFEST:
        raise ValueError(f"{MANIFEST} cannot list itself")
    return name


RelPath = Annotated[str, AfterValidator(plain_relative_path)]
_STRICT = ConfigDict(extra="forbid")


class FileEntry(BaseModel):
    model_config = _STRICT
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(ge=0)]


class TensorEntry(BaseModel):
    model_config = _STRICT
    name: str
    dtype: str
    shape: list[int | str | None]


class ModelInfo(BaseModel):
    model_config = _STRICT
    name: str
    source: str | None = None


class RecipeInfo(BaseModel):
    model_config = _STRICT
    name: str
    options: dict[str, Any] = {}


class ReferenceSample(BaseModel):
    model_config = _STRICT
    inputs: dict[str, str]  # input name -> array key in the reference file
    outputs: dict[str, str]


class Reference(BaseModel):
    model_config = _STRICT
    file: RelPath
    samples: list[ReferenceSample]


class LanguageModelInfo(BaseModel):
    """What a causal-LM artifact adds: the decoder's shape, its cache form, its tokenizer and a small
    reference (token windows with the float model's top-k next-token log-probabilities)."""

    model_config = _STRICT
    config: dict[str, Any]  # llm.config.DecoderConfig
    form: Literal["dynamic", "static"] = "dynamic"
    context: int | None = None  # the static form's fixed cache length
    kv_cache: Literal["float", "int8", "int4"] = "float"  # int8/int4: uint8 codes + past.N.*_scale inputs
    tokenizer_dir: RelPath | None = None  # host side: prompts are tokenized before they reach a device
    reference_file: RelPath | None = None


class Manifest(BaseModel):
    model_config = _STRICT

    schema_version: Literal[2]
    edgesdk_version: str
    created: str
    backend: str  # the registered backend that wrote (and runs) the artifact
    format: str
    runtime: str
    target: str
    target_config: dict[str, Any]
    model: ModelInfo
    recipe: RecipeInfo
    model_file: RelPath
    float_model_file: RelPath | None = None
    device_files: list[RelPath]  # pushed to the device beside manifest.json
    files: dict[RelPath, FileEntry]  # every file of the artifact but manifest.json
    inputs: list[TensorEntry]
    outputs: list[TensorEntry]
    reference: Reference | None = None
    accuracy: dict[str, Any] | None = None
    quantization: dict[str, Any] = {}
    backend_info: dict[str, Any] = {}  # what the backend needs to run its file again (e.g. TFLite signature names)
    language_model: LanguageModelInfo | None = None

    @model_validator(mode="after")
    def _names_are_listed(self) -> Manifest:
        named = {"model_file": [self.model_file], "device_files": self.device_files}
        if self.float_model_file:
            named["float_model_file"] = [self.float_model_file]
        if self.reference:
            named["reference.file"] = [self.reference.file]
        lm = self.language_model
        if lm and lm.reference_file:
            named["language_model.reference_file"] = [lm.reference_file]
        if lm and lm.tokenizer_dir and not any(f.startswith(lm.tokenizer_dir + "/") for f in self.files):
            raise ValueError(f"language_model.tokenizer_dir names '{lm.tokenizer_dir}', which holds no listed file")
        for key, names in named.items():
            for name in names:
                if name not in self.files:
                    raise ValueError(f"{key} names '{name}', which is not listed in 'files' with a sha256")
        if self.model_file not in self.device_files:
            raise ValueError(f"device_files must hold the model file '{self.model_file}'")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def model_bytes(self) -> int:
        """What runs on the device: the model file with its external weights (model.onnx.data), or the whole
        folder it is in (a C package: sources and weights.bin)."""
        prefix = self.model_file.rsplit("/", 1)[0] + "/" if "/" in self.model_file else self.model_file
        return sum(entry.bytes for file, entry in self.files.items() if file.startswith(prefix))


def read_manifest(directory: Path) -> Manifest:
    """The validated manifest of an artifact directory (ArtifactError naming the problem otherwise)."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not an artifact directory")
    if not path.is_file():
        raise ArtifactError(f"{directory}: no {MANIFEST} (not an edgesdk artifact)")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ArtifactError(f"{path}: not a manifest (a JSON object is expected)")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        made = "an older edgesdk (no schema_version)" if version is None else f"schema_version {version!r}"
        raise ArtifactError(f"{path}: written by {made}; this edgesdk reads schema_version {SCHEMA_VERSION}: "
                            "convert the model again")
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: refused: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())
