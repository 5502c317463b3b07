"""The real-text corpus is the same in every process, whatever else that process imported."""

from __future__ import annotations

import json
import subprocess
import sys

SNIPPET = "import json, sys; {imports}from edgesdk.zoo.text import sentences; json.dump(sentences(), sys.stdout)"


def corpus(imports: str = "") -> list[str]:
    code = SNIPPET.format(imports=imports)
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout)


def test_corpus_does_not_depend_on_import_order():
    plain = corpus()
    # submodules that show up as package attributes once imported, and libraries that wrap stdlib functions
    busy = corpus("import email.mime.text, xml.dom.pulldom, http.cookiejar, torch, onnxruntime.quantization; ")
    assert plain == busy
    assert len(plain) > 1000 and len(set(plain)) == len(plain)
