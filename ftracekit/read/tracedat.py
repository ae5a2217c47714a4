"""trace-cmd's binary ``trace.dat`` (file versions 6 and 7) → records, via the page decoder.

A ``trace.dat`` holds the same ring-buffer pages as an ftracekit raw capture, plus the event
formats, kallsyms and saved cmdlines (``Documentation/trace-cmd/trace-cmd.dat.v6.5.txt`` and
``.v7.5.txt`` in trace-cmd). Version 7 files are organised in sections that may be compressed:
zlib is read with the standard library; zstd needs the optional ``zstandard`` package (or
``trace-cmd convert --compression none``). Compressed trace data comes in chunks of whole
pages (trace-cmd 3.x: 10 pages); they are decompressed block by block into two reused buffers,
the next block on a helper thread while the pages of the current one are decoded, so the
decompressed pages are never held whole. Uncompressed pages are decoded in place.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._concurrent import background
from .._memory import usable_cpus
from ..errors import InputError
from ._decode import BLOCK_BYTES, decode_records
from ._formats import FormatTable
from ._symbols import Symbols

#: Threads decompressing a trace.dat's groups of chunks ahead of the decoding.
_UNZIP_WORKERS = 2

__all__ = ["load_tracedat", "read_tracedat", "TraceDat", "MAGIC"]

MAGIC = b"\x17\x08\x44tracing"

# Option / section ids (trace-cmd.dat.v7.5.txt).
_OPT_DONE = 0
_OPT_CPUSTAT = 2
_OPT_BUFFER = 3
_OPT_TRACECLOCK = 4
_OPT_UNAME = 5
_OPT_VERSION = 9
_OPT_HEADER_INFO = 16
_OPT_FTRACE_EVENTS = 17
_OPT_EVENT_FORMATS = 18
_OPT_KALLSYMS = 19
_OPT_PRINTK = 20
_OPT_CMDLINES = 21
_SEC_FL_COMPRESS = 1


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.pos = 0
        self.name = name

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise InputError(f"{self.name}: truncated trace.dat (needs {n} bytes at offset {self.pos})")

    def u16(self) -> int:
        self.need(2)
        v = struct.unpack_from("<H", self.data, self.pos)[0]
        self.pos += 2
        return v

    def u32(self) -> int:
        self.need(4)
        v = struct.unpack_from("<I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def u64(self) -> int:
        self.need(8)
        v = struct.unpack_from("<Q", self.data, self.pos)[0]
        self.pos += 8
        return v

    def cstr(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise InputError(f"{self.name}: truncated trace.dat (unterminated string)")
        s = self.data[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return s

    def take(self, n: int) -> bytes:
        self.need(n)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b


class _Decompressor:
    """Decompresses one chunk; callable from several threads at once (a zstd decompression
    context is not: each thread has its own)."""

    def __init__(self, algo: str, name: str):
        self.algo = algo
        self.name = name
        self._local = threading.local()

    def __call__(self, blob: Any, size: int) -> bytes:
        if self.algo == "zlib":
            try:
                return zlib.decompress(blob)
            except zlib.error as err:
                raise InputError(f"{self.name}: corrupt zlib data in trace.dat ({err})") from err
        if self.algo == "zstd":
            zstd = getattr(self._local, "zstd", None)
            if zstd is None:
                try:
                    import zstandard  # type: ignore[import-not-found]
                except ImportError as err:
                    raise InputError(
                        f"{self.name}: compressed with zstd; install the 'zstandard' package or "
                        f"run `trace-cmd convert --compression none -i {self.name} -o plain.dat`"
                    ) from err
                zstd = self._local.zstd = zstandard.ZstdDecompressor()
            try:
                return zstd.decompress(blob, max_output_size=size)
            except Exception as err:   # zstandard.ZstdError
                raise InputError(f"{self.name}: corrupt zstd data in trace.dat ({err})") from err
        raise InputError(f"{self.name}: unknown compression {self.algo!r}")


class _ChunkPages:
    """One CPU's compressed pages (a u32 count, then chunks: u32 compressed size, u32 size,
    data) as an iterable of buffers of whole pages, decompressed block by block."""

    def __init__(self, blob: memoryview, name: str, decompress: _Decompressor, page_size: int):
        self.name = name
        self.decompress = decompress
        self.chunks: list[tuple[Any, int]] = []
        if len(blob) < 4:
            raise InputError(f"{name}: truncated trace.dat (no chunk count)")
        (n,) = struct.unpack_from("<I", blob, 0)
        pos, end, unpack = 4, len(blob), struct.Struct("<II").unpack_from
        for _ in range(n):
            if pos + 8 > end:
                raise InputError(f"{name}: truncated trace.dat (chunk header at {pos})")
            csize, usize = unpack(blob, pos)
            pos += 8
            if pos + csize > end:
                raise InputError(f"{name}: truncated trace.dat (chunk of {csize} bytes at {pos})")
            self.chunks.append((blob[pos:pos + csize], usize))
            pos += csize
        self.nbytes = sum(u for _, u in self.chunks)
        self.groups: list[list[tuple[Any, int]]] = [[]]
        size = 0
        for c in self.chunks:
            # (a small first group: the decoding waits for it, the others are decompressed
            # while the one before is decoded)
            limit = BLOCK_BYTES if len(self.groups) > 1 else BLOCK_BYTES // 8
            if self.groups[-1] and size + c[1] > limit:
                self.groups.append([])
                size = 0
            self.groups[-1].append(c)
            size += c[1]
        # (blocks must end on page boundaries: else decompress all at once)
        self.whole_pages = all(u % page_size == 0 for _, u in self.chunks)

    def _fill(self, buf: bytearray, group: list[tuple[Any, int]]) -> int:
        mv = memoryview(buf)
        pos = 0
        for blob, usize in group:
            out = self.decompress(blob, usize)
            if pos + len(out) > len(buf):
                raise InputError(f"{self.name}: corrupt trace.dat (a compressed chunk holds "
                                 "more than its stated size)")
            mv[pos:pos + len(out)] = out
            pos += len(out)
        return pos

    def __iter__(self) -> Any:
        if not self.whole_pages:
            yield b"".join(self.decompress(b, u) for b, u in self.chunks)
            return
        groups = [g for g in self.groups if g]
        cap = max((sum(u for _, u in g) for g in groups), default=0)
        if len(groups) < 2 or usable_cpus() < 2:
            buf = bytearray(cap)
            for g in groups:
                yield memoryview(buf)[:self._fill(buf, g)]
            return
        # Groups are decompressed ahead by ``workers`` threads, each into its own buffer,
        # while the caller decodes the one before (zstandard and the compiled walk both let go
        # of the GIL): the cores are kept busy even where decompressing is the slower step.
        workers = max(1, min(_UNZIP_WORKERS, len(groups) - 1))
        bufs = [bytearray(cap) for _ in range(workers + 1)]
        with ThreadPoolExecutor(workers, thread_name_prefix="ftracekit-unzip") as pool:
            futs: deque = deque()
            for k in range(workers):
                futs.append(pool.submit(self._fill, bufs[k], groups[k]))
            try:
                for k in range(len(groups)):
                    n = futs.popleft().result()
                    if k + workers < len(groups):
                        # (into the buffer of group k - 1, which the caller is done with)
                        j = (k + workers) % len(bufs)
                        futs.append(pool.submit(self._fill, bufs[j], groups[k + workers]))
                    yield memoryview(bufs[k % len(bufs)])[:n]
            finally:
                for f in futs:
                    f.cancel()


def _formats_block(r: _Reader, system: str | None, out: FormatTable) -> None:
    """``count`` × (u64 size + format text); ``system`` None = read a system name per group."""
    n = r.u32()
    for _ in range(n):
        size = r.u64()
        out.add(bytes(r.take(size)).decode("utf-8", "replace"), system or "")


def _event_systems(r: _Reader, out: FormatTable) -> None:
    n_sys = r.u32()
    for _ in range(n_sys):
        system = r.cstr()
        _formats_block(r, system, out)


@dataclass
class TraceDat:
    """The parts of a ``trace.dat``: per-CPU pages (buffers, or iterables of buffers for
    compressed data), event formats, kallsyms, saved cmdlines and the recording's options."""

    version: str
    page_size: int
    cpus: list[tuple[int, Any]]
    formats: FormatTable
    kallsyms: bytes
    cmdlines: str
    info: dict[str, Any]


def load_tracedat(data: bytes, name: str, *, progress: bool | None = None
                  ) -> tuple[Any, dict[str, Any]]:
    """Decode the bytes of a trace-cmd ``trace.dat`` into records and a meta dict."""
    dat = read_tracedat(data, name)
    cmd: dict[int, str] = {}
    for line in dat.cmdlines.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            cmd[int(pid)] = comm
    # (kallsyms are parsed on a second core while the pages are decoded)
    symbols = background(Symbols.from_kallsyms, dat.kallsyms, size=len(dat.kallsyms))
    recs, meta = decode_records(name, dat.cpus, page_size=dat.page_size, formats=dat.formats,
                                symbols=symbols.result, cmdlines=cmd, progress=progress)
    meta["format"] = f"trace-cmd trace.dat v{dat.version}"
    meta["recording"] = dat.info
    meta["kernel_hints"] = {"kernel": dat.info.get("uname")}
    return recs, meta


def read_tracedat(data: bytes, name: str) -> TraceDat:
    """The parts of a ``trace.dat`` (nothing decoded or decompressed yet but the metadata)."""
    r = _Reader(data, name)
    if r.take(len(MAGIC)) != MAGIC:
        raise InputError(f"{name}: not a trace-cmd trace.dat")
    version = r.cstr()
    endian = r.take(1)[0]
    if endian != 0:
        raise InputError(f"{name}: big-endian trace.dat files are not supported")
    r.take(1)  # long size of the recording's user space
    page_size = r.u32()
    formats = FormatTable()
    kallsyms = b""
    cmdlines = ""
    info: dict[str, Any] = {"tracecmd_file_version": version}
    cpus_data: list[tuple[int, Any]] = []
    view = memoryview(data)

    if version not in ("6", "7"):
        raise InputError(f"{name}: trace.dat version {version!r} is not supported (6 or 7)")

    if version == "6":
        if r.take(12) != b"header_page\0":
            raise InputError(f"{name}: malformed trace.dat header")
        r.take(r.u64())
        if r.take(13) != b"header_event\0":
            raise InputError(f"{name}: malformed trace.dat header")
        r.take(r.u64())
        _formats_block(r, "ftrace", formats)
        _event_systems(r, formats)
        kallsyms = bytes(r.take(r.u32()))
        r.take(r.u32())  # printk formats
        cmdlines = r.take(r.u64()).decode("utf-8", "replace")
        n_cpus = r.u32()
        kind = r.take(10)
        buffers: list[tuple[str, list[tuple[int, int, int]]]] = []
        if kind == b"options  \0":
            while True:
                oid = r.u16()
                if oid == _OPT_DONE:
                    break
                size = r.u32()
                blob = r.take(size)
                _v6_option(oid, blob, info)
            kind = r.take(10)
        if kind == b"latency  \0":
            raise InputError(f"{name}: a latency-tracer trace.dat, not function_graph data")
        if kind != b"flyrecord\0":
            raise InputError(f"{name}: malformed trace.dat (no flyrecord data)")
        cpus = []
        for cpu in range(n_cpus):
            cpus.append((cpu, r.u64(), r.u64()))
        buffers.append(("", cpus))
        for cpu, off, size in buffers[0][1]:
            cpus_data.append((cpu, view[off:off + size]))
    else:
        algo = r.cstr()
        r.cstr()  # compression version
        decompress = _Decompressor(algo, name)
        first_options = r.u64()
        sections: dict[int, int] = {}
        buffers_v7: list[tuple[str, int, list[tuple[int, int, int]]]] = []
        opt_off = first_options
        seen = set()
        while opt_off and opt_off not in seen:
            seen.add(opt_off)
            body = _section(data, opt_off, name, decompress)
            o = _Reader(body, name)
            next_off = 0
            while o.pos < len(body):
                oid = o.u16()
                size = o.u32()
                blob = o.take(size)
                if oid == _OPT_DONE:
                    next_off = struct.unpack_from("<Q", blob)[0] if size >= 8 else 0
                    break
                if oid in (_OPT_HEADER_INFO, _OPT_FTRACE_EVENTS, _OPT_EVENT_FORMATS,
                           _OPT_KALLSYMS, _OPT_PRINTK, _OPT_CMDLINES):
                    sections[oid] = struct.unpack_from("<Q", blob)[0]
                elif oid == _OPT_BUFFER:
                    b = _Reader(blob, name)
                    sec_off = b.u64()
                    bname = b.cstr()
                    clock = b.cstr()
                    # trace-cmd 3.x adds the page size (u32) before the CPU count; the option's
                    # size tells which layout this is.
                    rem = len(blob) - b.pos
                    if rem >= 8 and (rem - 8) % 20 == 0 and \
                            struct.unpack_from("<I", blob, b.pos + 4)[0] == (rem - 8) // 20:
                        page_size = b.u32() or page_size
                    n = b.u32()
                    cpus = [(b.u32(), b.u64(), b.u64()) for _ in range(n)]
                    buffers_v7.append((bname, sec_off, cpus))
                    info.setdefault("trace_clock", clock)
                else:
                    _v6_option(oid, blob, info)
            opt_off = next_off
        if _OPT_FTRACE_EVENTS in sections:
            _formats_block(_Reader(_section(data, sections[_OPT_FTRACE_EVENTS], name, decompress), name),
                           "ftrace", formats)
        if _OPT_EVENT_FORMATS in sections:
            _event_systems(_Reader(_section(data, sections[_OPT_EVENT_FORMATS], name, decompress), name),
                           formats)
        if _OPT_KALLSYMS in sections:
            k = _Reader(_section(data, sections[_OPT_KALLSYMS], name, decompress), name)
            kallsyms = bytes(k.take(k.u32()))
        if _OPT_CMDLINES in sections:
            c = _Reader(_section(data, sections[_OPT_CMDLINES], name, decompress), name)
            cmdlines = c.take(c.u64()).decode("utf-8", "replace")
        top = [b for b in buffers_v7 if b[0] == ""] or buffers_v7[:1]
        if not top:
            raise InputError(f"{name}: the trace.dat holds no trace data buffer")
        bname, sec_off, cpus = top[0]
        compressed = bool(struct.unpack_from("<H", data, sec_off + 2)[0] & _SEC_FL_COMPRESS) \
            if sec_off + 4 <= len(data) else False
        for cpu, off, size in cpus:
            if compressed and size:
                # The recorded size leaves out the chunk count word: read the chunks it lists.
                blob: Any = _ChunkPages(view[off:], name, decompress, page_size)
            else:
                blob = view[off:off + size]
            cpus_data.append((cpu, blob))
        if len(buffers_v7) > 1:
            info["other_buffers"] = [b[0] for b in buffers_v7 if b is not top[0]]

    return TraceDat(version, page_size, cpus_data, formats, kallsyms, cmdlines, info)


def _v6_option(oid: int, blob: bytes, info: dict[str, Any]) -> None:
    text = blob.split(b"\0", 1)[0].decode("utf-8", "replace")
    if oid == _OPT_UNAME:
        info["uname"] = text
    elif oid == _OPT_TRACECLOCK:
        info["trace_clock"] = text.strip()
    elif oid == _OPT_VERSION:
        info["tracecmd_version"] = text
    elif oid == _OPT_CPUSTAT:
        info.setdefault("cpustats", []).append(text)


def _section(data: bytes, off: int, name: str, decompress: _Decompressor) -> bytes:
    """Content of the v7 section whose header is at ``off`` (id u16, flags u16, desc u32,
    size u64), decompressed when flagged."""
    if off + 16 > len(data):
        raise InputError(f"{name}: truncated trace.dat (section at {off})")
    _sid, flags, _desc, size = struct.unpack_from("<HHiQ", data, off)
    body = data[off + 16: off + 16 + size]
    if flags & _SEC_FL_COMPRESS:
        csize, usize = struct.unpack_from("<II", body, 0)
        body = decompress(body[8:8 + csize], usize)
    return body
