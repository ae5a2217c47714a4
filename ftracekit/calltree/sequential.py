"""The sequential stack algorithm that defines linking, and its result :class:`Links`.

:func:`_link_sequential` walks one task's records in line order with an explicit stack (the
rules are in :mod:`ftracekit.calltree.link`). It is the definition the vectorised linker is
checked against in the tests, and the path taken for small inputs and ``force_sequential``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..read import K_COMMENT, K_ENTRY, K_EXIT, K_LEAF

__all__ = ["Links"]


class Links:
    """Result of linking, indexed by record: see :func:`link_records`."""

    __slots__ = ("is_start", "exit_of", "parent", "owner", "n_tasks", "interrupt", "by_task")

    def __init__(self, n: int, comments: bool = True):
        idx = np.int32 if n < 2**31 else np.int64        # record indices
        self.is_start = np.zeros(n, dtype=bool)      # record starts a call
        self.exit_of = np.full(n, -1, dtype=idx)     # entry record → its exit record
        self.parent = np.full(n, -1, dtype=idx)      # start record → parent's start record
        # comment record → innermost call's start (without comments: a read-only view of -1,
        # which touches no memory)
        self.owner = (np.full(n, -1, dtype=idx) if comments
                      else np.broadcast_to(np.array(-1, dtype=idx), (n,)))
        self.n_tasks = 0                             # tasks with call records
        # start record of a call that interrupted another: it sits more than one level below
        # the innermost open call, or before a late entry line that adopted it
        self.interrupt = np.zeros(n, dtype=bool)
        # (internal) the call records sorted by task, line order within a task, when known
        self.by_task: np.ndarray | None = None


def _names_ok(func: np.ndarray, module: np.ndarray, e, x) -> Any:
    """Whether exit record(s) ``x`` may close entry record(s) ``e`` (a bare ``}`` always may)."""
    fx = func[x]
    mx = module[x]
    return (fx < 0) | ((func[e] == fx) & ((mx < 0) | (module[e] == mx)))


def _link_sequential(idx: np.ndarray, kind: np.ndarray, depth: np.ndarray, func: np.ndarray,
                     module: np.ndarray, out: Links, dur: np.ndarray | None = None) -> None:
    """The defining stack algorithm (module docstring) for the records ``idx`` of one task."""
    is_start, exit_of, parent, owner = out.is_start, out.exit_of, out.parent, out.owner
    kinds = kind[idx].tolist()
    depths = depth[idx].tolist()
    funcs = func[idx].tolist()
    mods = module[idx].tolist()
    durs = dur[idx].tolist() if dur is not None else None
    ridx = idx.tolist()
    n = len(ridx)
    start = [False] * n
    par = [-1] * n      # positions within idx
    own = [-1] * n
    ex = [-1] * n
    # Next record (not a comment) of smaller depth, for the late-entry rule.
    nxt_smaller = [-1] * n
    mono: list[int] = []
    for p in range(n - 1, -1, -1):
        if kinds[p] == K_COMMENT:
            continue
        d = depths[p]
        while mono and depths[mono[-1]] >= d:
            mono.pop()
        nxt_smaller[p] = mono[-1] if mono else -1
        mono.append(p)

    stack: list[int] = []
    for p in range(n):
        k = kinds[p]
        if k == K_COMMENT:
            own[p] = stack[-1] if stack else -1
            continue
        d = depths[p]
        if k == K_EXIT:
            while stack and depths[stack[-1]] > d:
                stack.pop()
            if stack and depths[stack[-1]] == d:
                e = stack.pop()
                fx = funcs[p]
                if fx < 0 or (funcs[e] == fx and (mods[p] < 0 or mods[e] == mods[p])):
                    ex[e] = p
                    continue
            start[p] = True
            if stack:
                par[p] = stack[-1]
        else:
            while stack and depths[stack[-1]] >= d:
                stack.pop()
            start[p] = True
            if stack:
                par[p] = stack[-1]
            if k == K_ENTRY:
                stack.append(p)
    # Late entry lines (see module docstring): calls more than one level below their parent
    # move to the entry printed right after them, if its duration can contain them.
    intr = [False] * n
    for p in range(n):
        if start[p] and kinds[p] != K_COMMENT and par[p] >= 0 and depths[par[p]] < depths[p] - 1:
            intr[p] = True
    if durs is not None:
        claims: dict[int, list[int]] = {}
        for p in range(n):
            if not start[p] or kinds[p] == K_COMMENT:
                continue
            d = depths[p]
            if d > 0 and (par[p] < 0 or depths[par[p]] < d - 1):
                q = nxt_smaller[p]
                if (q >= 0 and depths[q] == d - 1
                        and ((kinds[q] == K_ENTRY and ex[q] >= 0) or kinds[q] == K_LEAF)):
                    claims.setdefault(q, []).append(p)
        def call_dur(p: int) -> float:
            """Duration of the call started at ``p`` (0 when unknown)."""
            x = ex[p] if kinds[p] == K_ENTRY else p
            v = durs[x] if x >= 0 else float("nan")
            return v if v == v else 0.0

        for q, ps in claims.items():
            own_dur = durs[ex[q]] if kinds[q] == K_ENTRY else durs[q]
            inside = sum(call_dur(p) for p in ps)
            if own_dur == own_dur and own_dur >= inside:
                for p in ps:
                    par[p] = q
                    intr[p] = True
    rstack: list[int] = []
    for p in range(n - 1, -1, -1):
        k = kinds[p]
        if k == K_COMMENT:
            if own[p] < 0 and rstack:
                own[p] = rstack[-1]
            continue
        d = depths[p]
        while rstack and depths[rstack[-1]] >= d:
            rstack.pop()
        if start[p] and par[p] < 0 and rstack:
            par[p] = rstack[-1]
        if k == K_EXIT and start[p]:
            rstack.append(p)
    for p in range(n):
        r = ridx[p]
        if kinds[p] == K_COMMENT:
            if own[p] >= 0:
                owner[r] = ridx[own[p]]
            continue
        if start[p]:
            is_start[r] = True
            if par[p] >= 0:
                parent[r] = ridx[par[p]]
            if intr[p]:
                out.interrupt[r] = True
        if ex[p] >= 0:
            exit_of[r] = ridx[ex[p]]
