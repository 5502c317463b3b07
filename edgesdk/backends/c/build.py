"""Build a C package with make and a C compiler, and run its harness on this machine (the host runner)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ArtifactError, RunnerError, UsageError

BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600
FIRST_ERROR_LINES = 8


def first_errors(text: str, lines: int = FIRST_ERROR_LINES) -> str:
    """The compiler's first error lines (what a user needs of a failed build)."""
    found = [line for line in text.splitlines() if "error" in line.lower()]
    return "\n".join((found or text.splitlines())[:lines])


def cache_dir() -> Path:
    return Path(os.environ.get("EDGESDK_CACHE", Path.home() / ".cache" / "edgesdk")) / "c-builds"


def build(package: Path, cc: str = "cc", cflags: str | None = None, ldflags: str | None = None) -> Path:
    """model_run built from package (a copy of its sources, in a cache folder named by their digest, CC,
    CFLAGS and LDFLAGS): the package in the artifact stays as it was written, and a second build is free."""
    if shutil.which(cc) is None:
        raise UsageError(f"building the C package needs the C compiler '{cc}', which is not on PATH"
                         + (" (Debian: apt-get install gcc-aarch64-linux-gnu)" if "aarch64" in cc else ""))
    sources = sorted(p for p in package.rglob("*") if p.is_file() and p.name != "weights.bin")
    digest = hashlib.sha256(f"{cc}\0{cflags}\0{ldflags}".encode())
    for path in sources:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    folder = cache_dir() / digest.hexdigest()[:24]
    binary = folder / "model_run"
    if binary.exists():
        return binary
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir()))
    try:
        for path in sources:
            target = work / path.relative_to(package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        argv = (["make", "-s", f"CC={cc}"] + ([f"CFLAGS={cflags}"] if cflags is not None else [])
                + ([f"LDFLAGS={ldflags}"] if ldflags else []))
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            raise ArtifactError(f"building the C package failed ({' '.join(argv)}):",
                                detail=first_errors(done.stderr + done.stdout))
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode != 0:
        raise RunnerError(f"the C model failed (exit {done.returncode}): {done.stderr.strip()[:500]}")


def host_runner(package: Path, info: dict[str, Any], threads: int | None = None):
    """feed -> outputs, each call one run of the harness (--io; a causal LM: one program serving every call,
    _lm_runner): the package checked as it will run."""
    binary = build(package, info.get("cc", "cc"), info.get("host_cflags"))
    inputs, outputs = info["inputs"], info["outputs"]
    common = ["--weights", str(package / "weights.bin"), "--threads", str(threads or 1)]
    if info.get("lm"):
        return _lm_runner(binary, common)

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgesdk-c-") as tmp:
            with open(Path(tmp) / "in.bin", "wb") as handle:
                for spec in inputs:
                    value = np.asarray(feed[spec["name"]])
                    if list(value.shape) != spec["shape"]:
                        raise ArtifactError(f"input '{spec['name']}' of shape {list(value.shape)}: this C package "
                                            f"was built for {spec['shape']} (shapes are fixed at export)")
                    handle.write(np.ascontiguousarray(value, dtype=spec["dtype"]).tobytes())
            _run([str(binary), "--io", str(Path(tmp) / "in.bin"), str(Path(tmp) / "out.bin"), *common])
            raw = (Path(tmp) / "out.bin").read_bytes()
        result, at = {}, 0
        for spec in outputs:
            count = int(np.prod(spec["shape"], dtype=np.int64))
            array = np.frombuffer(raw, dtype=spec["dtype"], count=count, offset=at).reshape(spec["shape"])
            at += array.nbytes
            result[spec["name"]] = array.copy()
        return result

    return run


def _lm_runner(binary: Path, common: list[str]):
    """A causal LM's feed (input_ids of any length that fits, position, the cache) -> logits and the cache after
    the call: one program for all the calls (--lm-serve: the weights read once, not once a token), each call
    the package's --lm-io (which prefills in chunks, as on a device). The program ends with the runner."""
    errors = tempfile.TemporaryFile("w+")
    server = subprocess.Popen([str(binary), "--lm-serve", *common], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=errors, text=True)

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgesdk-c-") as tmp:
            np.savez(Path(tmp) / "in.npz", **feed)
            errors.seek(0)
            errors.truncate()
            try:
                server.stdin.write(f"{Path(tmp) / 'in.npz'}\t{Path(tmp) / 'out.npz'}\n")
                server.stdin.flush()
                reply = server.stdout.readline().strip()
            except (BrokenPipeError, OSError):
                reply = ""
            if reply != "0":
                errors.seek(0)
                why = errors.read().strip()[:500] or f"the program exited ({server.poll()})"
                raise RunnerError(f"the C model failed{f' (exit {reply})' if reply else ''}: {why}")
            with np.load(Path(tmp) / "out.npz", allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}

    def stop(process=server, log=errors):
        if process.poll() is None:
            process.stdin.close()  # end of requests: the program returns
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()

    weakref.finalize(run, stop)
    return run
