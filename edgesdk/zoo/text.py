"""Real English sentences that ship with Python: the docstrings of standard-library modules.

The docstrings are read from the modules' source files with ``ast``, not from imported objects: what a
live module holds depends on what else the process imported (submodules, libraries that wrap stdlib
functions), and the calibration and held-out sets must be the same in every process. Deterministic
(sorted traversal, fixed shuffle seed), offline, and varied enough (short API notes to long
explanations) to calibrate and evaluate a sentence-embedding model."""

from __future__ import annotations

import ast
import importlib.util
import random
import re
from pathlib import Path

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
    seen: set[str] = set()
    found: list[str] = []
    for name in MODULES:
        for doc in _docstrings(name):
            for paragraph in re.split(r"\n\s*\n", doc):
                for sentence in _SPLIT.split(" ".join(paragraph.split())):
                    if 40 <= len(sentence) <= 400 and sentence[0].isupper() and not _CODE.search(sentence) and sentence not in seen:
                        seen.add(sentence)
                        found.append(sentence)
    random.Random(seed).shuffle(found)
    return found


def _docstrings(name: str) -> list[str]:
    """The module's docstring, then those of its public top-level classes and functions, by name."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []  # a C extension has no source to read
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    definitions = sorted(
        (node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
         and not node.name.startswith("_")),
        key=lambda node: node.name,
    )
    docs = [ast.get_docstring(tree)] + [ast.get_docstring(node) for node in definitions]
    return [doc for doc in docs if doc]


# Language-model text: calibration and evaluation read the docstrings of disjoint modules.
LM_CALIBRATION_MODULES = ["argparse", "textwrap", "collections", "email.message", "configparser", "logging"]
LM_EVALUATION_MODULES = ["json", "pathlib", "csv", "subprocess"]


def module_text(names: list[str]) -> str:
    """The docstrings of ``names`` (module, then public definitions by name), paragraphs kept, as one text."""
    return "\n\n".join(doc for name in names for doc in _docstrings(name))


def lm_texts() -> tuple[str, str]:
    """(calibration text, evaluation text) for causal LMs."""
    return module_text(LM_CALIBRATION_MODULES), module_text(LM_EVALUATION_MODULES)
