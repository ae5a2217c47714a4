"""Binary ring-buffer captures → :class:`~ftracekit.read.records.LineRecords` (numpy, vectorised).

The kernel's text formatting behind ``trace_pipe`` is slow; under load it falls behind and
events are lost. Tools that keep up (trace-cmd) read ``per_cpu/cpuN/trace_pipe_raw`` instead:
the ring buffer's pages as they are, decoded later with the event formats. This module is
that decoder. A *raw capture* is a directory written by the recorder::

    capture.json                 kernel, page size, CPUs, clock, settings, per-CPU stats
    cpuN.raw                     the pages read from per_cpu/cpuN/trace_pipe_raw
    formats/header_page          events/header_page
    formats/SYSTEM/EVENT/format  events/SYSTEM/EVENT/format for every enabled event
                                 (always ftrace/funcgraph_entry, ftrace/funcgraph_exit, ftrace/print)
    kallsyms.gz                  text symbols from /proc/kallsyms (addresses → names)
    saved_cmdlines               pid → comm

Page layout (``events/header_page``): u64 timestamp, local_t commit (data size in the low 27
bits; bit 31 "events were lost before this page", bit 30 "and their count is stored after the
data"), then the data. Each event starts with a 32-bit header: ``type_len`` (5 bits) and
``time_delta`` (27 bits); ``type_len`` 1–28 = payload of ``4*type_len`` bytes, 0 = payload
length in the next word, 29 = padding, 30 = time extend, 31 = absolute time stamp
(``kernel/trace/ring_buffer.c``). All pages are walked in parallel, one event per step.

The records have the same meaning as parsed text (entries, exits, comments for other events),
so :func:`ftracekit.calltree.build_tables` turns them into the same calls table. ``line`` is
the event's 1-based position in time order (there are no lines); a text leaf ``f();`` is an
entry and an exit here, linked into one complete call.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..recording.rawcapture import CAPTURE_META   # the capture format's owner
from .records import (
    COLUMNS, DEFAULTS, K_COMMENT, K_ENTRY, K_EXIT, Interner, LineRecords,
)

__all__ = ["EventFormat", "parse_format", "decode_cpu", "decode_records", "load_capture",
           "is_capture", "Symbols"]


_COMMIT_MASK = (1 << 27) - 1
_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30


# ---------------------------------------------------------------------------------------------
# Formats

@dataclass(frozen=True)
class Field:
    name: str
    type: str
    offset: int
    size: int
    signed: bool


@dataclass
class EventFormat:
    system: str
    name: str
    id: int
    fields: dict[str, Field]
    print_fmt: str = ""

    def field(self, name: str) -> Field | None:
        return self.fields.get(name)


_RX_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                       r"(?:\s*signed:(?P<signed>\d+);)?")


def parse_format(text: str, system: str = "") -> EventFormat:
    """Parse an ``events/SYSTEM/EVENT/format`` file."""
    name = ""
    ev_id = -1
    fields: dict[str, Field] = {}
    print_fmt = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:"):
            name = s.split(":", 1)[1].strip()
        elif s.startswith("ID:"):
            ev_id = int(s.split(":", 1)[1])
        elif s.startswith("print fmt:"):
            print_fmt = s.split(":", 1)[1].strip()
        else:
            m = _RX_FIELD.search(s)
            if m:
                decl = m["decl"].strip()
                fname = re.sub(r"\[.*\]$", "", decl.split()[-1]).lstrip("*")
                ftype = decl[: decl.rfind(decl.split()[-1])].strip()
                fields[fname] = Field(fname, ftype + ("[]" if decl.endswith("]") else ""),
                                      int(m["off"]), int(m["size"]), m["signed"] == "1")
    if not name or ev_id < 0:
        raise InputError(f"not an event format file (no name/ID): {text[:60]!r}")
    return EventFormat(system, name, ev_id, fields, print_fmt)


# ---------------------------------------------------------------------------------------------
# Symbols

_HEX_DIGIT = np.full(256, 255, dtype=np.uint8)
_HEX_DIGIT[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX_DIGIT[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


class Symbols:
    """Kernel text symbols: address → (name, module) by nearest lower symbol."""

    def __init__(self, addrs: np.ndarray, names: list[str], modules: list[str | None]):
        order = np.argsort(addrs, kind="stable")
        self.addrs = addrs[order]
        self.names = [names[i] for i in order]
        self.modules = [modules[i] for i in order]

    def _name(self, j: int) -> str:
        return self.names[j]

    def _module(self, j: int) -> str | None:
        return self.modules[j]

    @classmethod
    def from_kallsyms(cls, text: str | bytes) -> "Symbols":
        """Text symbols (types t T w W) of ``/proc/kallsyms`` content; address 0 (read
        without root) is dropped."""
        data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
        fast = _KallsymsSymbols.parse(data)
        if fast is not None:
            return fast
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        addrs: list[int] = []
        names: list[str] = []
        mods: list[str | None] = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in ("t", "T", "W", "w"):
                continue
            try:
                a = int(parts[0], 16)
            except ValueError:
                continue
            if a == 0:
                continue
            addrs.append(a)
            names.append(parts[2])
            mods.append(parts[3].strip("[]") if len(parts) > 3 else None)
        return cls(np.array(addrs, dtype=np.uint64), names, mods)

    def lookup(self, addrs: np.ndarray) -> tuple[list[str], list[str | None], np.ndarray]:
        """Names and modules for ``addrs``; the third array is the offset into the symbol."""
        if not len(self.addrs):
            return [f"0x{int(a):x}" for a in addrs], [None] * len(addrs), np.zeros(len(addrs), np.uint64)
        i = np.searchsorted(self.addrs, addrs, side="right") - 1
        ok = i >= 0
        iv = np.where(ok, i, 0)
        off = np.where(ok, addrs - self.addrs[iv], 0)
        names = [self._name(j) if good else f"0x{int(a):x}" for j, good, a in zip(iv.tolist(), ok.tolist(), addrs.tolist())]
        mods = [self._module(j) if good else None for j, good in zip(iv.tolist(), ok.tolist())]
        return names, mods, off


class _KallsymsSymbols(Symbols):
    """Symbols parsed with numpy from kallsyms lines ``<16 hex> <type> <name>`` (then
    ``<TAB>[<module>]`` for module symbols); names and modules are decoded only when looked up
    (a capture needs a few hundred of the ~10^5 symbols, and a Python loop over all of them
    costs a second under emulation)."""

    def __init__(self, data: bytes, addrs: np.ndarray, name_at: np.ndarray, name_end: np.ndarray,
                 mod_end: np.ndarray):
        order = np.argsort(addrs, kind="stable")
        self.addrs = addrs[order]
        self._data = data
        self._name_at, self._name_end = name_at[order], name_end[order]
        self._mod_end = mod_end[order]

    def _name(self, j: int) -> str:
        return self._data[self._name_at[j]:self._name_end[j]].decode("utf-8", "replace")

    def _module(self, j: int) -> str | None:
        end = int(self._mod_end[j])
        if end < 0:
            return None
        return self._data[int(self._name_end[j]) + 2:end].decode("utf-8", "replace")

    @classmethod
    def parse(cls, data: bytes) -> "_KallsymsSymbols | None":
        """None when some line is not in the 64-bit kallsyms format (the caller falls back)."""
        buf = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(buf == 10)
        starts = np.concatenate(([0], nl + 1)).astype(np.int64)
        ends = np.concatenate((nl, [len(buf)])).astype(np.int64)
        nonempty = ends > starts
        starts, ends = starts[nonempty], ends[nonempty]
        if not len(starts):
            return cls(data, np.zeros(0, np.uint64), *(np.zeros(0, np.int64),) * 3)
        if (ends - starts < 20).any():
            return None
        spaces = np.flatnonzero(buf == 32)
        n_spaces = np.searchsorted(spaces, ends) - np.searchsorted(spaces, starts)
        if ((buf[starts + 16] != 32) | (buf[starts + 18] != 32) | (n_spaces != 2)
                | (buf[ends - 1] == 13)).any():
            return None
        digits = _HEX_DIGIT[buf[starts[:, None] + np.arange(16)]]
        if (digits == 255).any():
            return None
        kind = buf[starts + 17]
        text = np.isin(kind, np.frombuffer(b"tTwW", np.uint8))
        addrs = np.zeros(len(starts), dtype=np.uint64)
        for k in range(16):
            addrs = (addrs << np.uint64(4)) | digits[:, k].astype(np.uint64)
        keep = text & (addrs != 0)
        starts, ends, addrs = starts[keep], ends[keep], addrs[keep]
        name_at = starts + 19
        # "name<TAB>[module]": the name ends at the first tab of the line, else at its end
        tabs = np.flatnonzero(buf == 9)
        k = np.searchsorted(tabs, name_at)
        tab = tabs[np.minimum(k, max(len(tabs) - 1, 0))] if len(tabs) else ends
        has_mod = (k < len(tabs)) & (tab < ends) if len(tabs) else np.zeros(len(ends), bool)
        name_end = np.where(has_mod, tab, ends)
        if has_mod.any() and ((buf[name_end[has_mod] + 1] != ord("[")) |
                              (buf[ends[has_mod] - 1] != ord("]"))).any():
            return None
        mod_end = np.where(has_mod, ends - 1, -1)
        return cls(data, addrs, name_at, name_end, mod_end)


# ---------------------------------------------------------------------------------------------
# Pages → events

@dataclass
class CpuEvents:
    """Events of one CPU's raw stream: byte offset of each payload, its length, time (ns)."""

    cpu: int
    data: np.ndarray                  # uint8 view of the whole stream
    offset: np.ndarray                # int64, payload start in ``data``
    length: np.ndarray                # int64, payload bytes
    ts: np.ndarray                    # int64 ns
    lost: list[tuple[int, int]] = field(default_factory=list)   # (event index, count or -1)


def decode_cpu(raw: bytes, cpu: int, page_size: int = 4096) -> CpuEvents:
    """Walk all pages of one CPU's ``trace_pipe_raw`` stream in parallel."""
    n_pages = len(raw) // page_size
    data = np.frombuffer(raw, dtype=np.uint8, count=n_pages * page_size)
    if not n_pages:
        z = np.zeros(0, dtype=np.int64)
        return CpuEvents(cpu, data, z, z.copy(), z.copy())
    pages = data.reshape(n_pages, page_size)
    hdr = pages[:, :16].copy().view(np.uint64)
    page_ts = hdr[:, 0].astype(np.int64)
    commit = hdr[:, 1]
    size = (commit & np.uint64(_COMMIT_MASK)).astype(np.int64)
    size = np.minimum(size, page_size - 16)
    missed = (commit & np.uint64(_MISSED_EVENTS)) != 0
    stored = (commit & np.uint64(_MISSED_STORED)) != 0
    words = pages.view(np.uint32)                     # (n_pages, page_size/4), little endian
    n_words = page_size // 4
    end_w = 4 + (size + 3) // 4                        # data starts at byte 16 = word 4
    p = np.full(n_pages, 4, dtype=np.int64)
    ts = page_ts.copy()
    out_page: list[np.ndarray] = []
    out_word: list[np.ndarray] = []
    out_len: list[np.ndarray] = []
    out_ts: list[np.ndarray] = []
    active = np.flatnonzero(p < end_w)
    while active.size:
        pa = p[active]
        h = words[active, np.minimum(pa, n_words - 1)]
        tl = (h & 31).astype(np.int64)
        td = (h >> 5).astype(np.int64)
        a0 = words[active, np.minimum(pa + 1, n_words - 1)].astype(np.int64)
        adv = np.where(tl <= 28, np.where(tl == 0, (a0 + 4 + 3) // 4, 1 + tl), 2)
        is_pad = tl == 29
        adv = np.where(is_pad, (a0 + 4 + 3) // 4, adv)
        stop = is_pad & (td == 0)                         # rest of the page is empty
        t = ts[active]
        t = np.where(tl == 31, (a0 << 27) + td, np.where(tl == 30, t + (a0 << 27) + td, t + td))
        ts[active] = t
        is_data = tl <= 28
        if is_data.any():
            sel = active[is_data]
            pl = np.where(tl[is_data] == 0, a0[is_data] - 4, tl[is_data] * 4)
            pw = np.where(tl[is_data] == 0, pa[is_data] + 2, pa[is_data] + 1)
            out_page.append(sel)
            out_word.append(pw)
            out_len.append(pl)
            out_ts.append(t[is_data])
        p[active] = pa + np.maximum(adv, 1)
        p[active[stop]] = end_w[active[stop]]
        active = active[p[active] < end_w[active]]
    if out_page:
        pg = np.concatenate(out_page)
        wd = np.concatenate(out_word)
        ln = np.concatenate(out_len)
        tt = np.concatenate(out_ts)
        # Events in stream order: by page, then position within the page.
        order = np.lexsort((wd, pg))
        pg, wd, ln, tt = pg[order], wd[order], ln[order], tt[order]
    else:
        pg = wd = ln = tt = np.zeros(0, dtype=np.int64)
    offset = pg * page_size + wd * 4
    ok = (ln >= 8) & (offset + ln <= len(data))
    ev = CpuEvents(cpu, data, offset[ok], ln[ok], tt[ok])
    # Lost events before a page: the event index of the page's first event.
    if missed.any():
        first_event = np.searchsorted(pg[ok], np.arange(n_pages))
        for i in np.flatnonzero(missed):
            count = -1
            if stored[i]:
                pos = 16 + int(size[i])
                if pos + 8 <= page_size:
                    count = int(pages[i, pos:pos + 8].view(np.int64)[0])
            ev.lost.append((int(first_event[i]), count))
    return ev


def _gather(data: np.ndarray, offset: np.ndarray, f: Field) -> np.ndarray:
    """Field values of each event (little endian) as int64 / uint64."""
    size = f.size
    if size not in (1, 2, 4, 8) or not len(offset):
        return np.zeros(len(offset), dtype=np.int64)
    idx = offset[:, None] + f.offset + np.arange(size)
    b = data[idx]
    dt = {1: "i1", 2: "<i2", 4: "<i4", 8: "<i8"}[size] if f.signed else \
        {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}[size]
    vals = np.ascontiguousarray(b).view(dt).reshape(-1)
    return vals if size == 8 and not f.signed else vals.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Rendering other events as text (what the kernel would print in a comment)

_RX_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*,(.*)\)\s*$", re.S)
_RX_PAIR = re.compile(r"\{\s*(-?\d+|0x[0-9a-fA-F]+)\s*,\s*\"([^\"]*)\"\s*\}")


def _split_args(s: str) -> list[str]:
    out, depth, cur, q = [], 0, [], False
    for ch in s:
        if ch == '"':
            q = not q
        if not q:
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


class _Renderer:
    """Formats one event type's payloads like its ``print fmt`` (common conversions), else as
    ``field=value`` pairs."""

    _CONV = re.compile(r"%(?:[-+ #0]*)(?:\d+)?(?:\.\d+)?(?:hh|h|ll|l|z)?(p[sSFfB]?|[diuxXsc]|%)")

    def __init__(self, fmt: EventFormat, symbols: Symbols):
        self.fmt = fmt
        self.symbols = symbols
        self.template: str | None = None
        self.args: list[str] = []
        pf = fmt.print_fmt
        m = re.match(r'^"((?:[^"\\]|\\.)*)"\s*,?\s*(.*)$', pf, re.S)
        if m:
            self.template = m.group(1).replace("\\n", "").replace('\\"', '"')
            self.args = _split_args(m.group(2)) if m.group(2) else []
        self.fields = [f for f in fmt.fields.values() if not f.name.startswith("common_")]

    def _value(self, expr: str, conv: str, vals: dict[str, Any], raw: bytes) -> str:
        expr = expr.strip()
        sm = _RX_SYMBOLIC.match(expr)
        if sm:
            v = vals.get(sm.group(1))
            table = {int(k, 0): name for k, name in _RX_PAIR.findall(sm.group(2))}
            return table.get(int(v), str(v)) if v is not None else "?"
        fm = re.search(r"REC->(\w+)", expr)
        gm = re.search(r"__get_str\((\w+)\)", expr)
        if gm:
            f = self.fmt.fields.get(gm.group(1))
            if f is not None and f.size == 4:
                loc = int.from_bytes(raw[f.offset:f.offset + 4], "little")
                off, ln = loc & 0xFFFF, loc >> 16
                return raw[off:off + ln].split(b"\0", 1)[0].decode("utf-8", "replace")
            return "?"
        if fm is None:
            raise ValueError(expr)
        v = vals.get(fm.group(1))
        if v is None:
            raise ValueError(expr)
        v = int(v)
        if conv in ("pS", "ps", "pF", "pf", "pB"):
            if v == 0:
                return "0x0"
            names, _, off = self.symbols.lookup(np.array([v], dtype=np.uint64))
            return names[0] + (f"+0x{int(off[0]):x}" if conv in ("pS", "pF", "pB") and off[0] else "")
        if conv == "p":
            return f"{v & 0xFFFFFFFFFFFFFFFF:016x}"
        if conv in ("x", "X"):
            return f"{v & 0xFFFFFFFFFFFFFFFF:x}"
        if conv == "c":
            return chr(v & 0xFF)
        return str(v)

    def render(self, raw: bytes) -> str:
        vals: dict[str, Any] = {}
        for f in self.fields:
            if f.size in (1, 2, 4, 8) and not f.type.endswith("[]"):
                vals[f.name] = int.from_bytes(raw[f.offset:f.offset + f.size], "little", signed=f.signed)
        if self.template is not None:
            try:
                out = []
                pos = 0
                ai = 0
                for m in self._CONV.finditer(self.template):
                    out.append(self.template[pos:m.start()])
                    pos = m.end()
                    conv = m.group(1)
                    if conv == "%":
                        out.append("%")
                        continue
                    out.append(self._value(self.args[ai], conv, vals, raw))
                    ai += 1
                out.append(self.template[pos:])
                return f"{self.fmt.name}: " + "".join(out)
            except (ValueError, IndexError, KeyError):
                pass
        return f"{self.fmt.name}: " + " ".join(f"{k}={v}" for k, v in vals.items())


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


def load_capture(path: str | Path) -> tuple[LineRecords, dict[str, Any]]:
    """Decode a raw capture directory into records and a meta dict."""
    root = Path(path)
    try:
        info = json.loads((root / CAPTURE_META).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{root}: not a readable ftracekit raw capture ({err})") from err
    blobs = [(int(f.stem[3:]), f.read_bytes())
             for f in sorted(root.glob("cpu*.raw"), key=lambda q: int(q.stem[3:]))]
    # The option files as they were while recording (the recorder's "options"); older
    # captures kept them under settings.
    options = info.get("options") or info.get("settings", {}).get("options", {})
    retval_on = bool(options.get("funcgraph-retval"))
    recs, meta = decode_records(
        str(root), blobs, page_size=int(info.get("page_size", 4096)), formats=_read_formats(root),
        symbols=_read_symbols(root), cmdlines=_read_cmdlines(root), retval_on=retval_on)
    meta.update({
        "format": "ftracekit raw capture (trace_pipe_raw pages)",
        "options": options,
        "kernel_hints": {"kernel": info.get("kernel")},
        "recording": info,
    })
    return recs, meta


def decode_records(name: str, blobs: list[tuple[int, bytes]], *, page_size: int,
                   formats: dict[int, EventFormat], symbols: Symbols, cmdlines: dict[int, str],
                   retval_on: bool = False) -> tuple[LineRecords, dict[str, Any]]:
    """Ring-buffer pages of each CPU (``(cpu, bytes)``) → records in time order + meta.

    ``formats`` maps event ids to formats (must include ftrace's funcgraph_entry/exit);
    ``cmdlines`` maps pids to comms.
    """
    by_name = {(f.system, f.name): f for f in formats.values()}
    f_ent = by_name.get(("ftrace", "funcgraph_entry"))
    f_exit = by_name.get(("ftrace", "funcgraph_exit"))
    f_print = by_name.get(("ftrace", "print"))
    if f_ent is None or f_exit is None:
        raise InputError(f"{name}: no funcgraph_entry/funcgraph_exit event formats: not a "
                         "function_graph recording")
    per_cpu = [decode_cpu(data, cpu, page_size) for cpu, data in blobs]
    n_bytes = sum(len(data) for _, data in blobs)
    del blobs
    n_total = sum(len(c.offset) for c in per_cpu)
    lost_total: dict[int, int] = {}
    lost_unknown = 0
    for c in per_cpu:
        for _, cnt in c.lost:
            if cnt < 0:
                lost_unknown += 1
            else:
                lost_total[c.cpu] = lost_total.get(c.cpu, 0) + cnt
    ts_all = np.concatenate([c.ts for c in per_cpu]) if per_cpu else np.zeros(0, dtype=np.int64)
    order = np.argsort(ts_all, kind="stable")          # time order across CPUs
    del ts_all

    cols = {name: np.full(n_total, DEFAULTS[name], dtype=dt) for name, dt in COLUMNS.items()}
    funcs, modules, comms = Interner(), Interner(), Interner()
    comments: dict[int, str] = {}
    renderers: dict[int, _Renderer] = {}
    base = 0
    for c in per_cpu:
        n = len(c.offset)
        if not n:
            continue
        sl = slice(base, base + n)
        etype = _gather(c.data, c.offset, Field("common_type", "u16", 0, 2, False))
        pid = _gather(c.data, c.offset, Field("common_pid", "int", 4, 4, True))
        cols["cpu"][sl] = c.cpu
        cols["pid"][sl] = pid
        cols["ts"][sl] = c.ts / 1e9
        kind = np.full(n, K_COMMENT, dtype=np.int8)
        for fmt, k in ((f_ent, K_ENTRY), (f_exit, K_EXIT)):
            sel = np.flatnonzero(etype == fmt.id)
            if not len(sel):
                continue
            kind[sel] = k
            off = c.offset[sel]
            fa = _gather(c.data, off, fmt.fields["func"]).astype(np.uint64)
            uniq, inv = np.unique(fa, return_inverse=True)
            names, mods, _ = symbols.lookup(uniq)
            fcode = np.array([funcs.code(nm) for nm in names], dtype=np.int32)
            mcode = np.array([modules.code(md) if md else -1 for md in mods], dtype=np.int32)
            cols["func"][base + sel] = fcode[inv]
            cols["module"][base + sel] = mcode[inv]
            cols["depth"][base + sel] = _gather(c.data, off, fmt.fields["depth"])
            if k == K_EXIT:
                call = _gather(c.data, off, fmt.fields["calltime"])
                ret = _gather(c.data, off, fmt.fields["rettime"])
                cols["dur"][base + sel] = (ret.astype(np.int64) - call.astype(np.int64)) / 1000.0
                rf = fmt.fields.get("retval")
                if rf is not None and retval_on:
                    cols["retval"][base + sel] = _gather(c.data, off, rf).astype(np.int64)
                    cols["has_ret"][base + sel] = True
        cols["kind"][sl] = kind
        other = np.flatnonzero(kind == K_COMMENT)
        for i in other.tolist():
            t = int(etype[i])
            raw = c.data[c.offset[i]:c.offset[i] + c.length[i]].tobytes()
            if f_print is not None and t == f_print.id:
                bf = f_print.fields.get("buf")
                text = raw[bf.offset if bf else 16:].split(b"\0", 1)[0].decode("utf-8", "replace").rstrip("\n")
            elif t in formats:
                r = renderers.get(t)
                if r is None:
                    r = renderers[t] = _Renderer(formats[t], symbols)
                text = r.render(raw)
            else:
                text = f"unknown event type {t}"
            comments[base + i] = text
        base += n
    # Re-order everything by time; line = position in time order (1-based).
    cols = {k: v[order] for k, v in cols.items()}
    cols["line"] = np.arange(1, n_total + 1, dtype=np.int64)
    rank = np.empty(n_total, dtype=np.int64)
    rank[order] = np.arange(1, n_total + 1)
    comments = {int(rank[i]): txt for i, txt in comments.items()}
    # comm from saved_cmdlines (the kernel's pid → comm cache at the end of recording).
    pids = cols["pid"]
    upids, inv = np.unique(pids, return_inverse=True)
    ccodes = np.array([comms.code("<idle>" if p == 0 else cmdlines.get(int(p), "<...>"))
                       for p in upids.tolist()], dtype=np.int32)
    cols["comm"] = ccodes[inv].astype(np.int32)
    recs = LineRecords(cols=cols, funcs=funcs.names, modules=modules.names, comms=comms.names,
                       comments=comments)
    kinds = cols["kind"]
    meta: dict[str, Any] = {
        "source": name,
        "format": "ring-buffer pages",
        "bytes": n_bytes,
        "lines": n_total,
        "events_decoded": n_total,
        "layout": ["abstime", "cpu", "proc", "duration"],
        "layout_from": "raw",
        "tracer": "function_graph",
        "header": [],
        "line_kinds": {"entry": int((kinds == K_ENTRY).sum()), "exit": int((kinds == K_EXIT).sum()),
                       "comment": int((kinds == K_COMMENT).sum())},
        "lost_events": {"per_cpu": lost_total, "total": sum(lost_total.values()),
                        "lines_without_count": lost_unknown},
        "overruns": 0,
        "skipped": {"count": 0, "examples": []},
        "other_layout_lines": 0,
        "truncated_last_line": None,
        "options": {},
        "kernel_hints": {},
        "has_comments": bool((kinds == K_COMMENT).any()),
    }
    return recs, meta
