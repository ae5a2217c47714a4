"""Stage 1, record: the ONLY code that touches tracefs (``/sys/kernel/tracing``).

Named ``recording`` (not ``record``) so that ``ftracekit.record`` stays the function.

* :mod:`.recorder` — :class:`Recorder`, one recording's life (start here)
* :mod:`.settings` — validation, trace options, the plan of every tracefs write
* :mod:`.tracefs` — reading and writing control files, with library errors
* :mod:`.rawcapture` — per-CPU ``trace_pipe_raw`` page readers and the capture directory
* :mod:`.sidecar` — the metadata file written beside a recorded text trace
* :mod:`.doctor` — what this kernel and machine can record
* ``_lock`` (lock file, stale-state recovery), ``_stream`` (``trace_pipe`` reader)

Exported here: what the later stages use. The readers of the files a recording writes
(:mod:`ftracekit.read.rawtrace`, :mod:`ftracekit.loader`) import the format modules
(:mod:`.rawcapture`, :mod:`.sidecar`) directly: through this package they would reach the
recorder, which loads its own result through :mod:`ftracekit.loader`.
"""

from .doctor import diagnose
from .recorder import Recorder, record, recover_stale

__all__ = ["Recorder", "record", "recover_stale", "diagnose"]
