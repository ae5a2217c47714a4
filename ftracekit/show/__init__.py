"""Stage 5, show: what a user sees of a :class:`~ftracekit.Trace`.

* :mod:`.render` — text and HTML call trees and summaries (start here)
* :mod:`.plot` — matplotlib plots (matplotlib is imported only when a plot is drawn);
  :mod:`.plot_functions` (top, compare) and :mod:`._plotbase` (shared axes helpers) behind it
* :mod:`.export` — folded stacks, Chrome/Perfetto JSON, Parquet, CSV
* :mod:`.format` — one format per kind of number (µs, counts, seconds, percent, errno names)
* :mod:`._layout` — calls placed on a time axis (whole ns, nested), for JSON and plots

Exported here: what the other stages use.
"""

from . import export, plot

__all__ = ["export", "plot"]
