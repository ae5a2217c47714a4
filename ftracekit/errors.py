"""Every error ftracekit raises on purpose.

All of them derive from :class:`FtracekitError`, whose message is one line that tells the user
what went wrong and what to do next; the CLI prints it and exits with code 2::

    FtracekitError
    ├── InputError                 a trace file/stream that cannot be read or is not a trace
    │   └── NotATraceError         readable text, but no function_graph lines in it
    ├── UnknownFunctionError       a function name not in the trace (or not traceable);
    │                              carries close matches
    ├── TracefsError               anything about /sys/kernel/tracing
    │   ├── TracefsNotFoundError   no tracefs/debugfs mount and it cannot be mounted
    │   ├── PermissionDeniedError  EACCES/EPERM: not root, or tracing locked down
    │   ├── TracerUnavailableError the kernel lacks a tracer (e.g. function_graph) or an option
    │   ├── NotTraceableError      EINVAL writing a filter: function is not traceable
    │   │                          (also an UnknownFunctionError)
    │   └── TracerBusyError        another tracer/ftracekit is using the tracing instance
    └── RecordError                the recording itself failed (command not found, …)
"""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "FtracekitError",
    "InputError",
    "NotATraceError",
    "UnknownFunctionError",
    "TracefsError",
    "TracefsNotFoundError",
    "PermissionDeniedError",
    "TracerUnavailableError",
    "NotTraceableError",
    "TracerBusyError",
    "RecordError",
]


class FtracekitError(Exception):
    """Root of all ftracekit errors. ``str(err)`` is a one-line message meant for users."""


class InputError(FtracekitError):
    """A trace input that cannot be used: missing, a directory, binary, unreadable, empty."""


class NotATraceError(InputError):
    """The input is text but contains no function_graph output."""


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


class UnknownFunctionError(FtracekitError):
    """A function name that is not in the trace (or not traceable on this kernel).

    ``suggestions`` holds up to three close matches.
    """

    def __init__(self, name: str, candidates: Sequence[str] = (), where: str = "in this trace",
                 suggestions: Sequence[str] | None = None, extra: str = ""):
        self.name = name
        self.suggestions = list(suggestions) if suggestions is not None else _suggest(name, candidates)
        msg = f"no function {name!r} {where}"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        if extra:
            msg += f" ({extra})"
        super().__init__(msg)


class TracefsError(FtracekitError):
    """Something about tracefs (``/sys/kernel/tracing``) went wrong."""


class TracefsNotFoundError(TracefsError):
    """No tracefs or debugfs mount was found and mounting one was not possible."""


class PermissionDeniedError(TracefsError):
    """EACCES/EPERM on a tracefs file: not root, or tracing is locked down."""


class TracerUnavailableError(TracefsError):
    """The kernel has no such tracer / option / event (e.g. no CONFIG_FUNCTION_GRAPH_TRACER)."""


class NotTraceableError(TracefsError, UnknownFunctionError):
    """Writing a function filter failed with EINVAL: the name matches no traceable function."""

    def __init__(self, name: str, candidates: Sequence[str] = (), extra: str = "",
                 suggestions: Sequence[str] | None = None):
        UnknownFunctionError.__init__(self, name, candidates, where="is traceable on this kernel",
                                      suggestions=suggestions, extra=extra)


class TracerBusyError(TracefsError):
    """Another tracer (or another ftracekit) is active where we would record."""


class RecordError(FtracekitError):
    """The recording failed for a reason other than tracefs (bad command, output path …)."""
