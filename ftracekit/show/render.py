"""Text and HTML renderings of call trees and traces (for terminals and Jupyter)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..analysis import frame_names
from .format import fmt_us

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["CallTree", "trace_html"]


@dataclass
class _Node:
    call: int
    level: int
    hidden: int = 0          # children hidden by min_us / max_depth (summary line)
    hidden_us: float = 0.0


class CallTree:
    """The tree under one call; ``str()`` gives indented text, ``_repr_html_`` collapsible HTML.

    Each line: duration (µs), self time (µs), then the function indented by depth, as in the
    kernel's own output. Children shorter than ``min_us`` and levels below ``max_depth`` are
    folded into a "… N more calls, X µs" line under their parent.
    """

    def __init__(self, trace: "Trace", call: int, *, max_depth: int | None = None,
                 min_us: float = 0.0):
        self.trace = trace
        self.call = call
        self.max_depth = max_depth
        self.min_us = min_us

    def _walk(self) -> Iterator[_Node]:
        index = self.trace._child_idx()
        dur = self.trace.calls["duration_us"]
        stack = [(self.call, 0)]
        while stack:
            call, level = stack.pop()
            kids = index.children(call)
            node = _Node(call, level)
            if len(kids):
                if self.max_depth is not None and level >= self.max_depth:
                    node.hidden = len(kids)
                    node.hidden_us = float(np.nansum(dur.loc[kids].to_numpy(dtype=float)))
                    kids = kids[:0]
                elif self.min_us > 0:
                    kd = dur.loc[kids].to_numpy(dtype=float)
                    small = ~(kd >= self.min_us)
                    node.hidden = int(small.sum())
                    node.hidden_us = float(np.nansum(kd[small]))
                    kids = kids[~small]
            yield node
            for k in reversed(kids.tolist()):
                stack.append((k, level + 1))

    def rows(self) -> list[dict]:
        """The visible nodes as dicts (call, level, func, duration_us, self_us, hidden, …)."""
        c = self.trace.calls
        nodes = list(self._walk())
        names = frame_names(c.loc[[n.call for n in nodes]], module=False)
        out = []
        for node, name in zip(nodes, names):
            r = c.loc[node.call]
            out.append({"call": node.call, "level": node.level, "func": name,
                        "module": None if r["module"] != r["module"] else str(r["module"]),
                        "duration_us": float(r["duration_us"]), "self_us": float(r["self_us"]),
                        "status": str(r["status"]), "n_children": int(r["n_children"]),
                        "hidden": node.hidden, "hidden_us": node.hidden_us})
        return out

    def __str__(self) -> str:
        c = self.trace.calls
        top = c.loc[self.call]
        head = (f"call {self.call}: {frame_names(c.loc[[self.call]])[0]}  task {top['comm']}-{top['pid']}  "
                f"cpu {top['cpu']}  line {top['line']}")
        if top["start_s"] == top["start_s"]:
            head += f"  start {top['start_s']:.6f} s"
        lines = [head, f"{'duration_us':>14} {'self_us':>12}  function"]
        for r in self.rows():
            name = r["func"] + (f" [{r['module']}]" if r["module"] else "")
            mark = {"no-exit": "  (no exit)", "no-entry": "  (no entry)"}.get(r["status"], "")
            lines.append(f"{fmt_us(r['duration_us'], 14)} {fmt_us(r['self_us'], 12)}  "
                         f"{'  ' * r['level']}{name}{mark}")
            if r["hidden"]:
                lines.append(f"{fmt_us(r['hidden_us'], 14)} {'':>12}  {'  ' * (r['level'] + 1)}"
                             f"… {r['hidden']} more call{'s' if r['hidden'] != 1 else ''}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = self.rows()
        if not rows:
            return "<i>empty</i>"
        top = rows[0]["duration_us"] or 1.0
        parts = ["<div style='font-family:monospace;font-size:12px'>"]
        depth_open = 0
        for i, r in enumerate(rows):
            while depth_open > r["level"]:
                parts.append("</div></details>")
                depth_open -= 1
            name = html.escape(r["func"] + (f" [{r['module']}]" if r["module"] else ""))
            pct = 100 * r["duration_us"] / top if top and r["duration_us"] == r["duration_us"] else 0
            bar = (f"<span style='display:inline-block;width:{max(pct, 0.5):.1f}px;height:8px;"
                   f"background:#d62728;margin-right:4px'></span>")
            label = (f"{bar}<b>{name}</b> {fmt_us(r['duration_us'])} µs "
                     f"<span style='color:#666'>(self {fmt_us(r['self_us'])})</span>")
            has_kids = i + 1 < len(rows) and rows[i + 1]["level"] > r["level"]
            extra = ""
            if r["hidden"]:
                extra = (f"<div style='margin-left:1.5em;color:#888'>… {r['hidden']} more calls, "
                         f"{fmt_us(r['hidden_us'])} µs</div>")
            if has_kids:
                open_attr = " open" if r["level"] < 2 else ""
                parts.append(f"<details{open_attr}><summary>{label}</summary>"
                             f"<div style='margin-left:1.5em'>{extra}")
                depth_open += 1
            else:
                parts.append(f"<div style='margin-left:1.1em'>{label}{extra}</div>")
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
        bits.append(f"span {s['span_s']:.6f} s")
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
        for (call, r), name in zip(roots.iterrows(), frame_names(roots)):
            comm = r["comm"] if isinstance(r["comm"], str) else "?"
            task = f"{comm}-{r['pid']}" if r["pid"] >= 0 else comm
            when = (f"{r['start_s']:.6f}" if r["start_s"] == r["start_s"] else f"line {r['line']}")
            rows.append([str(call), esc(name), fmt_us(float(r["duration_us"])),
                         fmt_us(float(r["self_us"])), esc(task), when])
        parts.append("<div style='font-size:12px;margin-top:6px'><b>slowest root calls</b> (µs)</div>")
        parts.append(_html_table(rows, ["call", "function", "duration", "self", "task", "start"],
                                 {1, 4}))
        t = trace.top(top)
        rows = [[esc(str(f)), f"{int(r['count']):,}", fmt_us(r["self_us"]), fmt_us(r["total_us"]),
                 fmt_us(r["p50_us"]), fmt_us(r["p99_us"]), fmt_us(r["max_us"])]
                for f, r in t.iterrows()]
        parts.append(f"<div style='font-size:12px'><b>top functions by self time</b> "
                     f"(µs; {len(t)} of {s['functions']:,})</div>")
        parts.append(_html_table(rows, ["function", "calls", "self", "total", "p50", "p99", "max"], {0}))
    return "<div>" + "".join(parts) + "</div>"
