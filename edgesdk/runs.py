"""Past profile/deploy runs: one directory per run, indexed in SQLite.

    runs/<timestamp>-<device>-<model>/
        run.json          status (running | ok | failed | interrupted), error, device, model, artifact
        manifest.json     the artifact's manifest
        device.json       device facts (arch, CPU, kernel, runtime versions)
        runner.py         the exact runner program that ran
        latencies.json    raw per-iteration latencies (ms)
        outputs.npz       the device's outputs for the reference inputs
        summary.json      the ProfileResult JSON
    runs/index.sqlite

Files are written as each step finishes, so a run that fails midway keeps what it measured."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accuracy_figure import worst_cosine
from .errors import UsageError

ENV_VAR = "EDGESDK_RUNS"
INDEX = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    device TEXT, target TEXT, model TEXT, recipe TEXT, artifact TEXT,
    n INTEGER, mean_ms REAL, p50_ms REAL, p90_ms REAL, p99_ms REAL, peak_rss_mb REAL, cosine_mean REAL
)"""
COLUMNS = ["id", "created", "status", "error", "device", "target", "model", "recipe", "artifact",
           "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "peak_rss_mb", "cosine_mean"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get(ENV_VAR) or "runs").expanduser()


@dataclass
class Run:
    id: str
    dir: Path
    store: RunStore

    def write_json(self, name: str, document: Any) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".partial")
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
        tmp.replace(path)
        return path

    def copy_in(self, source: Path, name: str) -> Path:
        shutil.copyfile(source, self.dir / name)
        return self.dir / name

    def finish(self, summary: dict[str, Any]) -> None:
        self.write_json("summary.json", summary)
        self._status("ok", None)
        self.store._update(self.id, **summary_columns(summary))

    def fail(self, error: BaseException | str) -> None:
        if isinstance(error, KeyboardInterrupt):
            self._status("interrupted", "interrupted on the host (Ctrl-C); the command on the device was killed")
            return
        self._status("failed", str(error) or type(error).__name__)

    def _status(self, status: str, error: str | None) -> None:
        info = json.loads((self.dir / "run.json").read_text())
        info.update(status=status, error=error)
        self.write_json("run.json", info)
        self.store._update(self.id, status=status, error=error)


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = runs_root(root)

    def _db(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / INDEX, timeout=10)
        db.execute(_SCHEMA)
        return db

    def start(self, device: str, model: str, artifact: str, target: str = "", recipe: str = "") -> Run:
        now = datetime.datetime.now(datetime.timezone.utc)
        base = f"{now:%Y%m%d-%H%M%S}-{_safe(device)}-{_safe(model)}"
        run_id, suffix = base, 1
        self.root.mkdir(parents=True, exist_ok=True)
        while True:  # two runs in one second get -2, -3...
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                suffix += 1
                run_id = f"{base}-{suffix}"
        run = Run(run_id, self.root / run_id, self)
        created = now.isoformat(timespec="seconds")
        run.write_json("run.json", {"id": run_id, "created": created, "status": "running", "error": None,
                                    "device": device, "target": target, "model": model, "recipe": recipe,
                                    "artifact": artifact})
        with self._db() as db:
            db.execute("INSERT INTO runs (id, created, status, device, target, model, recipe, artifact) "
                       "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)", (run_id, created, device, target, model, recipe, artifact))
        db.close()
        return run

    def _update(self, run_id: str, **values: Any) -> None:
        names = [k for k in values if k in COLUMNS]
        with self._db() as db:
            db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in names)} WHERE id = ?",
                       [values[k] for k in names] + [run_id])
        db.close()

    def list(self, device: str | None = None, model: str | None = None, limit: int | None = 20) -> list[dict[str, Any]]:
        if not (self.root / INDEX).exists():
            return []
        where, params = [], []
        for column, value in (("device", device), ("model", model)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY created DESC, id DESC" + (" LIMIT ?" if limit else "")
        with self._db() as db:
            rows = db.execute(sql, params + ([limit] if limit else [])).fetchall()
        db.close()
        return [dict(zip(COLUMNS, row)) for row in rows]

    def record(self, run: str) -> dict[str, Any]:
        """A run id in this store, or any run folder (a CI job's saved baseline): the record `get` gives."""
        folder = Path(run).expanduser()
        if (folder / "run.json").is_file() and (os.sep in run or not (self.root / run).is_dir()):
            return folder_record(folder)
        return self.get(run)

    def get(self, run_id: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE id = ?", (run_id,)).fetchone()
        db.close()
        if row is None:
            raise UsageError(f"no run '{run_id}' in {self.root} (see: edgesdk runs)")
        record = dict(zip(COLUMNS, row))
        record["dir"] = str(self.root / run_id)
        summary = self.root / run_id / "summary.json"
        if summary.exists():
            record["summary"] = json.loads(summary.read_text())
        return record


def folder_record(folder: Path) -> dict[str, Any]:
    """A run folder's record from its own files (run.json, summary.json), without the index."""
    try:
        info = json.loads((folder / "run.json").read_text())
        summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder}: not a readable run folder: {exc}") from None
    if not isinstance(info, dict) or not isinstance(summary, dict):
        raise UsageError(f"{folder}: not a run folder (run.json and summary.json hold JSON objects)")
    record = {column: info.get(column) for column in COLUMNS}
    record.update(id=info.get("id") or folder.name, status=info.get("status") or "unknown", **summary_columns(summary),
                  dir=str(folder), summary=summary)
    return record


def summary_columns(summary: dict[str, Any]) -> dict[str, Any]:
    """The index's figures of a run, from its summary.json."""
    latency = summary.get("latency_ms") or {}
    return {"n": latency.get("n"), "mean_ms": latency.get("mean"), "p50_ms": latency.get("p50"),
            "p90_ms": latency.get("p90"), "p99_ms": latency.get("p99"), "peak_rss_mb": summary.get("peak_rss_mb"),
            "cosine_mean": worst_cosine(summary.get("accuracy") or {})}
