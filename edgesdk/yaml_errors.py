"""One line for a YAML syntax error: where it is and what is wrong (PyYAML's own text spans several lines)."""

from __future__ import annotations


def yaml_problem(exc: Exception, label: str) -> str:
    """'<label>:<line>: not valid YAML: <problem> (<context> at line N)'."""
    mark, context, context_mark = (getattr(exc, k, None) for k in ("problem_mark", "context", "context_mark"))
    line = f":{mark.line + 1}" if mark else ""
    started = f" ({context} at line {context_mark.line + 1})" if context and context_mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return " ".join(f"{label}{line}: not valid YAML: {problem}{started}".split())
