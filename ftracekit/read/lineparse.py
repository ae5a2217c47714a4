"""Line-by-line parsing of function_graph text: layouts, regexes, and the per-line parser.

This is the exact, readable definition of what each line means. The vectorised fast path
(:mod:`ftracekit.read._fastparse`) handles the common lines of a file in bulk and hands every line
it is not sure about to :class:`LineParser`, so both must agree; the tests check they do.

A *layout* is the set of context columns the kernel printed before the body, in this order
(``kernel/trace/trace_functions_graph.c``: ``print_graph_prologue`` / ``print_graph_duration``)::

    [abstime "%5lu.%06lu |  "] [rel-time "%9llu us |  "] [cpu " %*d) "]
    [proc "<comm-pid centred in 14> | "] [latency " d..1 | "] [duration "! 118.427 us  |  "]
    indentation (2 spaces per depth) + body

``trace-cmd report`` lines have their own prefix (``comm-pid [cpu] ts: funcgraph_entry: ``)
followed by the duration column and body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Iterable

import numpy as np

from .records import (
    COLUMNS, K_COMMENT, K_ENTRY, K_EXIT, K_IRQ_ENTER, K_IRQ_EXIT, K_LEAF, K_LOST, K_OVERRUN,
    K_SWITCH, Interner,
)

__all__ = ["Layout", "LineParser", "detect_layout", "layout_from_header", "parse_retval"]


@dataclass(frozen=True)
class Layout:
    """Which context columns precede the body of each line (see module docstring)."""

    abstime: bool = False
    reltime: bool = False
    cpu: bool = True
    proc: bool = False
    lat: bool = False
    duration: bool = True
    tracecmd: bool = False

    def describe(self) -> list[str]:
        """Names of the columns present, e.g. ``['cpu', 'duration']``."""
        return [f.name for f in fields(self) if getattr(self, f.name)]


# ---------------------------------------------------------------------------------------------
# Regular expressions

_ABS = r"\s*(?P<abs>\d+\.\d+) \|  "
_REL = r"\s*(?P<rel>\d+) us \|  "
_CPU = r" *(?P<cpu>\d+)\) "
_PROC = r"(?P<proc>[^|]*?-\d+) *\| "
_LAT = r" (?P<lat>[^|\s][^|]{0,9}?) \| "
_DUR = r"(?:(?P<mark>[ +!#*@$]) (?P<dur>\d+(?:\.\d*)?) us *\|  | +\|  )"
_TAIL = r"(?P<indent> *)(?P<body>\S.*)$"

# The body after the indentation.
_NAME = r"(?P<name>[^\s(){}]+)(?: \[(?P<mod>[^\]\s]+)\])?"
_RE_ENTRY = re.compile(_NAME + r"\((?P<args>.*)\) \{(?: /\* <-(?P<retaddr>\S+) \*/)?"
                       r"(?: \((?P<tcdepth>\d+)\))?$")
_RE_LEAF = re.compile(_NAME + r"\((?P<args>.*)\);(?: /\* (?P<cmt>.*?) \*/)?"
                      r"(?: \((?P<tcdepth>\d+)\))?$")
_RE_EXIT = re.compile(r"\}(?: /\* (?P<xname>[^\s*]+)(?: \[(?P<xmod>[^\]\s]+)\])?"
                      r"(?: (?:= ?|ret=)(?P<xret>-?(?:0x)?[0-9a-fA-F]+))? \*/"
                      r"| \((?P<oldname>[A-Za-z_.][^()\s]*)\))?(?: \((?P<tcdepth>\d+)\))?$")
_RE_COMMENT = re.compile(r"/\* ?(?P<text>.*?)(?: ?\*/)?$")
_RE_LEAF_CMT = re.compile(r"(?:<-(?P<retaddr>\S+))?\s*(?:(?:= ?|ret=)(?P<ret>-?(?:0x)?[0-9a-fA-F]+))?$")

_RE_SWITCH = re.compile(r"^ *(?P<cpu>\d+)\) +(?P<from>.*?-\d+) +=> +(?P<to>.*?-\d+) *$")
_RE_SWITCH_SEP = re.compile(r"^ -{20,}\s*$")
_RE_LOST = re.compile(r"^CPU:(?P<cpu>\d+) \[LOST (?:(?P<n>\d+) )?EVENTS\]\s*$")
_RE_OVERRUN = re.compile(r"^ ?\(Overruns: (?P<n>\d+)\)\s*$")
_RE_IRQ = re.compile(r"^(?P<prefix>.*?)(?P<arrow>==========>|<==========) \|\s*$")
_RE_BUFFER_STARTED = re.compile(r"^#{3,} CPU (?P<cpu>\d+) buffer started #{3,}\s*$")
_RE_PROC_SPLIT = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s*$")

_RE_TRACECMD = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<lat>\S+)\s+)??(?P<abs>\d+\.\d+):\s+(?P<event>[\w:]+):\s?(?P<rest>.*)$")
_RE_TRACECMD_FG = re.compile(r"\s*" + _DUR + _TAIL)
_RE_TRACECMD_HDR = re.compile(r"^(?:cpus=\d+|version = \d+|CPU \d+ is empty|"
                              r"trace-cmd: .*|\s*$)")

_EVENT_PREFIX = re.compile(r"^(?P<event>[a-z_][a-z0-9_]*): ")

_MAX_U64 = 1 << 64
_SIGN_BIT = 1 << 63


def parse_retval(text: str) -> int:
    """``0x…`` (unsigned, as the kernel prints) or ``-22`` → signed 64-bit integer."""
    if text[:2] in ("0x", "0X"):
        value = int(text, 16)
    elif re.fullmatch(r"-?\d+", text):
        value = int(text, 10)
    else:
        value = int(text, 16)
    value %= _MAX_U64
    return value - _MAX_U64 if value & _SIGN_BIT else value


def _layout_regex(layout: Layout) -> re.Pattern[str]:
    parts = ["^"]
    if layout.abstime:
        parts.append(_ABS)
    if layout.reltime:
        parts.append(_REL)
    if layout.cpu:
        parts.append(_CPU)
    if layout.proc:
        parts.append(_PROC)
    if layout.lat:
        parts.append(_LAT)
    if layout.duration:
        parts.append(_DUR)
    parts.append(_TAIL)
    return re.compile("".join(parts))


def _all_layouts() -> list[Layout]:
    out = []
    for bits in range(64):
        out.append(Layout(abstime=bool(bits & 1), reltime=bool(bits & 2), cpu=bool(bits & 4),
                          proc=bool(bits & 8), lat=bool(bits & 16), duration=bool(bits & 32)))
    return out


_LAYOUTS = _all_layouts()
_LAYOUT_RES = {lay: _layout_regex(lay) for lay in _LAYOUTS}


def layout_from_header(lines: Iterable[str]) -> Layout | None:
    """The layout announced by a ``trace`` file's column header, or None if there is none.

    The header line is the one containing ``FUNCTION CALLS``, e.g.
    ``# CPU  TASK/PID         DURATION                  FUNCTION CALLS``.
    """
    for line in lines:
        if line.startswith("#") and "FUNCTION CALLS" in line:
            hdr = line
            rel = "REL TIME" in hdr
            abstime = "TIME" in hdr.replace("REL TIME", "")
            return Layout(abstime=abstime, reltime=rel, cpu="CPU" in hdr,
                          proc="TASK/PID" in hdr, lat="||||" in hdr, duration="DURATION" in hdr)
    return None


def detect_layout(lines: list[str]) -> tuple[Layout | None, int]:
    """Guess the layout from sample lines (no header, e.g. ``trace_pipe``).

    Returns ``(layout, n_matching)``; ``layout`` is None when no layout explains any line.
    trace-cmd report text is recognised by its ``funcgraph_entry:`` / ``funcgraph_exit:`` lines,
    and text of trace events alone (tracer ``nop``) by their ``name: fields`` lines.
    """
    sample = [ln for ln in lines if ln.strip() and not ln.startswith("#")
              and not _RE_SWITCH.match(ln) and not _RE_SWITCH_SEP.match(ln)][:400]
    if not sample:
        return None, 0
    events = [m["event"] for ln in sample if (m := _RE_TRACECMD.match(ln))]
    n_tc = sum(1 for ev in events if ev.startswith("funcgraph_"))
    best: Layout | None = None
    best_n = 0
    for lay, rx in _LAYOUT_RES.items():
        n = 0
        for ln in sample:
            m = rx.match(ln)
            if m and _body_ok(m["body"]):
                n += 1
        # Prefer more columns on ties (an all-optional layout could explain lines too loosely).
        if n > best_n or (n == best_n and best is not None and n > 0
                          and len(lay.describe()) > len(best.describe())):
            best, best_n = lay, n
    if n_tc > best_n:
        return Layout(cpu=True, proc=True, abstime=True, duration=True, tracecmd=True), n_tc
    if len(events) > best_n:
        # Trace events only (tracer nop, or trace-cmd report of other events): the kernel's
        # event line ``comm-pid [cpu] flags ts: name: fields`` is trace-cmd's line prefix.
        return Layout(cpu=True, proc=True, abstime=True, duration=True, tracecmd=True), len(events)
    return best, best_n


def _body_ok(body: str) -> bool:
    c = body[0]
    if c == "}":
        return _RE_EXIT.match(body) is not None
    if c == "/":
        return body.startswith("/*")
    return _RE_ENTRY.match(body) is not None or _RE_LEAF.match(body) is not None


class LineParser:
    """Parses lines one at a time into record columns (Python lists until :meth:`columns`).

    One instance per input; it carries the layout and the name interners, which the fast path
    shares so that codes agree.
    """

    def __init__(self, layout: Layout, funcs: Interner, modules: Interner, comms: Interner):
        self.layout = layout
        self.funcs = funcs
        self.modules = modules
        self.comms = comms
        self._rx = _layout_regex(layout) if not layout.tracecmd else None
        self._mark_first = (layout.duration and not layout.tracecmd and not (
            layout.abstime or layout.reltime or layout.cpu or layout.proc or layout.lat))
        self._generic = [rx for lay, rx in _LAYOUT_RES.items() if lay != layout]
        self.cols: dict[str, list] = {name: [] for name in COLUMNS}
        self.comments: dict[int, str] = {}
        self.switches: dict[int, tuple[str, int, str, int]] = {}
        self.lost: dict[int, int] = {}
        self.overruns: dict[int, int] = {}
        self.args: dict[int, str] = {}
        self.retaddr: dict[int, str] = {}
        self.flags: dict[int, str] = {}
        self.header: list[str] = []
        self.skipped = 0
        self.skipped_examples: list[tuple[int, str]] = []
        self.other_layout_lines = 0
        self.buffer_started: list[int] = []

    # -- output --------------------------------------------------------------------------------
    def take_columns(self) -> dict[str, np.ndarray]:
        """The records parsed since the last call, as numpy columns; resets the lists."""
        out = {name: np.asarray(vals, dtype=COLUMNS[name]) for name, vals in self.cols.items()}
        self.cols = {name: [] for name in COLUMNS}
        return out

    def _skip(self, lineno: int, line: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append((lineno, line[:200]))

    def _add(self, lineno: int, kind: int, cpu: int = -1, pid: int = -1, comm: int = -1,
             ts: float = np.nan, dur: float = np.nan, depth: int = -1, func: int = -1,
             module: int = -1, retval: int = 0, has_ret: bool = False) -> None:
        c = self.cols
        c["line"].append(lineno)
        c["kind"].append(kind)
        c["cpu"].append(cpu)
        c["pid"].append(pid)
        c["comm"].append(comm)
        c["ts"].append(ts)
        c["dur"].append(dur)
        c["depth"].append(depth)
        c["func"].append(func)
        c["module"].append(module)
        c["retval"].append(retval)
        c["has_ret"].append(has_ret)

    # -- parsing -------------------------------------------------------------------------------
    def feed(self, lines: Iterable[tuple[int, str]]) -> None:
        """Parse ``(lineno, text)`` pairs (text without the newline)."""
        for lineno, line in lines:
            self.parse_line(lineno, line)

    def parse_line(self, lineno: int, line: str) -> None:
        if not line or line.isspace():
            return
        if line[0] == "#":
            # With the duration as the first column (no time/cpu/proc/latency columns) a call
            # of 1-10 ms starts with its "#" overhead mark: "# 1560.141 us |  f();".
            if self._mark_first and line.startswith("# "):
                m = self._rx.match(line)  # type: ignore[union-attr]
                if m is not None and m["mark"] == "#" and self._call_line(lineno, m):
                    return
            m = _RE_BUFFER_STARTED.match(line)
            if m:
                self.buffer_started.append(int(m["cpu"]))
            elif len(self.header) < 200:
                self.header.append(line)
            return
        if self.layout.tracecmd:
            self._parse_tracecmd(lineno, line)
            return
        m = self._rx.match(line)  # type: ignore[union-attr]
        if m is not None and self._call_line(lineno, m):
            return
        if self._special_line(lineno, line):
            return
        for rx in self._generic:
            m = rx.match(line)
            if m is not None and self._call_line(lineno, m):
                self.other_layout_lines += 1
                return
        self._skip(lineno, line)

    def _special_line(self, lineno: int, line: str) -> bool:
        if _RE_SWITCH_SEP.match(line):
            return True
        m = _RE_SWITCH.match(line)
        if m:
            fm = _RE_PROC_SPLIT.match(m["from"])
            tm = _RE_PROC_SPLIT.match(m["to"])
            if fm and tm:
                to_pid = int(tm["pid"])
                self.switches[lineno] = (fm["comm"], int(fm["pid"]), tm["comm"], to_pid)
                self._add(lineno, K_SWITCH, cpu=int(m["cpu"]), pid=to_pid,
                          comm=self.comms.code(tm["comm"]))
                return True
        m = _RE_LOST.match(line)
        if m:
            n = int(m["n"]) if m["n"] is not None else -1
            self.lost[lineno] = n
            self._add(lineno, K_LOST, cpu=int(m["cpu"]))
            return True
        m = _RE_OVERRUN.match(line)
        if m:
            self.overruns[lineno] = int(m["n"])
            self._add(lineno, K_OVERRUN)
            return True
        m = _RE_IRQ.match(line)
        if m:
            kind = K_IRQ_ENTER if m["arrow"] == "==========>" else K_IRQ_EXIT
            cpu, pid, comm, ts = self._prefix_fields(m["prefix"])
            self._add(lineno, kind, cpu=cpu, pid=pid, comm=comm, ts=ts)
            return True
        return False

    def _prefix_fields(self, prefix: str) -> tuple[int, int, int, float]:
        """CPU/pid/comm/ts out of the context prefix of an irq-arrow line."""
        cpu = pid = comm = -1
        ts = np.nan
        rest = prefix
        if self.layout.abstime:
            m = re.match(_ABS, rest)
            if m:
                ts = float(m["abs"])
                rest = rest[m.end():]
        if self.layout.reltime:
            m = re.match(_REL, rest)
            if m:
                ts = int(m["rel"]) / 1e6
                rest = rest[m.end():]
        if self.layout.cpu:
            m = re.match(_CPU, rest)
            if m:
                cpu = int(m["cpu"])
                rest = rest[m.end():]
        if self.layout.proc:
            m = re.match(_PROC, rest)
            if m:
                pm = _RE_PROC_SPLIT.match(m["proc"])
                if pm:
                    pid = int(pm["pid"])
                    comm = self.comms.code(pm["comm"])
        return cpu, pid, comm, ts

    def _call_line(self, lineno: int, m: re.Match[str]) -> bool:
        """Record a line whose context columns matched; False if its body is not understood."""
        body = m["body"]
        gd = m.groupdict()
        cpu = int(gd["cpu"]) if gd.get("cpu") is not None else -1
        pid = comm = -1
        proc = gd.get("proc")
        if proc is not None:
            pm = _RE_PROC_SPLIT.match(proc)
            if pm is None:
                return False
            pid = int(pm["pid"])
            comm = self.comms.code(pm["comm"])
        ts = np.nan
        if gd.get("abs") is not None:
            ts = float(gd["abs"])
        elif gd.get("rel") is not None:
            ts = int(gd["rel"]) / 1e6
        dur = float(gd["dur"]) if gd.get("dur") is not None else np.nan
        indent = len(m["indent"])
        return self._body(lineno, body, indent, cpu, pid, comm, ts, dur)

    def _body(self, lineno: int, body: str, indent: int, cpu: int, pid: int, comm: int,
              ts: float, dur: float, tc_depth: int | None = None) -> bool:
        c0 = body[0]
        if c0 == "/":
            if not body.startswith("/*"):
                return False
            cm = _RE_COMMENT.match(body)
            self.comments[lineno] = cm["text"] if cm else body
            self._add(lineno, K_COMMENT, cpu=cpu, pid=pid, comm=comm, ts=ts, depth=-1)
            return True
        depth = indent // 2
        if c0 == "}":
            em = _RE_EXIT.match(body)
            if em is None:
                return False
            if em["tcdepth"] is not None:
                depth = int(em["tcdepth"])
            name = em["xname"] or em["oldname"]
            func = self.funcs.code(name) if name else -1
            module = self.modules.code(em["xmod"]) if em["xmod"] else -1
            has_ret = em["xret"] is not None
            retval = parse_retval(em["xret"]) if has_ret else 0
            self._add(lineno, K_EXIT, cpu=cpu, pid=pid, comm=comm, ts=ts, dur=dur, depth=depth,
                      func=func, module=module, retval=retval, has_ret=has_ret)
            return True
        em = _RE_ENTRY.match(body)
        if em is not None:
            kind = K_ENTRY
            if em["retaddr"]:
                self.retaddr[lineno] = em["retaddr"]
        else:
            em = _RE_LEAF.match(body)
            if em is None:
                return False
            kind = K_LEAF
        if em["tcdepth"] is not None:
            depth = int(em["tcdepth"])
        args = em["args"]
        if args:
            self.args[lineno] = args
        retval = 0
        has_ret = False
        if kind == K_LEAF and em["cmt"] is not None:
            cm = _RE_LEAF_CMT.match(em["cmt"].strip())
            if cm is not None:
                if cm["retaddr"]:
                    self.retaddr[lineno] = cm["retaddr"]
                if cm["ret"] is not None:
                    retval = parse_retval(cm["ret"])
                    has_ret = True
        func = self.funcs.code(em["name"])
        module = self.modules.code(em["mod"]) if em["mod"] else -1
        self._add(lineno, kind, cpu=cpu, pid=pid, comm=comm, ts=ts, dur=dur, depth=depth,
                  func=func, module=module, retval=retval, has_ret=has_ret)
        return True

    def _parse_tracecmd(self, lineno: int, line: str) -> None:
        m = _RE_TRACECMD.match(line)
        if m is None:
            ml = _RE_LOST.match(line)
            if ml or _RE_OVERRUN.match(line):
                self._special_line(lineno, line)
            elif _RE_TRACECMD_HDR.match(line):
                if len(self.header) < 200:
                    self.header.append(line)
            else:
                self._skip(lineno, line)
            return
        cpu = int(m["cpu"])
        pid = int(m["pid"])
        comm = self.comms.code(m["comm"])
        ts = float(m["abs"])
        event = m["event"]
        rest = m["rest"]
        if event in ("funcgraph_entry", "funcgraph_exit"):
            fm = _RE_TRACECMD_FG.match(rest)
            if fm is None or not self._body(lineno, fm["body"], len(fm["indent"]), cpu, pid, comm,
                                            ts, float(fm["dur"]) if fm["dur"] else np.nan):
                self._skip(lineno, line)
            return
        # Any other event: keep it as an event record, like the kernel's inline comments.
        self.comments[lineno] = f"{event}: {rest}".rstrip()
        if m["lat"]:
            self.flags[lineno] = m["lat"]
        self._add(lineno, K_COMMENT, cpu=cpu, pid=pid, comm=comm, ts=ts)


def event_name(text: str) -> str:
    """``kfree_skb`` for ``kfree_skb: skbaddr=…``; ``marker`` for trace_marker/printk text."""
    m = _EVENT_PREFIX.match(text)
    return m["event"] if m else "marker"


_RX_MARK = re.compile(r"[|)] ([+!#*@$]) \d")
_RX_BIGMARK = re.compile(r"[|)] ([#*@$]) \d")
_RX_NAMED_EXIT = re.compile(r"\} /\* \S")
_RX_ENTRY = re.compile(r"\) \{$|\) \{ /\*", re.M)
_RX_RET_NEW = re.compile(r"(?:\(\);|\} /\* \S+(?: \[\S+\])?) ?/?\*? ?(?:<-\S+ )?ret=")
_RX_RET_OLD = re.compile(r"(?:\(\); /\* = |\} /\* \S+(?: \[\S+\])? = )")
_RX_RETADDR = re.compile(r"/\* <-\S+")
_RX_ARGS = re.compile(r"\w\((?:\w+=[^,)]*)(?:, \w+=[^,)]*)*\) \{|\w\((?:\w+=[^,)]*)(?:, \w+=[^,)]*)*\);")
_RX_OLD_TAIL = re.compile(r"\} \([\w.]+\)$", re.M)


def sniff_options(lines: list[str], layout: Layout) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options and kernel-version hints visible in sample lines.

    Returns ``(options, hints)``: ``options`` maps tracefs option names to True/False, or None
    where the sample cannot tell; ``hints`` holds ``kernel_at_least`` / ``kernel_at_most`` and
    the evidence.
    """
    text = "\n".join(lines)
    has_cols = layout.abstime or layout.reltime or layout.cpu or layout.proc or layout.duration
    marks = bool(_RX_MARK.search(text))
    options: dict[str, Any] = {
        "context-info": bool(has_cols),
        "funcgraph-abstime": layout.abstime,
        "funcgraph-rel-time": layout.reltime,
        "funcgraph-cpu": layout.cpu,
        "funcgraph-proc": layout.proc,
        "latency-format": layout.lat,
        "funcgraph-duration": layout.duration,
        "funcgraph-overhead": True if marks else None,
        "funcgraph-tail": None,
        "funcgraph-retval": None,
        "funcgraph-retaddr": True if _RX_RETADDR.search(text) else None,
        "funcgraph-args": True if _RX_ARGS.search(text) else None,
        "funcgraph-overrun": True if "(Overruns:" in text else None,
        "funcgraph-irqs": True if ("==========>" in text or "<==========" in text) else None,
    }
    ret_new = bool(_RX_RET_NEW.search(text))
    ret_old = bool(_RX_RET_OLD.search(text))
    if ret_new or ret_old:
        options["funcgraph-retval"] = True
    elif _RX_ENTRY.search(text) and not layout.tracecmd:
        options["funcgraph-retval"] = False
    if _RX_ENTRY.search(text) and not (ret_new or ret_old):
        # Return values force names on every exit, so tail is only visible without them.
        named = len(_RX_NAMED_EXIT.findall(text))
        exits = len(re.findall(r"(?:^|\|  | )\}(?: |$)", text, re.M))
        if exits:
            options["funcgraph-tail"] = named >= exits
    hints: dict[str, Any] = {}
    evidence: list[str] = []
    if layout.tracecmd:
        evidence.append("trace-cmd report text")
    if ret_new or options["funcgraph-retaddr"]:
        hints["kernel_at_least"] = "6.13"
        evidence.append("'ret=' return values / return addresses (6.13+)")
    elif ret_old:
        hints["kernel_at_least"] = "6.5"
        hints["kernel_at_most"] = "6.12"
        evidence.append("'/* = value */' return values (6.5-6.12)")
    if options["funcgraph-args"]:
        hints["kernel_at_least"] = "6.16"
        evidence.append("function arguments (6.16+)")
    if layout.reltime:
        hints.setdefault("kernel_at_least", "6.11")
        evidence.append("funcgraph-rel-time column")
    if _RX_BIGMARK.search(text):
        hints.setdefault("kernel_at_least", "4.0")
        evidence.append("overhead marks beyond '+'/'!' (about 4.0+)")
    if _RX_OLD_TAIL.search(text):
        hints["kernel_at_most"] = "3.x"
        evidence.append("'} (func)' exits (very old kernels)")
    if evidence:
        hints["evidence"] = evidence
    return options, hints
