"""The parser's output: one record per meaningful trace line, as numpy columns.

This is the hand-over point between text parsing (:mod:`ftracekit.parse`) and the call-tree
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

Details of rare kinds are kept in dicts keyed by line number: ``comments`` (text of
``/* ... */`` lines), ``switches`` (``(from_comm, from_pid, to_comm, to_pid)``), ``lost``
(count or -1 when the kernel did not say), ``overruns``, ``args`` (funcgraph-args text),
``retaddr`` (funcgraph-retaddr text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

    def __len__(self) -> int:
        return len(self.cols["line"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


def empty_columns(n: int = 0) -> dict[str, np.ndarray]:
    """Columns of length ``n`` filled with the defaults."""
    return {name: np.full(n, DEFAULTS[name], dtype=dtype) for name, dtype in COLUMNS.items()}


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts; an empty list gives empty columns."""
    if not parts:
        return empty_columns(0)
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in COLUMNS}
