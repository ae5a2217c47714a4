"""Command-line entry point: ``ftracekit`` / ``python -m ftracekit``.

The sub-commands live in small modules, each exposing ``register(subparsers)`` which adds its
parsers and sets ``func`` (a callable ``(args) -> int``) as the parser default:

* :mod:`ftracekit.cli.analyse` — ``report``, ``tree``, ``top``
* :mod:`ftracekit.cli.compare` — ``compare``
* :mod:`ftracekit.cli.record` — ``record``, ``doctor``
* :mod:`ftracekit.cli.plot` — ``plot``, ``export``
* :mod:`ftracekit.cli.net` — ``packets``, ``journey``, ``callers``
* :mod:`ftracekit.cli.netlink` — ``netlink``
* :mod:`ftracekit.cli.dataset` — ``convert``, and ``report``/``top``/``tree`` on a dataset

Errors meant for users (:class:`~ftracekit.errors.FtracekitError`) print as one line on stderr
and exit with code 2; Ctrl-C exits with 130; a closed stdout pipe (``| head``) exits quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .._version import __version__
from ..errors import FtracekitError

__all__ = ["main", "build_parser"]

_COMMAND_MODULES = ("analyse", "compare", "record", "plot", "net", "netlink", "dataset")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftracekit",
        description="Record, parse and analyse Linux ftrace function_graph traces.",
    )
    parser.add_argument("--version", action="version", version=f"ftracekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def _fail(message: str) -> int:
    print(f"ftracekit: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except FtracekitError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print("ftracekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error; keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        return _fail("out of memory while processing the trace; filter it first (--func) "
                     "or use a machine with more RAM")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
