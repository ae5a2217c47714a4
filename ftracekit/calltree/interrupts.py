"""Where an interrupt's calls belong: inside the call whose measured time contains them.

The linker (:mod:`ftracekit.calltree.link`) places an interrupt by the printed depths and the
late entry/exit rules. Kernels differ in when a function's call time is taken relative to an
interrupt that hits right at its entry or return, so the printed structure alone can put an
interrupt under a call whose duration does not cover it (6.12 and 6.17 print ``f() {``, the
interrupt one level deeper, then ``}`` with f's sub-µs duration), or next to a call whose
duration does (6.1 prints the interrupt at f's own depth and f's late exit after it). Either
way one call's time is counted twice: the call that does not contain the interrupt shows it as
negative self time, the one that does shows it as self time of its own — an invented stall.

The rule here, applied after linking: a call's children must fit in its time.

* When the children of a call add up to more than its duration (+ ``TOL_US``), the fewest
  longest children that make the rest fit — widened to the contiguous run of children between
  them, since an interrupt's calls are printed together — cannot be inside it.
* They move up: with timestamps (funcgraph-abstime, trace-cmd, ``trace.dat``, raw captures) to
  the nearest ancestor whose ``[start_s, end_s]`` contains theirs, else one level up; the
  receiving call is checked in turn.

(Leaf end times are estimates — the printed time plus the duration — and the recording
overhead under emulation is several µs, so time alone does not decide *whether* a call is
misplaced, only where it goes.)

Moved calls are interrupts: they get ``in_irq``. :func:`fit_interrupts` finds the (rare)
offending parents vectorised; :func:`_fit_sequential` moves their children one by one.
"""

from __future__ import annotations

import bisect
import heapq
import re

import numpy as np

__all__ = ["fit_interrupts", "irq_entry_functions", "TOL_US"]

#: Slack for printed rounding (µs, and µs-resolution timestamps).
TOL_US = 2.0

#: The kernel's hard-interrupt entry and exit points (x86 IDT ``sysvec_*`` handlers since 5.8,
#: ``common_interrupt``, the generic ``irq_enter``/``irq_exit`` pair, ``do_IRQ`` and the
#: ``smp_*_interrupt`` handlers of older kernels). A call of one of these is an interrupt of
#: the call it sits in, even at one level below it and without irq arrows in the text; the
#: softirqs run on ``irq_exit`` are below it and inherit that.
IRQ_ENTRY = re.compile(r"(?:__)?(?:sysvec_\w+|common_interrupt|irq_enter(?:_rcu)?|irq_exit(?:_rcu)?"
                       r"|do_IRQ|smp_\w+_interrupt|handle_irq_event)$")


class _Children:
    """Children of calls in id order, built once (CSR), with the moves applied on top."""

    def __init__(self, parent: np.ndarray) -> None:
        has = parent >= 0
        self._order = np.flatnonzero(has)[np.argsort(parent[has], kind="stable")]
        self._keys = parent[self._order]
        self._changed: dict[int, list[int]] = {}

    def of(self, p: int) -> list[int]:
        got = self._changed.get(p)
        if got is None:
            lo, hi = np.searchsorted(self._keys, [p, p + 1])
            got = self._changed[p] = self._order[lo:hi].tolist()
        return got

    def move(self, k: int, src: int, dst: int) -> None:
        self.of(src).remove(k)
        if dst >= 0:
            bisect.insort(self.of(dst), k)


def _contains(p: int, k: int, start: np.ndarray, end: np.ndarray) -> bool:
    """Whether call ``k``'s time lies inside call ``p``'s (unknown bounds do not exclude)."""
    ok = True
    if not (np.isnan(start[p]) or np.isnan(start[k])):
        ok &= bool(start[k] >= start[p] - TOL_US * 1e-6)
    if not (np.isnan(end[p]) or np.isnan(end[k])):
        ok &= bool(end[k] <= end[p] + TOL_US * 1e-6)
    return ok


def _misfits(p: int, kids: list[int], dur: np.ndarray) -> list[int]:
    """The children of ``p`` that cannot be inside its time: the fewest longest ones whose
    removal makes the rest fit, widened to the contiguous run between them."""
    own = dur[p]
    if np.isnan(own):
        return []
    d = np.nan_to_num(dur[kids])
    if d.sum() <= own + TOL_US:
        return []
    order = np.argsort(-d, kind="stable")
    rest = float(d.sum())
    out = set()
    for j in order.tolist():
        if rest <= own:        # (the slack only decides whether to start: then fit exactly)
            break
        out.add(j)
        rest -= d[j]
    lo, hi = min(out), max(out)
    return kids[lo:hi + 1]


def _fit_sequential(parent: np.ndarray, depth: np.ndarray, dur: np.ndarray, start: np.ndarray,
                    end: np.ndarray, interrupted: np.ndarray, todo: np.ndarray,
                    timed: bool) -> int:
    """Move the children that do not fit out of the calls ``todo`` (deepest first; each
    receiving ancestor is checked in turn). Returns how many calls moved."""
    moved = 0
    children = _Children(parent)
    heap = [(-int(depth[p]), int(p)) for p in todo]
    heapq.heapify(heap)
    seen: set[int] = set()
    while heap:
        _, p = heapq.heappop(heap)
        if p in seen:
            continue
        seen.add(p)
        kids = children.of(p)
        for k in _misfits(p, list(kids), dur):
            gp = int(parent[p])
            if timed:      # the nearest ancestor whose time contains it (else one level up)
                a = gp
                while a >= 0 and not _contains(a, k, start, end):
                    a = int(parent[a])
                gp = a if a >= 0 else gp
            children.move(k, p, gp)
            parent[k] = gp
            interrupted[k] = True
            moved += 1
            if gp >= 0 and gp not in seen:
                heapq.heappush(heap, (-int(depth[gp]), gp))
    return moved


def fit_interrupts(parent: np.ndarray, depth: np.ndarray, dur: np.ndarray, start: np.ndarray,
                   end: np.ndarray, interrupted: np.ndarray, child_sum: np.ndarray) -> int:
    """Apply the module's rule to the calls arrays in place (``parent``, ``interrupted``);
    returns the number of calls that moved (``child_sum``, the summed durations of each call's
    children, is stale then). ``dur`` in µs, ``start``/``end`` in s."""
    if not len(parent):
        return 0
    with np.errstate(invalid="ignore"):
        over = child_sum > dur + TOL_US
    timed = bool(np.isfinite(start).any())
    todo = np.flatnonzero(over)
    if not len(todo):
        return 0
    return _fit_sequential(parent, depth, dur, start, end, interrupted, todo, timed)


def irq_entry_functions(names: list[str]) -> np.ndarray:
    """Per interned function name: whether it is an interrupt entry/exit point
    (:data:`IRQ_ENTRY`; GCC clone suffixes allowed)."""
    return np.array([bool(IRQ_ENTRY.match(n.split(".")[0])) for n in names], dtype=bool)
