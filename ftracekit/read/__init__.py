"""Stage 2, read: trace bytes → line records (:class:`~ftracekit.read.records.LineRecords`).

One record per meaningful line or binary event, as numpy columns; no linking into calls yet.

* :mod:`.text` — function_graph text → records (start here): layout detection, the fast block
  scanner (:mod:`._fastparse`, with :mod:`._templates` and :mod:`._swar`) and the exact
  per-line parser (:mod:`.lineparse`)
* :mod:`.records` — the record columns and kinds (the contract with :mod:`ftracekit.calltree`)
* :mod:`.sources` — opening inputs: paths, ``-``, file objects, ``.gz``/``.xz``, sniffing ``trace.dat``
* :mod:`.rawtrace` — ring-buffer pages (``record --raw`` captures) → records
* :mod:`.tracedat` — trace-cmd ``trace.dat`` → records, via the page decoder

Exported here: what the later stages use.
"""

from .lineparse import event_name
from .rawtrace import is_capture, load_capture
from .records import (
    K_COMMENT, K_ENTRY, K_EXIT, K_IRQ_ENTER, K_IRQ_EXIT, K_LEAF, K_SWITCH, LineRecords,
)
from .sources import PathOrFile, open_source
from .text import Progress, parse_block, parse_source, parse_text
from .tracedat import load_tracedat

__all__ = ["LineRecords", "K_COMMENT", "K_ENTRY", "K_EXIT", "K_IRQ_ENTER", "K_IRQ_EXIT", "K_LEAF",
           "K_SWITCH", "event_name", "PathOrFile", "open_source", "parse_source", "parse_text",
           "parse_block", "Progress",
           "is_capture", "load_capture", "load_tracedat"]
