"""A stand-in workload for tests below the profile API: a process whose command line marks it as a runner
(the profile player's busy condition) and that prints its clock the way the real runner reports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """import json, sys, time
started = time.time()
time.sleep(0.3)  # startup: imports, model load
start = time.time()
time.sleep(float(sys.argv[1]))  # the timed window
end = time.time()
time.sleep(0.1)  # reference outputs
print(json.dumps({"started": started, "timed_start": start, "timed_end": end}))
"""


def run_stand_in(directory: Path, seconds: float = 1.0) -> dict[str, float]:
    """Run it (its file name holds '_runner-' and it lives under ``directory``, the player's marker)."""
    script = directory / "stand_in_runner-0.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(seconds)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)
