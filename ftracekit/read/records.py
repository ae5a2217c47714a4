"""The parser's output: one record per meaningful trace line, as numpy columns.

This is the hand-over point between text parsing (:mod:`ftracekit.read.text`) and the call-tree
builder (:mod:`ftracekit.calltree`). It knows nothing about either side's algorithms.

Columns of :class:`LineRecords` (all the same length, in line order):

======== ======= ==============================================================================
column   dtype   meaning
======== ======= ==============================================================================
line     int64   1-based line number in the input
kind     int8    one of the ``K_*`` constants below
cpu      int16   CPU from the ``N)`` column or trace-cmd's ``[00N]``; -1 when not printed
pid      int32   pid from the proc column / trace-cmd prefix; -1 when not printed
comm     int32   index into ``comms`` (-1 when not printed)
ts       float64 timestamp in seconds (funcgraph-abstime, funcgraph-rel-time, trace-cmd); NaN
dur      float64 duration in microseconds as printed; NaN when not printed
depth    int16   indentation / 2 for call lines (entry, leaf, exit); -1 for other kinds
func     int32   index into ``funcs`` (-1: a bare ``}``)
module   int32   index into ``modules`` (-1: none)
retval   int64   return value (funcgraph-retval), two's complement of the 64-bit value
has_ret  bool    whether ``retval`` was printed on this line
======== ======= ==============================================================================

Binary captures (:mod:`ftracekit.read._decode`) add one column: ``end_ts`` (float64, seconds)
— for a leaf record joined from an entry event and its exit event (:mod:`ftracekit.read._pairs`)
the time of the exit event, where the call ends; NaN for every other record. A text leaf line
has no such column: it ends ``dur`` after ``ts``.

Details of rare kinds are kept in dicts keyed by line number: ``comments`` (text of
``/* ... */`` lines), ``switches`` (``(from_comm, from_pid, to_comm, to_pid)``), ``lost``
(count or -1 when the kernel did not say), ``overruns``, ``args`` (funcgraph-args text),
``retaddr`` (funcgraph-retaddr text), ``flags`` (the latency flags of an event line in
trace-event text, e.g. ``..s1.``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._memory import Prefaulter

K_ENTRY = 0      # "func() {"
K_LEAF = 1       # "func();"  (entry and exit in one line)
K_EXIT = 2       # "}" / "} /* func */"
K_COMMENT = 3    # "/* ... */": trace_marker, trace_printk, inline events
K_IRQ_ENTER = 4  # "==========>"
K_IRQ_EXIT = 5   # "<=========="
K_SWITCH = 6     # task switch block "N) a-1 => b-2"
K_LOST = 7       # "CPU:N [LOST M EVENTS]"
K_OVERRUN = 8    # " (Overruns: N)"

KIND_NAMES = ("entry", "leaf", "exit", "comment", "irq_enter", "irq_exit", "switch", "lost",
              "overrun")

COLUMNS: dict[str, Any] = {
    "line": np.int64,
    "kind": np.int8,
    "cpu": np.int16,
    "pid": np.int32,
    "comm": np.int32,
    "ts": np.float64,
    "dur": np.float64,
    "depth": np.int16,
    "func": np.int32,
    "module": np.int32,
    "retval": np.int64,
    "has_ret": np.bool_,
}

DEFAULTS: dict[str, Any] = {
    "line": 0, "kind": 0, "cpu": -1, "pid": -1, "comm": -1, "ts": np.nan, "dur": np.nan,
    "depth": -1, "func": -1, "module": -1, "retval": 0, "has_ret": False,
}


class Interner:
    """Maps strings to dense int codes (and back) — function, module and comm names."""

    __slots__ = ("codes", "names")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class LineRecords:
    """Columns (numpy arrays) plus the name tables and rare-line details; see module doc."""

    cols: dict[str, np.ndarray]
    funcs: list[str]
    modules: list[str]
    comms: list[str]
    comments: dict[int, str] = field(default_factory=dict)
    switches: dict[int, tuple[str, int, str, int]] = field(default_factory=dict)
    lost: dict[int, int] = field(default_factory=dict)
    overruns: dict[int, int] = field(default_factory=dict)
    args: dict[int, str] = field(default_factory=dict)
    retaddr: dict[int, str] = field(default_factory=dict)
    flags: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["line"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


def empty_columns(n: int = 0) -> dict[str, np.ndarray]:
    """Columns of length ``n`` filled with the defaults."""
    return {name: np.full(n, DEFAULTS[name], dtype=dtype) for name, dtype in COLUMNS.items()}


def concat_columns(parts: list[dict[str, np.ndarray]], *, consume: bool = False,
                   compact: bool = False) -> dict[str, np.ndarray]:
    """Concatenate column dicts; an empty list gives empty columns.

    ``consume``: empty the parts column by column as they are copied (lower peak memory).
    ``compact``: a column holding only its default value (e.g. ``ts`` without timestamps,
    ``retval``) becomes a read-only zero-stride view instead of an array.
    """
    if not parts:
        return empty_columns(0)
    n = sum(len(p["line"]) for p in parts)
    out: dict[str, np.ndarray] = {}
    for name, dtype in COLUMNS.items():
        cols = [p.pop(name) for p in parts] if consume else [p[name] for p in parts]
        if compact and name in _COMPACTABLE and n:
            dflt = DEFAULTS[name]
            if all(_all_equal(c, dflt) for c in cols):
                out[name] = np.broadcast_to(np.array(dflt, dtype=dtype), (n,))
                continue
        out[name] = cols[0] if len(cols) == 1 else np.concatenate(cols)
        del cols
    return out


# Columns that are often entirely their default (layouts without them, no return values).
_COMPACTABLE = ("cpu", "pid", "comm", "ts", "module", "retval", "has_ret")


def _all_equal(a: np.ndarray, value: Any) -> bool:
    if not len(a):
        return True
    if isinstance(value, float) and np.isnan(value):
        return bool(np.isnan(a).all())
    return bool((a == value).all())


class ColumnBuilder:
    """Appends blocks of record columns into preallocated arrays (no list of parts and no
    final concatenation, so the peak memory stays near the size of the result).

    ``capacity`` is a first guess of the number of records (e.g. from the file size); the arrays
    grow by half when it is exceeded, and pages never written are never resident. A column that
    so far holds only its default value (``ts`` without timestamps, ``retval``, …) is not stored
    at all until a block brings another value; :meth:`columns` returns such columns as
    read-only zero-stride views.
    """

    def __init__(self, capacity: int = 0, *, prefault: int = 0) -> None:
        self.n = 0
        self.cap = max(int(capacity), 1024)
        self.arrays: dict[str, np.ndarray | None] = {
            name: (None if name in _COMPACTABLE else np.empty(self.cap, dtype=dt))
            for name, dt in COLUMNS.items()}
        # The first ``prefault`` rows are faulted in on a helper thread ahead of the appends.
        self._prefault: Prefaulter | None = None
        if prefault > 0:
            self._prefault = Prefaulter([a for a in self.arrays.values() if a is not None],
                                        prefault, lambda: self.n).start()

    def stop_prefault(self) -> None:
        """Stop the helper thread (if any); called by :meth:`columns` and on errors."""
        if self._prefault is not None:
            self._prefault.stop()
            self._prefault = None

    def _grow(self, need: int) -> None:
        self.stop_prefault()       # (the arrays move)
        cap = max(need, self.cap + (self.cap >> 2))
        for name, a in self.arrays.items():
            if a is not None:
                try:
                    # realloc (mremap for big arrays): no copy, no second array. The arrays
                    # are private to the builder until columns(), so no views exist.
                    a.resize(cap, refcheck=False)
                except (ValueError, SystemError):  # pragma: no cover - not owning its data
                    b = np.empty(cap, dtype=a.dtype)
                    b[: self.n] = a[: self.n]
                    self.arrays[name] = b
        self.cap = cap

    def append(self, cols: dict[str, np.ndarray]) -> None:
        k = len(cols["line"])
        if not k:
            return
        if self.n + k > self.cap:
            self._grow(self.n + k)
        lo, hi = self.n, self.n + k
        for name, dt in COLUMNS.items():
            a = self.arrays[name]
            v = cols[name]
            if a is None:
                if _all_equal(v, DEFAULTS[name]):
                    continue
                a = self.arrays[name] = np.empty(self.cap, dtype=dt)
                a[:lo] = DEFAULTS[name]
            a[lo:hi] = v
        self.n = hi

    def columns(self) -> dict[str, np.ndarray]:
        """The columns (views of the first ``n`` rows; the builder must not be used after)."""
        self.stop_prefault()
        n = self.n
        out = {}
        for name, dt in COLUMNS.items():
            a = self.arrays[name]
            out[name] = (np.broadcast_to(np.array(DEFAULTS[name], dtype=dt), (n,)) if a is None
                         else a[:n])
        self.arrays = {}
        return out

