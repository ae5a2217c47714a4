"""Stage 7, datasets: huge or many captures as a Parquet dataset, queried out of core.

* :mod:`.stream` — a trace text linked a window at a time (bounded memory; start here)
* :mod:`.cut` — where a window may be cut so that the rows before it are final
"""

__all__: list[str] = []
