"""Stage 3, call tree: line records → the calls and events tables (pandas). Pure; no I/O.

* :mod:`.link` — the linking rules and the vectorised linker (start here)
"""
