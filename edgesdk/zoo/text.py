"""Real English sentences that ship with Python: the docstrings of standard-library modules.

Deterministic (sorted traversal, fixed shuffle seed), offline, and varied enough (short API notes to
long explanations) to calibrate and evaluate a sentence-embedding model."""

from __future__ import annotations

import importlib
import inspect
import random
import re
import warnings

MODULES = [
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "codecs", "collections", "colorsys",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email",
    "enum", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "hashlib",
    "heapq", "hmac", "html", "http.client", "imaplib", "inspect", "io", "itertools", "json", "linecache",
    "locale", "logging", "lzma", "mmap", "netrc", "operator", "optparse", "os", "pathlib", "pickle",
    "pkgutil", "platform", "plistlib", "poplib", "pprint", "queue", "random", "re", "reprlib", "sched",
    "secrets", "select", "selectors", "shelve", "shutil", "signal", "smtplib", "socket", "sqlite3", "ssl",
    "statistics", "string", "struct", "subprocess", "sysconfig", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "traceback", "types", "typing", "unicodedata", "unittest",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile",
]
_SPLIT = re.compile(r"(?<=[.!?])\s+")
_CODE = re.compile(r">>>|[{}\[\]=]")


def sentences(seed: int = 0) -> list[str]:
    """Unique sentences of 40-400 characters from standard-library docstrings, shuffled with ``seed``."""
    with warnings.catch_warnings():  # some members are deprecated aliases (typing.io) that warn when read
        warnings.simplefilter("ignore")
        return _sentences(seed)


def _sentences(seed: int) -> list[str]:
    seen: set[str] = set()
    found: list[str] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        members = [module] + [getattr(module, a) for a in sorted(dir(module)) if not a.startswith("_")]
        for obj in members:
            if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            doc = inspect.getdoc(obj)
            for paragraph in re.split(r"\n\s*\n", doc or ""):
                for sentence in _SPLIT.split(" ".join(paragraph.split())):
                    if 40 <= len(sentence) <= 400 and sentence[0].isupper() and not _CODE.search(sentence) and sentence not in seen:
                        seen.add(sentence)
                        found.append(sentence)
    random.Random(seed).shuffle(found)
    return found
