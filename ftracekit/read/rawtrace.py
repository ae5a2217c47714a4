"""Binary ring-buffer captures → :class:`~ftracekit.read.records.LineRecords` (numpy, vectorised).

The kernel's text formatting behind ``trace_pipe`` is slow; under load it falls behind and
events are lost. Tools that keep up (trace-cmd) read ``per_cpu/cpuN/trace_pipe_raw`` instead:
the ring buffer's pages as they are, decoded later with the event formats. This module is
that decoder (for trace-cmd's ``trace.dat`` too, see :mod:`.tracedat`). A *raw capture* is a
directory written by the recorder::

    capture.json                 kernel, page size, CPUs, clock, settings, per-CPU stats
    cpuN.raw                     the pages read from per_cpu/cpuN/trace_pipe_raw
    formats/header_page          events/header_page
    formats/SYSTEM/EVENT/format  events/SYSTEM/EVENT/format for every enabled event
                                 (always ftrace/funcgraph_entry, ftrace/funcgraph_exit, ftrace/print)
    kallsyms.gz                  text symbols from /proc/kallsyms (addresses → names)
    saved_cmdlines               pid → comm

The decoding itself is in :mod:`._decode` (pages in :mod:`._pages`, event formats in
:mod:`._formats`, kallsyms in :mod:`._symbols`); ``cpuN.raw`` files are memory-mapped, not read.

The records have the same meaning as parsed text (entries, exits, comments for other events),
so :func:`ftracekit.calltree.build_tables` turns them into the same calls table. ``line`` is
the event's 1-based position in time order (there are no lines). A function that called
nothing traced is an entry and an exit event here; when they follow each other in their task
they become one leaf record, as ``trace-cmd report`` prints them (:mod:`._pairs`), that ends at
the exit event's time (the record column ``end_ts``).
"""

from __future__ import annotations

import gzip
import json
import mmap
from pathlib import Path
from typing import Any

import numpy as np

from .._concurrent import background
from ..errors import InputError
from ..recording.rawcapture import CAPTURE_META   # the capture format's owner
from ._decode import BLOCK_BYTES, decode_records
from ._formats import EventFormat, Field, FormatTable, parse_format
from ._pages import CpuEvents, decode_cpu
from ._symbols import Symbols
from .records import LineRecords

__all__ = ["EventFormat", "Field", "FormatTable", "parse_format", "CpuEvents", "decode_cpu",
           "decode_records", "load_capture", "is_capture", "Symbols", "BLOCK_BYTES"]


# ---------------------------------------------------------------------------------------------
# Capture directory → records

def is_capture(path: str | Path) -> bool:
    """Whether ``path`` is a raw capture directory (see module docstring)."""
    p = Path(path)
    return p.is_dir() and (p / CAPTURE_META).is_file()


def _read_formats(root: Path) -> dict[int, EventFormat]:
    out: dict[int, EventFormat] = {}
    fdir = root / "formats"
    for f in sorted(fdir.glob("*/*/format")):
        fmt = parse_format(f.read_text(errors="replace"), system=f.parent.parent.name)
        out[fmt.id] = fmt
    return out


def _read_cmdlines(root: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    p = root / "saved_cmdlines"
    if p.exists():
        for line in p.read_text(errors="replace").splitlines():
            pid, _, comm = line.partition(" ")
            if pid.isdigit():
                out[int(pid)] = comm
    return out


def _read_symbols(root: Path) -> Symbols:
    for name in ("kallsyms.gz", "kallsyms"):
        p = root / name
        if p.exists():
            data = gzip.decompress(p.read_bytes()) if name.endswith(".gz") else p.read_bytes()
            return Symbols.from_kallsyms(data)
    return Symbols(np.zeros(0, dtype=np.uint64), [], [])


def _map(path: Path) -> Any:
    """The file's bytes, memory-mapped (page cache, no copy) where possible."""
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):          # empty file, or not mappable
        return path.read_bytes()


def load_capture(path: str | Path, *, progress: bool | None = None
                 ) -> tuple[LineRecords, dict[str, Any]]:
    """Decode a raw capture directory into records and a meta dict."""
    root = Path(path)
    try:
        info = json.loads((root / CAPTURE_META).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{root}: not a readable ftracekit raw capture ({err})") from err
    blobs = [(int(f.stem[3:]), _map(f))
             for f in sorted(root.glob("cpu*.raw"), key=lambda q: int(q.stem[3:]))]
    # The option files as they were while recording (the recorder's "options"); older
    # captures kept them under settings.
    options = info.get("options") or info.get("settings", {}).get("options", {})
    retval_on = bool(options.get("funcgraph-retval"))
    # (kallsyms are read on a second core while the pages are decoded)
    symbols = background(_read_symbols, root, size=sum(
        (root / n).stat().st_size * 4 for n in ("kallsyms.gz", "kallsyms") if (root / n).exists()))
    recs, meta = decode_records(
        str(root), blobs, page_size=int(info.get("page_size", 4096)), formats=_read_formats(root),
        symbols=symbols.result, cmdlines=_read_cmdlines(root), retval_on=retval_on,
        progress=progress)
    meta.update({
        "format": "ftracekit raw capture (trace_pipe_raw pages)",
        "options": options,
        "kernel_hints": {"kernel": info.get("kernel")},
        "recording": info,
    })
    return recs, meta
