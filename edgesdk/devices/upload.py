"""Push files to a device so that only complete, verified files ever carry their final name.

For each file: ask the device for the sha256 of what it holds under the final name (skip it when it
matches), else upload to '.<name>.partial', have the device hash that, and rename it into place
(os.replace: atomic on one filesystem). A transfer cut midway leaves only the .partial file, which
nothing runs; the next push sees the final name missing and uploads again."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError, UploadError
from .transport import Transport

# Device-side helpers: stdlib only, run as `python -c SCRIPT args...` (arguments quoted by the transport).
HASH_SCRIPT = r"""
import hashlib, json, os, sys
for path in sys.argv[1:]:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
hashes = {}
for path in sys.argv[1:]:
    try:
        hashes[path] = sha256(path)
    except FileNotFoundError:
        hashes[path] = None
print(json.dumps(hashes))
"""

# args: (expected sha256, partial path, final path)...; renames only files whose hash matches.
FINISH_SCRIPT = r"""
import hashlib, json, os, sys
args, result = sys.argv[1:], {}
for expected, partial, final in zip(args[0::3], args[1::3], args[2::3]):
    digest = hashlib.sha256()
    with open(partial, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() == expected:
        os.replace(partial, final)
        result[final] = "ok"
    else:
        os.remove(partial)
        result[final] = digest.hexdigest()
print(json.dumps(result))
"""


@dataclass
class FileToPush:
    local: Path
    remote: str  # full path on the device (its directory is created)
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.remote)


@dataclass
class PushResult:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0


ByteProgress = Callable[[int, int], None]  # (bytes sent, bytes to send) over all files of one push


def device_python_json(transport: Transport, python: str, script: str, args: Sequence[str], timeout: float, doing: str):
    """Run a stdlib helper script with the device's python and parse the one JSON line it prints."""
    done = transport.run([python, "-c", script, *args], timeout=timeout)
    if not done.ok:
        detail = (done.stderr.strip().splitlines() or [f"exit {done.exit_code}"])[-1]
        raise DeviceError(f"device '{transport.device.name}': {doing} failed: {detail}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DeviceError(f"device '{transport.device.name}': {doing} printed no JSON: {done.stdout[:200]!r}") from None


def push(
    transport: Transport,
    python: str,
    files: Sequence[FileToPush],
    progress: ByteProgress | None = None,
    timeout: float = 120.0,
) -> PushResult:
    result = PushResult()
    held = device_python_json(transport, python, HASH_SCRIPT, [f.remote for f in files], timeout, "hashing files")
    todo = []
    for item in files:
        if held.get(item.remote) == item.sha256:
            result.skipped.append(item.name)
        else:
            todo.append(item)
    if not todo:
        return result
    sent_before, to_send = 0, sum(item.size for item in todo)
    finish_args: list[str] = []
    for item in todo:
        partial = posixpath.join(posixpath.dirname(item.remote), f".{item.name}.partial")

        def file_progress(done: int, _total: int, base: int = sent_before) -> None:
            if progress:
                progress(base + done, to_send)

        transport.put(item.local, partial, file_progress)
        sent_before += item.size
        finish_args += [item.sha256, partial, item.remote]
    outcome = device_python_json(transport, python, FINISH_SCRIPT, finish_args, timeout, "checking uploads")
    corrupted = [posixpath.basename(path) for path, status in outcome.items() if status != "ok"]
    if corrupted:
        raise UploadError(f"device '{transport.device.name}': {', '.join(corrupted)} arrived with a different sha256 "
                          "(removed; nothing was run)")
    result.uploaded = [item.name for item in todo]
    result.bytes_sent = sent_before
    return result
