"""Opening a binary capture for streaming: a trace-cmd ``trace.dat`` or a ``record --raw``
directory → its per-CPU page buffers and what decoding them needs, without reading the pages.

:func:`ftracekit.load` decodes these through :func:`ftracekit.read.tracedat.load_tracedat` /
:func:`ftracekit.read.rawtrace.load_capture`; the streaming conversion
(:mod:`ftracekit.dataset.pagemerge`) wants the same inputs without the whole decode: the page
buffers are memory-mapped (a ``.dat`` wrapped in gzip/xz is first unpacked into a temporary
file beside the output, in 8 MB pieces) and the options of the decode are those ``load`` uses.
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import InputError
from ..read import is_capture, open_source
from ..read._formats import EventFormat
from ..read._symbols import Symbols
from ..read.rawtrace import _map, _read_cmdlines, _read_formats, _read_symbols
from ..read.tracedat import _ChunkPages, _Decompressor, read_tracedat
from ..recording.rawcapture import CAPTURE_META

__all__ = ["PageSource", "open_pages", "is_binary"]


@dataclass
class PageSource:
    """A binary capture ready to decode: ``blobs`` = ``(cpu, pages)`` (a buffer or an
    iterable of page buffers), ``page_size`` in bytes, event ``formats`` by id, kernel
    ``symbols``, ``cmdlines`` (pid → comm), ``retval_on`` (decode return values, as ``load``
    does for this kind of input) and ``meta`` (the keys ``load`` adds for it: format,
    recording, options, kernel_hints). :meth:`close` unmaps the files and removes a temporary
    copy."""

    name: str
    blobs: list[tuple[int, Any]]
    page_size: int
    formats: Mapping[int, EventFormat]
    symbols: Symbols
    cmdlines: dict[int, str]
    retval_on: bool
    meta: dict[str, Any]
    size: int
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.blobs = []
        for fn in reversed(self._cleanup):
            try:
                fn()
            except (OSError, ValueError, BufferError):
                pass
        self._cleanup = []


def is_binary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a raw capture directory or a (possibly gzip/xz) ``trace.dat``."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return is_capture(p)
    if not os.path.isfile(p):
        return False
    src = open_source(p)
    try:
        return src.kind == "trace.dat"
    finally:
        src.close()


def _parse_cmdlines(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in text.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            out[int(pid)] = comm
    return out


def _open_capture(root: Path) -> PageSource:
    try:
        info = json.loads((root / CAPTURE_META).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{root}: not a readable ftracekit raw capture ({err})") from err
    files = sorted(root.glob("cpu*.raw"), key=lambda q: int(q.stem[3:]))
    blobs = [(int(f.stem[3:]), _map(f)) for f in files]
    options = info.get("options") or info.get("settings", {}).get("options", {})
    src = PageSource(
        name=str(root), blobs=blobs, page_size=int(info.get("page_size", 4096)),
        formats=_read_formats(root), symbols=_read_symbols(root),
        cmdlines=_read_cmdlines(root), retval_on=bool(options.get("funcgraph-retval")),
        meta={"format": "ftracekit raw capture (trace_pipe_raw pages)", "options": options,
              "kernel_hints": {"kernel": info.get("kernel")}, "recording": info},
        size=sum(f.stat().st_size for f in files))
    src._cleanup.extend(b.close for _, b in blobs if isinstance(b, mmap.mmap))
    return src


def _unpack(path: str, scratch: str | None) -> str:
    """A compressed ``.dat`` unpacked into a temporary file in ``scratch`` (8 MB at a time)."""
    src = open_source(path)
    fd, tmp = tempfile.mkstemp(prefix=".ftracekit-unpacked-", suffix=".dat", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in src.chunks():
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        src.close()
    return tmp


def _open_dat(path: str, scratch: str | None) -> PageSource:
    head = open_source(path)
    compressed = head.compressed
    head.close()
    cleanup: list[Callable[[], None]] = []
    real = path
    if compressed:
        real = _unpack(path, scratch)
        cleanup.append(lambda: os.unlink(real))
    f = open(real, "rb")            # noqa: SIM115 - closed by PageSource.close
    try:
        data: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError) as err:
        f.close()
        for fn in cleanup:
            fn()
        raise InputError(f"{path}: cannot map the trace.dat ({err})") from err
    f.close()
    try:
        dat = read_tracedat(data, path)
    except BaseException:
        try:
            data.close()
        except BufferError:         # (views of it live on in the traceback: unmapped later)
            pass
        for fn in cleanup:
            fn()
        raise
    cleanup.insert(0, data.close)
    for _, blob in dat.cpus:
        # The CPUs are decoded side by side here, each with a helper thread unpacking ahead:
        # one decompressor each (a zstd decompressor is not to be shared between threads).
        if isinstance(blob, _ChunkPages):
            blob.decompress = _Decompressor(blob.decompress.algo, path)
    src = PageSource(
        name=path, blobs=dat.cpus, page_size=dat.page_size, formats=dat.formats,
        symbols=Symbols.from_kallsyms(dat.kallsyms), cmdlines=_parse_cmdlines(dat.cmdlines),
        retval_on=False,
        meta={"format": f"trace-cmd trace.dat v{dat.version}", "recording": dat.info,
              "kernel_hints": {"kernel": dat.info.get("uname")}},
        size=len(data))
    src._cleanup.extend(cleanup)
    return src


def open_pages(path: str | os.PathLike[str], *, scratch: str | None = None) -> PageSource:
    """Open the raw capture directory or ``trace.dat`` at ``path`` (``scratch``: where a
    compressed ``.dat`` is unpacked; default the system's temporary folder). Raises
    :class:`~ftracekit.errors.InputError` when it is neither or is unreadable."""
    p = os.fspath(path)
    if os.path.isdir(p):
        if not is_capture(p):
            raise InputError(f"{p}: a directory but not a raw capture (no {CAPTURE_META})")
        return _open_capture(Path(p))
    if not is_binary(p):
        raise InputError(f"{p}: not a trace-cmd trace.dat")
    return _open_dat(p, scratch)

