"""Loading a trace: bytes or a capture → line records → calls/events tables → :class:`Trace`.

The one place that runs the pipeline's stages in order (read → calltree → Trace); the package
re-exports :func:`load` and :func:`parse`.
"""

from __future__ import annotations

import os
from typing import Any

from .calltree import build_tables
from .read import (
    PathOrFile, is_capture, load_capture, load_tracedat, open_source, parse_source, parse_text,
)
from .errors import InputError
from .recording.sidecar import find_sidecar   # (the module, not the stage: see recording/__init__)
from .trace import Trace

__all__ = ["load", "parse"]


def _make_trace(recs: Any, meta: dict[str, Any]) -> Trace:
    calls, events, stats = build_tables(recs, consume=True)   # recs is not used afterwards
    meta["tasks"] = stats["tasks"]
    meta["calls"] = {k: v for k, v in stats.items() if k != "tasks"}
    return Trace(calls, events, meta)


def load(src: PathOrFile, *, progress: bool | None = None,
         netlink: str | os.PathLike[str] | None = None,
         clock_offset_s: float | None = None) -> Trace:
    """Parse a function_graph trace into a :class:`Trace`.

    ``src``: a path (plain, ``.gz`` or ``.xz`` — detected by content), ``"-"`` for stdin, or a
    binary/text file object. Accepts ``trace`` (with header), ``trace_pipe``, per-CPU files and
    ``trace-cmd report`` text; binary recordings are decoded too: a trace-cmd ``trace.dat``
    (file version 6 or 7; zstd-compressed ones need the ``zstandard`` package) and a directory
    written by ``ftracekit record --raw`` (ring-buffer pages, see :mod:`ftracekit.read.rawtrace`).
    ``progress``: draw a progress line on stderr (default: only for large files when stderr is
    a terminal). When a recorder sidecar (``trace.json`` next to
    ``trace.txt``) exists, it is read into ``Trace.meta["recording"]``; a JSON file of that
    name that the recorder did not write (no ``ftracekit_version``/``settings``) is ignored
    and ``Trace.meta["sidecar_ignored"]`` says so.

    ``netlink``: a netlink capture (pcap of an nlmon device) to join to the trace, read on
    first use of ``Trace.netlink``; the ``netlink.pcap`` a ``--netlink`` recording wrote
    beside the trace (or into its raw directory) is found without it. ``clock_offset_s``:
    realtime − monotonic of the recording machine, for a capture the recorder did not make.

    Raises :class:`InputError` / :class:`NotATraceError` for unusable input.
    """
    if netlink is not None and not os.path.isfile(netlink):
        raise InputError(f"{os.fspath(netlink)}: no such netlink capture file")
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-" and os.path.isdir(src):
        if is_capture(src):
            return _with_netlink(_make_trace(*load_capture(src, progress=progress)), src,
                                 netlink, clock_offset_s)
    source = open_source(src)
    try:
        if source.kind == "trace.dat":
            recs, meta = load_tracedat(source.stream.read(), source.name, progress=progress)
        else:
            recs, meta = parse_source(source, progress=progress)
    finally:
        source.close()
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-":
        side, note = find_sidecar(src)
        if side is not None:
            meta["recording"] = side
        elif note is not None:
            meta["sidecar_ignored"] = note
    trace = _make_trace(recs, meta)
    where = src if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-" else None
    return _with_netlink(trace, where, netlink, clock_offset_s)


def _with_netlink(trace: Trace, src: Any, pcap: Any, offset: float | None) -> Trace:
    """Note the netlink capture that goes with ``trace`` (issue 12): the given one, else the
    one the recording names (``meta["recording"]["netlink"]["pcap"]``) beside the trace or
    inside its capture directory."""
    if pcap is None and src is not None:
        name = ((trace.meta.get("recording") or {}).get("netlink") or {}).get("pcap")
        if name:
            base = src if os.path.isdir(src) else os.path.dirname(os.fspath(src)) or "."
            for candidate in (name, name + ".xz", name + ".gz"):     # compressed later: fine
                if os.path.isfile(os.path.join(base, candidate)):
                    pcap = os.path.join(base, candidate)
                    break
    if pcap is not None:
        trace.meta["netlink_pcap"] = os.fspath(pcap)
        if offset is not None:
            trace.meta["netlink_clock_offset_s"] = float(offset)
    return trace


def parse(text: str) -> Trace:
    """Parse function_graph text held in a string (see :func:`load`)."""
    recs, meta = parse_text(text)
    return _make_trace(recs, meta)
