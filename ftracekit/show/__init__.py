"""Stage 5, show: what a user sees of a :class:`~ftracekit.Trace`.

* :mod:`.render` — text and HTML call trees and summaries
* :mod:`.plot` — matplotlib plots (imported only when a plot is drawn)
* :mod:`.export` — folded stacks, Chrome/Perfetto JSON, Parquet, CSV
"""
