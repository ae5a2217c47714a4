"""Stage 1, record: the ONLY code that touches tracefs (``/sys/kernel/tracing``).

Named ``recording`` (not ``record``) so that ``ftracekit.record`` stays the function.

* :mod:`.recorder` — :class:`~ftracekit.recording.recorder.Recorder` (start here)
* :mod:`.tracefs` — reading and writing control files, with library errors
* :mod:`.rawcapture` — per-CPU ``trace_pipe_raw`` page readers and the capture directory
* :mod:`.sidecar` — the metadata file written beside a recorded text trace
* :mod:`.doctor` — what this kernel and machine can record
"""
