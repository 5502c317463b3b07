"""edgesdk report: runs and artifacts as one self-contained HTML page (latency distribution and CDF, the power
trace and energy per inference, device facts, and a size / accuracy / latency Pareto chart across them)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def build_report(sources: list[str], out: str | Path, runs_dir: str | Path | None = None) -> Path:
    """Write the report of ``sources`` (run folders, run ids in ``runs_dir``, artifact folders) to ``out``."""
    from ..runs import runs_root
    from .entries import load_entries
    from .html import write_report

    if not sources:
        raise UsageError("name at least one run (folder or id) or artifact folder to report on")
    return write_report(load_entries([str(s) for s in sources], runs_root(runs_dir)), Path(out))
