"""Push files into a device's workdir so that only complete, verified files ever carry their final name, and
nothing is ever written outside the workdir.

Every file is named relative to the workdir (the jail). For each: the device checks the name again (a plain
relative path: no absolute path, no '..', no symlink on the way, whatever the host already checked), creates
its folders (0700; the workdir too), and reports the sha256 of what it holds under the final name (skipped
when it matches). Otherwise the file goes to '.<name>.partial', the device hashes that and renames it into
place (os.replace: atomic on one filesystem). A transfer cut midway leaves only the .partial file, which
nothing runs; the next push sees the final name missing and uploads again."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError, UploadError
from .transport import Transport

# Device-side helpers: stdlib only, run as `python -c SCRIPT JAIL args...` (arguments quoted by the transport).
# They print one JSON line; {"refused": why} (exit 3) when a name would leave the jail.
_JAIL = r"""
import hashlib, json, os, sys
jail = sys.argv[1]
def refuse(why):
    print(json.dumps({"refused": why}))
    sys.exit(3)
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
def place(name):
    # The folders of a plain relative name created inside the jail, never through a symlink; its full path.
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 32 for c in name)):
        refuse("%r is not a plain relative path inside the workdir" % name)
    current = root
    for part in parts[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            refuse("%s is a symlink on the device; nothing is written through it" % current)
        if not os.path.isdir(current):
            if os.path.lexists(current):
                refuse("%s is not a folder" % current)
            os.mkdir(current, 0o700)
    final = os.path.join(current, parts[-1])
    partial = os.path.join(current, "." + parts[-1] + ".partial")
    for path in (final, partial):
        if os.path.islink(path):
            refuse("%s is a symlink on the device; nothing is written through it" % path)
    return final, partial
os.makedirs(jail, mode=0o700, exist_ok=True)
root = os.path.realpath(jail)
"""

# args: JAIL NAME...; the sha256 of each final name (None when absent); stale partials removed.
PREPARE_SCRIPT = _JAIL + r"""
hashes = {}
for name in sys.argv[2:]:
    final, partial = place(name)
    if os.path.lexists(partial):
        os.remove(partial)
    hashes[name] = sha256(final) if os.path.isfile(final) else None
print(json.dumps(hashes))
"""

# args: JAIL (EXPECTED_SHA256 NAME)...; renames only partials whose hash matches, removes the others.
FINISH_SCRIPT = _JAIL + r"""
args, result = sys.argv[2:], {}
for expected, name in zip(args[0::2], args[1::2]):
    final, partial = place(name)
    digest = sha256(partial)
    if digest == expected:
        os.replace(partial, final)
        result[name] = "ok"
    else:
        os.remove(partial)
        result[name] = digest
print(json.dumps(result))
"""


@dataclass
class FileToPush:
    local: Path
    remote: str  # relative to the workdir it is pushed into (its folders are created)
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
    try:
        document = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        document = None
    if isinstance(document, dict) and "refused" in document:
        raise UploadError(f"device '{transport.device.name}' refused the upload: {document['refused']}")
    if not done.ok:
        detail = (done.stderr.strip().splitlines() or [f"exit {done.exit_code}"])[-1]
        raise DeviceError(f"device '{transport.device.name}': {doing} failed: {detail}")
    if document is None:
        raise DeviceError(f"device '{transport.device.name}': {doing} printed no JSON: {done.stdout[:200]!r}")
    return document


def push(
    transport: Transport,
    python: str,
    workdir: str,
    files: Sequence[FileToPush],
    progress: ByteProgress | None = None,
    timeout: float = 120.0,
) -> PushResult:
    """Push ``files`` (named relative to ``workdir``, a device path as ``transport.path`` gives it) to the
    device; see the module docstring."""
    result = PushResult()
    jail = workdir
    held = device_python_json(transport, python, PREPARE_SCRIPT, [jail, *(f.remote for f in files)], timeout,
                              "hashing files")
    todo = []
    for item in files:
        if held.get(item.remote) == item.sha256:
            result.skipped.append(item.name)
        else:
            todo.append(item)
    if not todo:
        return result
    sent_before, to_send = 0, sum(item.size for item in todo)
    finish_args: list[str] = [jail]
    for item in todo:
        partial = posixpath.join(jail, posixpath.dirname(item.remote), f".{item.name}.partial")

        def file_progress(done: int, _total: int, base: int = sent_before) -> None:
            if progress:
                progress(base + done, to_send)

        transport.put(item.local, partial, file_progress)
        sent_before += item.size
        finish_args += [item.sha256, item.remote]
    outcome = device_python_json(transport, python, FINISH_SCRIPT, finish_args, timeout, "checking uploads")
    corrupted = [posixpath.basename(name) for name, status in outcome.items() if status != "ok"]
    if corrupted:
        raise UploadError(f"device '{transport.device.name}': {', '.join(corrupted)} arrived with a different sha256 "
                          "(removed; nothing was run)")
    result.uploaded = [item.name for item in todo]
    result.bytes_sent = sent_before
    return result
