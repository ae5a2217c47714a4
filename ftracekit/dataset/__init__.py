"""Stage 7, datasets: huge or many captures as a Parquet dataset, queried out of core.

* :mod:`.stream` — a trace text linked a window at a time (bounded memory; start here)
* :mod:`.cut` — where a window may be cut so that the rows before it are final
* :mod:`.binsource`, :mod:`.pagemerge`, :mod:`.binstream` — the same for a ``trace.dat`` or a
  raw capture: opened without reading, per-CPU page blocks merged into time order, windows
* :mod:`.layout` — folders, manifest, Parquet columns, format version
* :mod:`.convert` — traces → dataset (:func:`ftracekit.convert`)
* :mod:`.query` — a dataset queried with DuckDB (:func:`ftracekit.open_dataset`)
* :mod:`.packets` — ``Dataset.packets``: SQL picks the packet steps, the summary runs on them
* :mod:`.dask_ops` — the same analyses as Dask graphs (:mod:`ftracekit.dask`)

pyarrow, duckdb and dask are optional (``pip install 'ftracekit[scale]'``): they are imported
on first use, and a missing one is named in the error.

Exported here: what the later stages use.
"""

from .convert import convert, parse_tags
from .layout import MANIFEST
from .query import Dataset, open_dataset

__all__ = ["convert", "parse_tags", "open_dataset", "Dataset", "MANIFEST"]
