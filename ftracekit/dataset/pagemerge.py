"""A binary capture's per-CPU ring-buffer pages → line records in time order, a chunk at a
time, in bounded memory.

:func:`ftracekit.read._decode.decode_records` decodes every CPU's pages whole, then sorts all
events by time (a stable sort: ties keep CPU order, then stream order). Here each CPU's pages
are decoded a block (≤ 8 MB of pages) at a time with the same block decoder
(:class:`ftracekit.read._decode._Decoder`), and the CPUs' streams are merged as they come:
the CPU whose decoded events end earliest is decoded next, and every pending event earlier
than the *watermark* (the smallest, over the CPUs not yet finished, of the latest time decoded
on it) is final: no event decoded later can come before it. Those are given out in the order
the stable sort gives, numbered on from the previous chunk (``line`` = time rank + 1), with
the columns and texts ``load`` gives (:class:`~ftracekit.read.records.LineRecords`).

Memory: the pending events (at most ``chunk_events`` plus one block per CPU) and the name
tables. A CPU whose stream goes back in time past the watermark (not seen in real captures:
each CPU's ring buffer is in time order) would be ordered differently from ``load``; such
events are counted in :attr:`MergeStats.late_events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..read._decode import _blocks, _Decoder
from ..read._formats import Renderer
from ..read.records import K_COMMENT, K_EXIT, Interner, LineRecords
from .binsource import PageSource

__all__ = ["merged_records", "MergeStats", "DEFAULT_CHUNK_EVENTS"]

#: Events given out per chunk by default.
DEFAULT_CHUNK_EVENTS = 1_000_000


@dataclass
class MergeStats:
    """What the merge saw: ``events`` given out, ``bytes`` of pages decoded, ``blocks``
    decoded, ``late_events`` (see the module docstring), ``lost`` events per CPU (as the kernel
    counted them on its pages) and ``lost_unknown`` (pages that lost events without a count)."""

    events: int = 0
    bytes: int = 0
    blocks: int = 0
    late_events: int = 0
    lost: dict[int, int] = field(default_factory=dict)
    lost_unknown: int = 0


class _Cpu:
    """One CPU's block iterator and its decoded, not yet given out, events."""

    def __init__(self, slot: int, cpu: int, data: Any, page_size: int) -> None:
        self.slot, self.cpu = slot, cpu
        self.blocks = iter(_blocks(data, page_size))
        self.done = False
        self.last = np.iinfo(np.int64).min        # latest time decoded (ns)
        self.parts: list[dict[str, np.ndarray]] = []

    def pending(self) -> int:
        return sum(len(p["ts"]) for p in self.parts)


class _Names:
    """Function, module and comm names, interned once for the whole input (the codes of
    records carried from one window into the next stay valid)."""

    def __init__(self, src: PageSource) -> None:
        self.src = src
        self.funcs, self.modules, self.comms = Interner(), Interner(), Interner()
        self.flut = np.zeros(0, dtype=np.int32)       # address code → func code
        self.mlut = np.zeros(0, dtype=np.int32)       # address code → module code (-1: none)
        self.comm_of: dict[int, int] = {}

    def update(self, addrs: np.ndarray) -> None:
        """Look up the addresses decoded since the last call (``addrs``: uint64, the address
        of each code so far)."""
        done = len(self.flut)
        if len(addrs) == done:
            return
        addrs = addrs[done:]
        names, mods, _ = self.src.symbols.lookup(addrs)
        f = np.array([self.funcs.code(n) for n in names], dtype=np.int32)
        m = np.array([self.modules.code(x) if x else -1 for x in mods], dtype=np.int32)
        self.flut = np.concatenate([self.flut, f])
        self.mlut = np.concatenate([self.mlut, m])

    def comm_codes(self, pid: np.ndarray) -> np.ndarray:
        """comm code of each pid (from saved_cmdlines, as ``load`` does)."""
        upids, inv = np.unique(pid, return_inverse=True)
        codes = np.empty(len(upids), dtype=np.int32)
        for k, p in enumerate(upids.tolist()):
            c = self.comm_of.get(p)
            if c is None:
                name = "<idle>" if p == 0 else self.src.cmdlines.get(p, "<...>")
                c = self.comm_of[p] = self.comms.code(name)
            codes[k] = c
        return codes[inv.reshape(-1)]


class _Texts:
    """Text of the events that are not funcgraph entries/exits (as ``load`` renders them)."""

    def __init__(self, src: PageSource, dec: _Decoder) -> None:
        self.src, self.dec = src, dec
        self.renderers: dict[int, Renderer] = {}

    def render(self, etype: int, raw: bytes) -> str:
        f_print = self.dec.print
        if f_print is not None and etype == f_print.id:
            bf = f_print.fields.get("buf")
            return raw[bf.offset if bf else 16:].split(b"\0", 1)[0].decode(
                "utf-8", "replace").rstrip("\n")
        if etype in self.src.formats:
            r = self.renderers.get(etype)
            if r is None:
                r = self.renderers[etype] = Renderer(self.src.formats[etype], self.src.symbols)
            return r.render(raw)
        return f"unknown event type {etype}"


def _decode_block(dec: _Decoder, cpu: _Cpu, buf: Any, page_size: int, base: int,
                  others: dict[int, tuple[int, bytes]], st: MergeStats) -> int:
    """Decode one block of ``cpu``'s pages into a pending part (``gid``: a unique number per
    event, keying ``others``, the payloads of the non-graph events)."""
    dec.n = 0
    dec.stream.n = 0
    dec.other = []
    dec.lost = []
    n = dec.block(buf, cpu.slot, page_size)
    st.bytes += len(buf)
    st.blocks += 1
    for cnt in dec.lost:
        if cnt < 0:
            st.lost_unknown += 1
        else:
            st.lost[cpu.cpu] = st.lost.get(cpu.cpu, 0) + cnt
    if not n:
        return 0
    part = {k: a[:n].copy() for k, a in dec.stream.cols.items()}
    part["gid"] = np.arange(base, base + n, dtype=np.int64)
    for i, t, raw in dec.other:
        others[base + i] = (t, raw)
    ts = part["ts"]
    cpu.last = max(cpu.last, int(ts.max()))
    cpu.parts.append(part)
    dec.n = dec.stream.n = 0
    dec.other = []
    return n


def _take_before(cpus: list[_Cpu], mark: int | None) -> dict[str, np.ndarray] | None:
    """The pending events with time < ``mark`` (all if None), CPU by CPU, in time order (a
    stable sort: ties keep CPU, then stream order); they leave the pending parts."""
    pieces: list[dict[str, np.ndarray]] = []
    for c in cpus:
        if not c.parts:
            continue
        part = {k: np.concatenate([p[k] for p in c.parts]) for k in c.parts[0]}
        part["cpu"] = np.full(len(part["ts"]), c.cpu, dtype=np.int16)
        if mark is None:
            pieces.append(part)
            c.parts = []
            continue
        sel = part["ts"] < mark
        if sel.all():
            pieces.append(part)
            c.parts = []
        else:
            keep = {k: v[~sel] for k, v in part.items() if k != "cpu"}
            c.parts = [keep] if len(keep["ts"]) else []
            if sel.any():
                pieces.append({k: v[sel] for k, v in part.items()})
    if not pieces:
        return None
    out = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    order = np.argsort(out["ts"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _records(ev: dict[str, np.ndarray], first_line: int, dec: _Decoder, names: _Names,
             texts: _Texts, others: dict[int, tuple[int, bytes]]) -> LineRecords:
    """Merged events → line records numbered from ``first_line``."""
    n = len(ev["ts"])
    kind = ev["kind"]
    names.update(dec.addresses())
    code = ev["func"]
    graph = kind != K_COMMENT
    func = np.full(n, -1, dtype=np.int32)
    module = np.full(n, -1, dtype=np.int32)
    func[graph] = names.flut[code[graph]]
    module[graph] = names.mlut[code[graph]]
    if "retval" in ev:
        retval, has_ret = ev["retval"], kind == K_EXIT
    else:
        retval, has_ret = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    cols = {
        "line": np.arange(first_line, first_line + n, dtype=np.int64),
        "kind": kind, "cpu": ev["cpu"], "pid": ev["pid"],
        "comm": names.comm_codes(ev["pid"]),
        "ts": ev["ts"] / 1e9, "dur": ev["dur"], "depth": ev["depth"],
        "func": func, "module": module, "retval": retval, "has_ret": has_ret,
    }
    comments: dict[int, str] = {}
    for i in np.flatnonzero(~graph).tolist():
        t, raw = others.pop(int(ev["gid"][i]))
        comments[first_line + i] = texts.render(t, raw)
    return LineRecords(cols=cols, funcs=names.funcs.names, modules=names.modules.names,
                       comms=names.comms.names, comments=comments)


def merged_records(src: PageSource, *, chunk_events: int = DEFAULT_CHUNK_EVENTS,
                   stats: MergeStats | None = None) -> Iterator[LineRecords]:
    """Yield the records of ``src`` in time order, about ``chunk_events`` at a time, lines
    numbered 1, 2, … across chunks; concatenated they are the records :func:`ftracekit.load`
    decodes (the name tables are shared and grow: codes in earlier chunks stay valid).
    ``stats`` is filled in as it goes."""
    st = stats if stats is not None else MergeStats()
    dec = _Decoder(src.formats, src.retval_on, src.name)
    cpus = [_Cpu(slot, cpu, data, src.page_size) for slot, (cpu, data) in enumerate(src.blobs)]
    dec.seen = [(set(), set()) for _ in cpus]
    names, texts = _Names(src), _Texts(src, dec)
    others: dict[int, tuple[int, bytes]] = {}
    base = 0
    line = 1
    emitted = np.iinfo(np.int64).min              # the latest time given out (ns)
    while True:
        active = [c for c in cpus if not c.done]
        if active:
            c = min(active, key=lambda x: (x.last, x.slot))
            buf = next(c.blocks, None)
            if buf is None:
                c.done = True
            else:
                n = _decode_block(dec, c, buf, src.page_size, base, others, st)
                base += n
                if n and int(c.parts[-1]["ts"].min()) < emitted:
                    st.late_events += int((c.parts[-1]["ts"] < emitted).sum())
            active = [c for c in cpus if not c.done]
            if active and sum(c.pending() for c in cpus) < chunk_events:
                continue
        mark = min(c.last for c in active) if active else None
        ev = _take_before(cpus, mark)
        if ev is not None:
            emitted = max(emitted, int(ev["ts"][-1]))
            recs = _records(ev, line, dec, names, texts, others)
            line += len(ev["ts"])
            st.events += len(ev["ts"])
            del ev
            yield recs
        if not active:
            return
