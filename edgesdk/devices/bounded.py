"""A command bounded in time on any POSIX device: the one shell string SSHTransport sends.

The command runs in its own process group under coreutils `timeout`, or, on a device without it (macOS), under
a small watchdog in the device's python; either way the group id is announced on stderr first (PID_MARK), so
the client can kill the group itself, and a timeout exits 124 (TERM was enough) or 137 (KILL was needed)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

# The device runs: sh -c _WRAPPER sh GRACE LIMIT PYTHON _WATCHDOG argv...
# With `timeout`: it makes a new process group and signals all of it when the limit passes. The inner sh
# announces its pid (= that group) before exec'ing it, so the client can kill the group if it gives up first
# (Ctrl-C, lost link); the outer sh does not exec, so a `timeout` that KILLs its own group still yields 137.
# Without `timeout` (or use_timeout=False) the python watchdog does the same and announces the group itself.
# (A pure-sh `set -m` job would do, but dash without a tty turns job control off.)
PID_MARK = "edgesdk-pid "
NO_WATCHDOG = "edgesdk: neither 'timeout' nor "
_WRAPPER = (
    'g=$1 l=$2 py=$3 dog=$4; shift 4; '
    'if PROBE >/dev/null 2>&1; then '
    f'sh -c \'echo "{PID_MARK}$$" >&2; exec "$@"\' sh timeout -k "$g" "$l" "$@"; exit; fi; '
    f'command -v "$py" >/dev/null 2>&1 || {{ echo "{NO_WATCHDOG}$py found" >&2; exit 127; }}; '
    'exec "$py" -c "$dog" "$g" "$l" "$@"'
)
_WATCHDOG = f"""\
import errno, os, signal, sys
grace, limit, argv = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
r, w = os.pipe()
pid = os.fork()
if not pid:
    os.close(w)
    os.read(r, 1)  # until the parent has made our group and announced it
    for s in (signal.SIGPIPE, signal.SIGXFSZ):  # python ignores them, and exec would keep that
        signal.signal(s, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write("%s: %s\\n" % (argv[0], e.strerror))
        os._exit(127 if e.errno == errno.ENOENT else 126)
os.setpgid(pid, pid)
sys.stderr.write("{PID_MARK}%d\\n" % pid)
sys.stderr.flush()
os.close(w)
sent = []
def kill(sig, *_):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass
def alarm(*_):
    sent.append(1)
    kill(signal.SIGTERM if len(sent) == 1 else signal.SIGKILL)
    signal.setitimer(signal.ITIMER_REAL, grace)
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
    signal.signal(s, kill)
signal.signal(signal.SIGALRM, alarm)
signal.setitimer(signal.ITIMER_REAL, limit)
status = os.waitpid(pid, 0)[1]
signal.setitimer(signal.ITIMER_REAL, 0)
if sent:
    kill(signal.SIGKILL)  # children that outlived the command
    os._exit(124 if len(sent) == 1 else 137)
os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


def remote_command(argv: Sequence[str], timeout: float, grace: float, python: str = "python3",
                   use_timeout: bool = True) -> str:
    """The one string sent to the device's shell: every element quoted, on one line (repr keeps the watchdog's
    newlines out of it, for login shells like csh). TERM after ``timeout`` seconds, KILL ``grace`` later."""
    wrapper = _WRAPPER.replace("PROBE", "command -v timeout" if use_timeout else "false")
    return shlex.join(["sh", "-c", wrapper, "sh", f"{grace:g}", f"{timeout:g}", python,
                       f"exec({_WATCHDOG!r})", *map(str, argv)])
