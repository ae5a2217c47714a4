"""Binary capture while recording: per-CPU ``trace_pipe_raw`` readers and the capture directory.

The kernel formats ``trace_pipe`` text one event at a time; under a busy graph it cannot keep
up and the ring buffer overwrites what was not read. Reading ``per_cpu/cpuN/trace_pipe_raw``
moves whole ring-buffer pages instead (what trace-cmd does), one reader thread per CPU. The
result is a *capture directory* (layout in :mod:`ftracekit.read.rawtrace`), decoded afterwards into
the same calls table. Knows nothing about parsing; all tracefs access goes through
:class:`~ftracekit.recording.tracefs.TraceFS`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import RecordError, TracefsError
from ._stream import PollingReader

if TYPE_CHECKING:  # pragma: no cover
    from .tracefs import TraceFS

__all__ = ["RawReaders", "write_capture_files", "write_capture_info", "page_size_of",
           "CAPTURE_FILES", "CAPTURE_META", "KALLSYMS"]


#: The capture directory's metadata file (read back by :mod:`ftracekit.read.rawtrace`).
CAPTURE_META = "capture.json"


class _CpuReader(PollingReader):
    """Copies one CPU's ``trace_pipe_raw`` pages into ``cpuN.raw``."""

    def __init__(self, cpu: int, fd: int, path: Path, page_size: int):
        super().__init__(f"ftracekit-raw-cpu{cpu}", fd)
        self.cpu = cpu
        self.page_size = page_size
        self.out = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in stop()
        self._closed = False

    def drain(self) -> None:
        read = os.read
        fd = self.fd
        size = self.page_size
        write = self.out.write
        while True:
            try:
                chunk = read(fd, size)
            except BlockingIOError:
                return
            if not chunk:
                return
            write(chunk)
            self.bytes += len(chunk)

    def stop(self) -> None:
        """Stop the thread, read what is left, close both files. Safe to call twice; a read
        error ends up in ``error``."""
        if self._closed:
            return
        self._stop_event.set()
        if self.is_alive():
            self.join()
        try:
            if self.error is None:
                self.drain()
        except OSError as err:
            self.error = err
        finally:
            self._closed = True
            try:
                self.out.close()
            finally:
                os.close(self.fd)


def page_size_of(header_page: str) -> int:
    """Ring-buffer page size from ``events/header_page`` (data offset + data size)."""
    m = re.search(r"field: char data;\s*offset:(\d+);\s*size:(\d+);", header_page)
    return int(m.group(1)) + int(m.group(2)) if m else 4096


class RawReaders:
    """One reader thread per CPU of ``tfs`` (the top level or an instance), started on
    construction; :meth:`stop` after tracing_on=0. ``page_size`` is in bytes."""

    def __init__(self, tfs: "TraceFS", outdir: Path):
        page_size = page_size_of(tfs.read("events/header_page"))
        self.page_size = page_size
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.readers: list[_CpuReader] = []
        try:
            for cpu in tfs.cpus():
                fd = tfs.open_raw(cpu)
                try:
                    r = _CpuReader(cpu, fd, self.outdir / f"cpu{cpu}.raw", page_size)
                except BaseException:
                    os.close(fd)
                    raise
                self.readers.append(r)
                r.start()
        except BaseException:
            self.close()
            raise

    @property
    def bytes(self) -> int:
        """Bytes of ring-buffer pages copied so far (all CPUs; still valid after stop)."""
        return sum(r.bytes for r in self.readers)

    @property
    def pages(self) -> int:
        """Ring-buffer pages copied so far (all CPUs)."""
        return sum(r.bytes // self.page_size for r in self.readers)

    def close(self) -> list[str]:
        """Stop every reader (reading what is left) and close its files; returns one message
        per reader that failed. Safe to call again."""
        errors = []
        for r in self.readers:
            r.stop()
            if r.error is not None:
                errors.append(f"cpu{r.cpu}: {r.error}")
        return errors

    def stop(self) -> None:
        """:meth:`close`, raising :class:`RecordError` when a reader failed."""
        errors = self.close()
        if errors:
            raise RecordError("reading trace_pipe_raw failed: " + "; ".join(errors))


#: Where the kernel's symbols are read from (addresses need root: kptr_restrict).
KALLSYMS = "/proc/kallsyms"


def _kallsyms_text() -> str:
    try:
        with open(KALLSYMS, encoding="utf-8", errors="replace") as fh:
            return "".join(line for line in fh if len(line) > 19 and line[17] in "tTwW")
    except OSError:
        return ""


def _read_either(tfs: "TraceFS", name: str) -> str:
    """``name`` from ``tfs``, else from the top level (event formats are global)."""
    try:
        return tfs.read(name)
    except TracefsError:
        if tfs.top is tfs:
            raise
        return tfs.top.read(name)


def write_capture_files(tfs: "TraceFS", outdir: Path, events: Iterable[str],
                        info: dict[str, Any]) -> dict[str, Any]:
    """Save what decoding needs next to the ``cpuN.raw`` files: event formats (ftrace's
    funcgraph_entry/exit and print, plus each ``SYSTEM/EVENT`` in ``events``), kallsyms,
    saved_cmdlines (always the top level's: instances have none), and ``capture.json``
    (``info`` plus ``page_size`` in bytes and ``kallsyms_symbols``). ``tfs`` is the directory
    that recorded (top level or instance). Returns what ``capture.json`` holds."""
    outdir = Path(outdir)
    fdir = outdir / "formats"
    wanted = ["ftrace/funcgraph_entry", "ftrace/funcgraph_exit", "ftrace/print", *events]
    for ev in dict.fromkeys(wanted):
        text = _read_either(tfs, f"events/{ev}/format")
        dest = fdir / ev / "format"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    header_page = _read_either(tfs, "events/header_page")
    (fdir / "header_page").write_text(header_page)
    (outdir / "saved_cmdlines").write_text(tfs.top.read("saved_cmdlines"))
    syms = _kallsyms_text()
    with gzip.open(outdir / "kallsyms.gz", "wt", compresslevel=3) as fh:
        fh.write(syms)
    info = dict(info)
    info["page_size"] = page_size_of(header_page)
    info["kallsyms_symbols"] = syms.count("\n")
    write_capture_info(outdir, info)
    return info


def write_capture_info(outdir: Path, info: dict[str, Any]) -> Path:
    """(Re)write ``capture.json`` in ``outdir`` atomically; returns its path."""
    path = Path(outdir) / CAPTURE_META
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


#: What a capture directory holds besides ``cpuN.raw`` (see :mod:`ftracekit.read.rawtrace`).
CAPTURE_FILES = (CAPTURE_META, "formats", "kallsyms.gz", "saved_cmdlines")
