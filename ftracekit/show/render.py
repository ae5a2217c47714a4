"""Text and HTML renderings of call trees and traces (for terminals and Jupyter)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd

from ..analysis import frame_names, task_names
from .format import US, errno_name, fmt_count, fmt_s, fmt_us

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["CallTree", "trace_html"]


@dataclass
class _Node:
    call: int
    level: int
    hidden: int = 0          # children folded (summary line under the node)
    hidden_us: float = 0.0
    why: str = ""            # why they are folded
    group: list[int] | None = None    # a run of same-function siblings shown as one row
    hidden_irq_us: float = 0.0        # of hidden_us: interrupts of this call


def _retval_text(v: object) -> str:
    """``= -22 (-EINVAL)`` in the kernel's error range, else ``= 0x…`` (pointers, void)."""
    if v is None or v is pd.NA or v != v:
        return ""
    v = int(v)
    name = errno_name(v)
    if name:
        return f"= {v} ({name})"
    return f"= {v:#x}" if v >= 0 else f"= {v & 0xFFFFFFFFFFFFFFFF:#x}"


#: Consecutive calls of one function (off the critical path) shown as one row from this many.
_RUN = 3


class CallTree:
    """The tree under one call; ``str()`` gives indented text, ``_repr_html_`` collapsible HTML.

    Each line: duration and self time (µs), then the function indented by depth, as in the
    kernel's own output, with its return value where the trace has one, ``(interrupt)`` where
    it interrupted its caller, and the trace events that happened in it (``·``). Children
    shorter than ``min_us`` and levels below ``max_depth`` are folded into one line per parent
    that says how many calls and how much time it holds, and why; the critical path
    (:meth:`ftracekit.Trace.critical_path`) is never folded, and the HTML opens along it.
    """

    def __init__(self, trace: "Trace", call: int, *, max_depth: int | None = None,
                 min_us: float = 0.0, events: bool = True):
        self.trace = trace
        self.call = call
        self.max_depth = max_depth
        self.min_us = min_us
        self.events = events
        self.path = [int(c) for c in trace.critical_path(call)["call"]]

    def _walk(self) -> Iterator[_Node]:
        index = self.trace._child_idx()
        dur = self.trace.calls["duration_us"]
        irq = self.trace.calls["in_irq"]
        on_path = set(self.path)
        stack: list = [(self.call, 0)]
        while stack:
            call, level = stack.pop()
            if isinstance(call, list):           # a run of siblings: one row, not expanded
                yield _Node(call[0], level, group=call)
                continue
            kids = index.children(call)
            node = _Node(call, level)
            if len(kids):
                kd = dur.loc[kids].to_numpy(dtype=float)
                keep = np.array([k in on_path for k in kids.tolist()])
                if self.max_depth is not None and level >= self.max_depth:
                    fold = ~keep
                    node.why = f"deeper than max_depth={self.max_depth}"
                elif self.min_us > 0:
                    fold = ~(kd >= self.min_us) & ~keep
                    node.why = f"each shorter than min_us={fmt_us(self.min_us)}"
                else:
                    fold = np.zeros(len(kids), dtype=bool)
                node.hidden = int(fold.sum())
                node.hidden_us = float(np.nansum(kd[fold]))
                k_irq = irq.loc[kids].to_numpy(dtype=bool) & (not bool(irq.loc[call]))
                node.hidden_irq_us = float(np.nansum(kd[fold & k_irq]))
                kids = kids[~fold]
            yield node
            for item in reversed(self._runs(kids.tolist(), on_path)):
                if isinstance(item, list):
                    stack.append((item, level + 1))
                else:
                    stack.append((item, level + 1))

    def _runs(self, kids: list[int], on_path: set[int]) -> list:
        """Siblings in order, with runs of ``_RUN`` or more consecutive calls of the same
        function (none on the critical path) as one list each."""
        if len(kids) < _RUN:
            return kids
        names = frame_names(self.trace.calls.loc[kids], module=False)
        out: list = []
        i = 0
        while i < len(kids):
            j = i
            while (j + 1 < len(kids) and names[j + 1] == names[i] and kids[j + 1] not in on_path
                   and kids[i] not in on_path):
                j += 1
            out.append(kids[i:j + 1] if j - i + 1 >= _RUN else kids[i])
            if j - i + 1 < _RUN:
                j = i
            i = j + 1
        return out

    def rows(self) -> list[dict]:
        """The visible nodes as dicts: ``call``, ``level``, ``func``, ``module``,
        ``duration_us``, ``self_us``, ``status``, ``n_children``, ``retval``, ``interrupt``,
        ``on_path``, ``hidden``/``hidden_us``/``why`` (the folded children), ``events``
        (``(line, text)`` of the events that happened in the call itself)."""
        c = self.trace.calls
        nodes = list(self._walk())
        ids = [n.call for n in nodes]
        sub = c.loc[ids]
        names = frame_names(sub, module=False)
        irq = sub["in_irq"].to_numpy(dtype=bool)
        par = sub["parent"].to_numpy()
        par_irq = np.zeros(len(ids), dtype=bool)
        has = np.isin(par, c.index.to_numpy())
        par_irq[has] = c.loc[par[has], "in_irq"].to_numpy(dtype=bool)
        ev: dict[int, list[tuple[int, str]]] = {}
        if self.events and len(self.trace.events):
            e = self.trace.events
            e = e[e["call"].isin(ids)]
            for call, line, text in zip(e["call"].tolist(), e["line"].tolist(), e["text"].tolist()):
                ev.setdefault(int(call), []).append((int(line), str(text)))
        on_path = set(self.path)
        out = []
        for i, (node, name) in enumerate(zip(nodes, names)):
            r = sub.iloc[i]
            if node.group:
                g = c.loc[node.group]
                d = g["duration_us"].to_numpy(dtype=float)
                out.append({"call": node.call, "level": node.level, "func": name,
                            "module": None, "duration_us": float(np.nansum(d)),
                            "self_us": float(np.nansum(g["self_us"].to_numpy(dtype=float))),
                            "status": "complete", "n_children": int(g["n_children"].sum()),
                            "retval": None, "line": int(r["line"]), "interrupt": False,
                            "on_path": False, "hidden": 0, "hidden_us": 0.0, "why": "",
                            "events": [], "count": len(node.group),
                            "min_us": float(np.nanmin(d)) if np.isfinite(d).any() else np.nan,
                            "max_us": float(np.nanmax(d)) if np.isfinite(d).any() else np.nan})
                continue
            out.append({"count": 1, "call": node.call, "level": node.level, "func": name,
                        "module": None if r["module"] != r["module"] else str(r["module"]),
                        "duration_us": float(r["duration_us"]), "self_us": float(r["self_us"]),
                        "status": str(r["status"]), "n_children": int(r["n_children"]),
                        "retval": r["retval"], "line": int(r["line"]),
                        "interrupt": bool(irq[i] and not par_irq[i] and node.level > 0),
                        "on_path": node.call in on_path, "hidden": node.hidden,
                        "hidden_us": node.hidden_us, "why": node.why,
                        "hidden_irq_us": node.hidden_irq_us,
                        "events": ev.get(node.call, [])})
        return out

    def _lines(self) -> list[tuple[str, int, dict]]:
        """(kind, level, row) in print order: calls, their events at their place, folds."""
        rows = self.rows()
        out: list[tuple[str, int, dict]] = []
        # an event prints before the first visible child that starts after it
        pending: list[tuple[int, int, dict]] = []      # (line, level, event row)
        for r in rows:
            while pending and pending[-1][0] < r["line"] and pending[-1][1] > r["level"] - 1:
                line, lvl, er = pending.pop()
                out.append(("event", lvl, er))
            # events of enclosing calls that came before this call already printed above
            out.append(("call", r["level"], r))
            for line, text in sorted(r["events"], reverse=True):
                pending.append((line, r["level"] + 1, {"text": text, "line": line}))
            if r["hidden"]:
                out.append(("fold", r["level"] + 1, r))
        while pending:
            line, lvl, er = pending.pop()
            out.append(("event", lvl, er))
        return out

    def __str__(self) -> str:
        c = self.trace.calls
        top = c.loc[self.call]
        task = task_names(c.loc[[self.call], "pid"].to_numpy(), c.loc[[self.call], "cpu"].to_numpy(),
                          c.loc[[self.call], "comm"])[0]
        head = (f"call {self.call}: {frame_names(c.loc[[self.call]])[0]}  task {task}  "
                f"cpu {top['cpu']}  line {top['line']}")
        if top["start_s"] == top["start_s"]:
            head += f"  start {fmt_s(top['start_s'])} s"
        lines = [head, f"{'duration ' + US:>15} {'self ' + US:>13}  function"]
        items = self._lines()
        for kind, level, r in items:
            pad = "  " * level
            if kind == "call":
                name = r["func"] + (f" [{r['module']}]" if r["module"] else "")
                mark = {"no-exit": "  (no exit)", "no-entry": "  (no entry)"}.get(r["status"], "")
                if r["interrupt"]:
                    mark += "  (interrupt)"
                ret = _retval_text(r["retval"])
                if r["count"] > 1:
                    mark = (f"  ×{fmt_count(r['count'])} calls in a row, each "
                            f"{fmt_us(r['min_us'])}–{fmt_us(r['max_us'])}")
                lines.append(f"{fmt_us(r['duration_us'], 15)} {fmt_us(r['self_us'], 13)}  "
                             f"{pad}{name}{'  ' + ret if ret else ''}{mark}")
            elif kind == "event":
                lines.append(f"{'':>15} {'':>13}  {pad}· {r['text']}")
            else:
                n = r["hidden"]
                irq_part = (f", {fmt_us(r['hidden_irq_us'])} {US} of it interrupts"
                            if r.get("hidden_irq_us") else "")
                lines.append(f"{fmt_us(r['hidden_us'], 15)} {'':>13}  {pad}… {fmt_count(n)} "
                             f"call{'s' if n != 1 else ''} folded ({r['why']}{irq_part})")
        folded = [r for k, _, r in items if k == "fold"]
        if folded:
            lines.append(f"(folded calls hold {fmt_us(sum(r['hidden_us'] for r in folded))} "
                         f"{US}; show them with a larger max_depth / smaller min_us)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        items = self._lines()
        if not items:
            return "<i>empty</i>"
        top = items[0][2]["duration_us"] or 1.0
        parts = ["<div style='font-family:monospace;font-size:12px'>"]
        depth_open = 0
        calls = [(i, lvl) for i, (k, lvl, _) in enumerate(items) if k == "call"]
        next_call_level = {}
        for (i, lvl), nxt in zip(calls, calls[1:] + [(len(items), -1)]):
            next_call_level[i] = nxt[1]
        for i, (kind, level, r) in enumerate(items):
            while depth_open > level:
                parts.append("</div></details>")
                depth_open -= 1
            if kind == "event":
                parts.append(f"<div style='margin-left:1.1em;color:#2a6f97'>· "
                             f"{html.escape(r['text'])}</div>")
                continue
            if kind == "fold":
                parts.append(f"<div style='margin-left:1.1em;color:#888'>… {fmt_count(r['hidden'])} "
                             f"calls folded, {fmt_us(r['hidden_us'])} {US} ({html.escape(r['why'])})</div>")
                continue
            name = html.escape(r["func"] + (f" [{r['module']}]" if r["module"] else ""))
            pct = 100 * r["duration_us"] / top if top and r["duration_us"] == r["duration_us"] else 0
            color = "#d62728" if r["on_path"] else "#999"
            bar = (f"<span style='display:inline-block;width:{max(pct, 0.5):.1f}px;height:8px;"
                   f"background:{color};margin-right:4px'></span>")
            ret = _retval_text(r["retval"])
            if r["count"] > 1:
                ret = f"×{fmt_count(r['count'])} in a row"
            extra = (" <i>(interrupt)</i>" if r["interrupt"] else "") + (f" {html.escape(ret)}" if ret else "")
            label = (f"{bar}<b>{name}</b> {fmt_us(r['duration_us'])} {US} "
                     f"<span style='color:#666'>(self {fmt_us(r['self_us'])}){extra}</span>")
            has_kids = next_call_level.get(i, -1) > level or (i + 1 < len(items) and items[i + 1][0] != "call")
            if has_kids:
                open_attr = " open" if r["on_path"] or level == 0 else ""
                parts.append(f"<details{open_attr}><summary>{label}</summary>"
                             f"<div style='margin-left:1.5em'>")
                depth_open = level + 1
            else:
                parts.append(f"<div style='margin-left:1.1em'>{label}</div>")
        parts.append("</div></details>" * depth_open)
        parts.append("</div>")
        return "".join(parts)


_CELL = "padding:1px 8px;text-align:right;white-space:nowrap"
_CELL_L = "padding:1px 8px;text-align:left;white-space:nowrap"


def _html_table(rows: list[list[str]], header: list[str], left: set[int]) -> str:
    """A small table: header row, cells already escaped/formatted; ``left``: left-aligned cols."""
    th = "".join(f"<th style='{_CELL_L if i in left else _CELL}'>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td style='{_CELL_L if i in left else _CELL}'>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f"<table style='border-collapse:collapse;font-size:12px;margin:2px 0 8px 0'>"
            f"<thead><tr style='border-bottom:1px solid #aaa'>{th}</tr></thead><tbody>{body}</tbody></table>")


def trace_html(trace: "Trace", top: int = 10, slowest: int = 5) -> str:
    """Compact HTML summary of a trace (Jupyter): one headline, warnings when something was
    lost or skipped, the slowest root calls and the top functions by self time."""
    s = trace.summary()
    esc = html.escape
    bits = [f"{s['calls']:,} calls", f"{s['functions']:,} functions",
            f"{s['tasks']} task{'s' if s['tasks'] != 1 else ''}",
            f"{s['cpus']} CPU{'s' if s['cpus'] != 1 else ''}", f"{s['events']:,} events"]
    if s["span_s"] is not None:
        bits.append(f"span {fmt_s(s['span_s'])} s")
    else:
        bits.append("no timestamps")
    warn = []
    if s["no_exit"] or s["no_entry"]:
        warn.append(f"{s['no_exit']:,} calls without exit, {s['no_entry']:,} without entry")
    if s["lost_events"] or s["lost_event_lines_without_count"]:
        warn.append(f"{s['lost_events']:,} events lost")
    if s.get("recording_lost_events"):
        warn.append(f"{s['recording_lost_events']:,} events lost while recording")
    if s["skipped_lines"]:
        warn.append(f"{s['skipped_lines']:,} lines skipped")
    parts = [f"<div style='font-size:13px'><b>ftracekit.Trace</b> "
             f"<code>{esc(str(s['source']))}</code><br>{esc(' · '.join(bits))}"]
    if warn:
        parts.append(f"<br><span style='color:#b35900'>⚠ {esc('; '.join(warn))}</span>")
    parts.append("</div>")
    c = trace.calls
    if len(c):
        roots = trace.roots().sort_values("duration_us", ascending=False, na_position="last",
                                          kind="stable").head(slowest)
        rows = []
        tasks = task_names(roots["pid"].to_numpy(), roots["cpu"].to_numpy(), roots["comm"])
        for (call, r), name, task in zip(roots.iterrows(), frame_names(roots), tasks):
            when = (fmt_s(r["start_s"]) if r["start_s"] == r["start_s"] else f"line {r['line']}")
            rows.append([str(call), esc(name), fmt_us(float(r["duration_us"])),
                         fmt_us(float(r["self_us"])), esc(task), when])
        parts.append(f"<div style='font-size:12px;margin-top:6px'><b>slowest root calls</b> ({US})</div>")
        parts.append(_html_table(rows, ["call", "function", "duration", "self", "task", "start"],
                                 {1, 4}))
        t = trace.top(top)
        rows = [[esc(str(f)), fmt_count(r["count"]), fmt_us(r["self_us"]), fmt_us(r["total_us"]),
                 fmt_us(r["p50_us"]), fmt_us(r["p99_us"]), fmt_us(r["max_us"])]
                for f, r in t.iterrows()]
        parts.append(f"<div style='font-size:12px'><b>top functions by self time</b> "
                     f"(µs; {len(t)} of {s['functions']:,})</div>")
        parts.append(_html_table(rows, ["function", "calls", "self", "total", "p50", "p99", "max"], {0}))
    return "<div>" + "".join(parts) + "</div>"
