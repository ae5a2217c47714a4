"""ftracekit — record, parse and analyse Linux ftrace ``function_graph`` traces.

>>> import ftracekit
>>> trace = ftracekit.load("trace.txt")          # or .gz / .xz, a file object, "-" for stdin
>>> trace.slowest("rtnetlink_rcv", n=5)          # pandas DataFrame, one row per call
>>> print(trace.tree(trace.slowest("rtnetlink_rcv").index[0], min_us=10))
>>> trace.top(20, by="self")

See :class:`ftracekit.Trace` for the calls/events tables (the column contract).
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    FtracekitError, InputError, NotATraceError, PermissionDeniedError, RecordError,
    TracefsError, TracefsNotFoundError, TracerBusyError, TracerUnavailableError,
    NotTraceableError, UnknownFunctionError,
)
from .trace import Trace
from .loader import load, parse

__all__ = [
    "__version__",
    "load",
    "parse",
    "Trace",
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
