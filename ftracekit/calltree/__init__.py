"""Stage 3, call tree: line records → the calls and events tables (pandas). Pure; no I/O.

* :mod:`.link` — the linking rules (module docstring) and the vectorised linker (start here)
* :mod:`.sequential` — the stack algorithm that defines linking, checked against the linker
* :mod:`._vectorised` — the numpy building blocks (level look-ups, grouping by task, roots)
* :mod:`.tables` — linked records → the ``calls`` and ``events`` DataFrames

Exported here: what the later stages use.
"""

from .tables import build_tables, task_keys

__all__ = ["build_tables", "task_keys"]
