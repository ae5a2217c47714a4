"""Stage 2, read: trace bytes → line records (:class:`~ftracekit.read.records.LineRecords`).

One record per meaningful line or binary event, as numpy columns; no linking into calls yet.

* :mod:`.sources` — opening inputs: paths, ``-``, file objects, ``.gz``/``.xz``, sniffing ``trace.dat``
* :mod:`.text` — function_graph text → records (start here): layout detection, the fast block
  scanner (:mod:`._fastparse`) and the exact per-line parser (:mod:`.lineparse`)
* :mod:`.rawtrace` — ring-buffer pages (``record --raw`` captures) → records
* :mod:`.tracedat` — trace-cmd ``trace.dat`` → records, via the page decoder
"""
