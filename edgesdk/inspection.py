"""What is in a model file or artifact. The artifact's manifest says which backend wrote it; that backend
describes its model file (ONNX: operators, sizes, quantized tensors; TFLite: every op with its dtypes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifact import MANIFEST, Artifact
from .backends import backend_for_artifact, backend_for_file


def inspect(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    report: dict[str, Any] = {"path": str(path)}
    info: dict[str, Any] = {}
    if path.is_dir() and (path / MANIFEST).exists():
        artifact = Artifact.load(path)
        m = artifact.manifest
        backend = backend_for_artifact(m)
        if m.language_model:
            report["language_model"] = m.language_model.model_dump()
        report["artifact"] = {"format": m.format, "backend": m.backend, "runtime": m.runtime, "target": m.target,
                              "model": m.model.model_dump(), "recipe": m.recipe.model_dump(), "accuracy": m.accuracy,
                              "backend_info": m.backend_info, "files": {k: v.bytes for k, v in m.files.items()}}
        info = m.backend_info
        path = artifact.model_path
        report["file_bytes"] = artifact.model_bytes
    else:
        backend = backend_for_file(path)
        weights = path.with_name(path.name + ".data")  # ONNX external data of a large model
        size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        report["file_bytes"] = size + (weights.stat().st_size if weights.is_file() else 0)  # a package: its files
    report["backend"], report["format"] = backend.name, backend.format
    report |= backend.describe(path, info)
    return report


def format_report(report: dict[str, Any]) -> str:
    from .backends import get_backend

    lines = [f"{report['path']}"]
    if "artifact" in report:
        a = report["artifact"]
        lines.append(f"  artifact: format {a['format']} ({a['runtime']}) for target {a['target']}, "
                     f"recipe {a['recipe']['name']} {a['recipe']['options']}")
        for name, size in a["files"].items():
            lines.append(f"    {name}: {size / 1e6:.2f} MB")
        for name, m in ((a.get("accuracy") or {}).get("outputs") or {}).items():
            lines.append(f"    accuracy at export, {name}: cosine mean {m['cosine_mean']:.5f} min {m['cosine_min']:.5f}")
        if report.get("language_model"):
            c = report["language_model"]["config"]
            lines.append(f"  language model: {c['architecture']}, {c['layers']} layers, hidden {c['hidden']}, "
                         f"{c['heads']} heads / {c['kv_heads']} KV heads, vocabulary {c['vocab']}, "
                         f"{report['language_model']['form']} KV cache ({report['language_model']['kv_cache']})")
            n = (a.get("accuracy") or {}).get("next_token")
            if n:
                lines.append(f"    accuracy at export: next-token agreement {n['next_token_agreement']:.4f}, "
                             f"KL {n['kl_divergence']:.4f}, perplexity {n['perplexity']:.2f} (float {n['float_perplexity']:.2f}) "
                             f"on {n['tokens']} reference tokens")
    lines.append(f"  model file: {report['format']}, {report['file_bytes'] / 1e6:.2f} MB")
    lines += get_backend(report["backend"]).describe_lines(report)
    return "\n".join(lines)
