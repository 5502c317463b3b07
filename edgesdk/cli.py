"""The edgesdk command line: a thin shell over the Python API.

Each subcommand lives in edgesdk/commands/<name>.py with ``add_parser(subparsers)`` and ``run(args)``;
they import heavy frameworks only inside ``run``, so ``edgesdk --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order --help lists them.
COMMANDS = ["convert", "verify", "eval", "generate", "inspect", "deploy", "profile", "devices", "runs", "report"]


def _about_version() -> str:
    from .about import version

    return version()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgesdk",
        description="Quantize a transformer, export it for an edge runtime, deploy it and measure it on the device.",
    )
    parser.add_argument("--version", action="version", version=f"edgesdk {_about_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"edgesdk.commands.{name}")
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import EdgeSDKError, one_line

    _dump_threads_on_sigusr1()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if getattr(args, "json", False):
        from . import progress

        progress.set_enabled(False)
    try:
        return int(args._run(args) or 0)
    except EdgeSDKError as exc:
        print(f"edgesdk: error: {one_line(str(exc))}", file=sys.stderr)
        for line in exc.detail.splitlines():
            print(f"  {one_line(line)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgesdk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`edgesdk runs --json | head`): not an error of ours, and no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0



def _dump_threads_on_sigusr1() -> None:
    """`kill -USR1 PID` prints where each thread of a stuck edgesdk is (stderr), and it goes on."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1") and sys.stderr is not None:
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
        except (ValueError, RuntimeError, OSError, AttributeError):  # no usable stderr file descriptor
            pass


if __name__ == "__main__":
    sys.exit(main())
