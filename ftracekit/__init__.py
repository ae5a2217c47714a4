"""ftracekit — record, parse and analyse Linux ftrace ``function_graph`` traces.

>>> import ftracekit
>>> trace = ftracekit.load("trace.txt")          # or .gz / .xz, a file object, "-" for stdin
>>> trace.slowest("rtnetlink_rcv", n=5)          # pandas DataFrame, one row per call
>>> print(trace.tree(trace.slowest("rtnetlink_rcv").index[0], min_us=10))
>>> trace.top(20, by="self")

See :class:`ftracekit.Trace` for the calls/events tables (the column contract).
"""

from __future__ import annotations

import os
from typing import Any

from ._version import __version__
from .errors import (
    FtracekitError, InputError, NotATraceError, PermissionDeniedError, RecordError,
    TracefsError, TracefsNotFoundError, TracerBusyError, TracerUnavailableError,
    NotTraceableError, UnknownFunctionError,
)
from .textio import PathOrFile
from .trace import Trace
# The submodule ``parse`` is loaded here, before the function ``parse`` below is defined, so
# that the package attribute ``ftracekit.parse`` ends up being the function.
from . import parse as _parse_module  # noqa: E402  (isort: skip)

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


def _make_trace(recs: Any, meta: dict[str, Any]) -> Trace:
    from .calltree import build_tables

    calls, events, stats = build_tables(recs, consume=True)   # recs is not used afterwards
    meta["tasks"] = stats["tasks"]
    meta["calls"] = {k: v for k, v in stats.items() if k != "tasks"}
    return Trace(calls, events, meta)


def load(src: PathOrFile, *, progress: bool | None = None) -> Trace:
    """Parse a function_graph trace into a :class:`Trace`.

    ``src``: a path (plain, ``.gz`` or ``.xz`` — detected by content), ``"-"`` for stdin, or a
    binary/text file object. Accepts ``trace`` (with header), ``trace_pipe``, per-CPU files and
    ``trace-cmd report`` text; binary recordings are decoded too: a trace-cmd ``trace.dat``
    (file version 6 or 7; zstd-compressed ones need the ``zstandard`` package) and a directory
    written by ``ftracekit record --raw`` (ring-buffer pages, see :mod:`ftracekit.rawtrace`).
    ``progress``: draw a progress line on stderr (default: only for large files when stderr is
    a terminal). When a recorder sidecar (``trace.json`` next to
    ``trace.txt``) exists, it is read into ``Trace.meta["recording"]``.

    Raises :class:`InputError` / :class:`NotATraceError` for unusable input.
    """
    from .sidecar import read_sidecar
    from .textio import open_source

    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-" and os.path.isdir(src):
        from .rawtrace import is_capture, load_capture

        if is_capture(src):
            return _make_trace(*load_capture(src))
    source = open_source(src)
    try:
        if source.kind == "trace.dat":
            from .tracedat import load_tracedat

            recs, meta = load_tracedat(source.stream.read(), source.name)
        else:
            recs, meta = _parse_module.parse_source(source, progress=progress)
    finally:
        source.close()
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-":
        side = read_sidecar(src)
        if side is not None:
            meta["recording"] = side
    return _make_trace(recs, meta)


def parse(text: str) -> Trace:
    """Parse function_graph text held in a string (see :func:`load`)."""
    recs, meta = _parse_module.parse_text(text)
    return _make_trace(recs, meta)
