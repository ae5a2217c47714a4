"""Live recording: configure function_graph, stream the trace to a file, restore tracefs.

:class:`Recorder` owns one recording's whole life — configure → run → read → restore — and
:func:`record` is the one-call form. Every tracefs access goes through
:mod:`~ftracekit.recording.tracefs`; its settings, their validation and the plan of writes are in
:mod:`~ftracekit.recording.settings`, the lock and stale-state recovery in ``_lock``, the
``trace_pipe`` streaming in ``_stream``. The only thing it knows about parsing is calling
:func:`ftracekit.load` on what it wrote: trace text streamed from ``trace_pipe``, or
(``raw=True``) a capture directory of ring-buffer pages copied from
``per_cpu/cpuN/trace_pipe_raw`` (:mod:`~ftracekit.recording.rawcapture`).

Where it records:

* in a private instance (``instances/ftracekit-<pid>-<start>``) when the kernel allows
  function_graph there (6.11+); the graph filter, ``max_graph_depth`` and ``tracing_thresh`` are
  global even then, so those top-level files are still snapshotted and restored;
* otherwise at the top level, and then it refuses to start while another tracer is active
  (``force=True`` overrides).

A lock file (``/run/lock/ftracekit-<id>.lock``, ``flock``-ed while recording) holds the snapshot
of every top-level control file the recording touches. A live holder means another ftracekit is
recording (refused unless ``force``); a lock with content but no holder is what a SIGKILLed
recording left behind, and the next recording (or ``ftracekit doctor --clean``) restores it and
removes the dead recording's instance.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import RecordError, TracefsError, TracerBusyError, TracerUnavailableError
from .rawcapture import CAPTURE_FILES, RawReaders, write_capture_files, write_capture_info
from .sidecar import write_sidecar
from ._lock import INSTANCE_PREFIX, _Lock, _recover, recover_stale
from ._stream import _PipeReader, _raise_interrupt, _signals_deferred
from .settings import DEFAULT_OPTIONS, _as_tuple, _is_cpu_raw, _Settings
from .tracefs import TraceFS
from . import nlmon as _nlmon

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["Recorder", "record", "recover_stale", "LostEventsWarning", "StaleStateWarning",
           "INSTANCE_PREFIX", "DEFAULT_OPTIONS"]

class LostEventsWarning(RuntimeWarning):
    """The ring buffer lost events during a recording (overrun or dropped); counts are in
    ``Trace.meta["recording"]["lost_events"]``."""


class StaleStateWarning(RuntimeWarning):
    """A killed ftracekit had left tracefs modified; it was restored before recording."""

class Recorder(_Settings):
    """One function_graph recording. Use it as a context manager or call :meth:`run`::

        with Recorder(["rtnetlink_rcv"], output="trace.txt") as rec:
            subprocess.run(["ip", "link", "show"])
        trace = rec.trace

        trace = Recorder(["rtnetlink_rcv"], command=["ip", "link", "show"]).run()

    Parameters (units in the names):

    functions
        graph functions: names or globs written to ``set_graph_function``. May be empty when
        ``events`` or ``packets`` are given: the events are then recorded alone (tracer
        ``nop``), which works on kernels without function_graph too.
    output
        where the trace text goes (default ``trace.txt``); the metadata goes next to it
        (``trace.json``). With ``raw``: the capture directory (default ``trace.raw``; created,
        or an empty directory, or a previous capture, which is replaced), the metadata in its
        ``capture.json``; a name ending in ``.txt`` is refused there.
    notrace
        ``set_graph_notrace``: functions whose calls (and everything below) are left out.
    filter
        ``set_ftrace_filter``: only these functions are recorded inside the graph.
    pids, follow
        ``set_ftrace_pid`` (and ``set_event_pid``); ``follow`` makes children inherit it
        (options ``function-fork``/``event-fork``).
    command, duration_s
        what to record: run ``command`` (argv list) to completion, or for ``duration_s`` seconds,
        or (:meth:`run` with neither) until Ctrl-C. With both, the command is stopped after
        ``duration_s``.
    max_depth
        ``max_graph_depth`` (0 = unlimited).
    thresh_us
        ``tracing_thresh`` in microseconds: only calls at least this long (0 = off).
    buffer_kb
        ring buffer size per CPU in KiB (``buffer_size_kb``); None leaves it.
    options
        trace options, e.g. ``["retval", "tail", "noirqs"]``: a name turns ``funcgraph-<name>``
        (else ``<name>``) on, a ``no`` prefix turns it off; a mapping ``{name: bool}`` also works.
    events
        trace events to record too, e.g. ``["skb:kfree_skb", "net:*"]``; they appear in
        ``Trace.events`` attached to the call they happened in.
    clock
        ``trace_clock`` (``local``, ``global``, ``mono`` …); None leaves it.
    stream
        True (default): stream ``trace_pipe`` to the file while recording. False: read ``trace``
        once at the end (the ring buffer may wrap and lose the oldest events).
    raw
        copy the ring buffer's binary pages (``per_cpu/cpuN/trace_pipe_raw``, one reader thread
        per CPU) instead of ``trace_pipe`` text: for busy graphs, where the kernel's text
        formatting cannot keep up and events are lost. ``output`` is then a directory that
        :func:`ftracekit.load` decodes into the same calls table. Implies streaming.
    instance
        None (default): a private instance when the kernel allows function_graph there, else
        the top level; True: require an instance; False: always the top level.
    force
        record even when another tracer or another ftracekit is active (their settings are
        restored afterwards, but their buffer is lost).
    packets
        follow packets (:meth:`ftracekit.Trace.packets`): enable the skb events this kernel has
        (:data:`~ftracekit.recording.settings.PACKET_EVENTS`), set ``options/hash-ptr`` 0 so
        ``skbaddr=`` prints the raw address that joins ``funcgraph-args``, and turn
        ``funcgraph-args`` on where the kernel has it (6.15+); all put back afterwards. On a
        kernel without function_graph, or without ``functions``, the events are recorded alone
        and :attr:`note` says so.
    tracefs
        a :class:`TraceFS` (default: the system's, mounted if needed).
    lock_dir
        where the lock file lives (default ``/run/lock``).
    netlink
        also capture the netlink messages (:mod:`~ftracekit.recording.nlmon`): an nlmon device
        and a capture thread write ``netlink.pcap`` beside the trace (inside a raw capture
        directory), the clock is ``mono`` (the packet times are aligned to it), and with no
        ``functions`` the graph is what a dump needs (``nlmon.GRAPH_DEFAULT`` filtered by
        ``nlmon.FILTER_DEFAULT``). Refused before anything is touched without nlmon or
        CAP_NET_ADMIN. Statistics in ``meta["netlink"]``.
    """

    def __init__(
        self,
        functions: str | Sequence[str] = (),
        *,
        output: str | os.PathLike[str] | None = None,
        notrace: str | Sequence[str] = (),
        filter: str | Sequence[str] = (),
        pids: int | Sequence[int] = (),
        follow: bool = False,
        command: Sequence[str] | None = None,
        duration_s: float | None = None,
        max_depth: int = 0,
        thresh_us: int = 0,
        buffer_kb: int | None = None,
        options: Sequence[str] | Mapping[str, bool] = (),
        events: str | Sequence[str] = (),
        clock: str | None = None,
        stream: bool = True,
        raw: bool = False,
        instance: bool | None = None,
        force: bool = False,
        packets: bool = False,
        tracefs: TraceFS | None = None,
        lock_dir: str | os.PathLike[str] | None = None,
        netlink: bool = False,
    ):
        self.functions = _as_tuple(functions)
        # -- netlink capture (issue 12) --
        self.netlink = bool(netlink)
        self._nlmon: _nlmon.NlmonCapture | None = None
        if self.netlink and clock not in (None, "mono"):
            raise RecordError(f"a netlink capture needs trace clock mono (packet times are "
                              f"aligned to CLOCK_MONOTONIC), not {clock!r}")
        if self.netlink:
            clock = "mono"
        # -- packets / events-only recording (issue 11) ------------------------------------
        self.packets = bool(packets)
        #: True when only trace events are recorded (tracer nop); decided by :meth:`start`
        self.events_only = False
        #: one line for the user when the recording differs from what was asked (events only)
        self.note: str | None = None
        # ------------------------------------------------------------------------------------
        if not self.functions and not events and not self.packets and not self.netlink:
            raise RecordError("give at least one function to graph (e.g. rtnetlink_rcv), or "
                              "events to record alone (--event, --packets), or --netlink")
        self.raw = bool(raw)
        self.output = Path(output if output is not None else
                           ("trace.raw" if self.raw else "trace.txt"))
        self.notrace = _as_tuple(notrace)
        self.filter = _as_tuple(filter)
        self.pids = (int(pids),) if isinstance(pids, int) else tuple(int(p) for p in pids)
        self.follow = bool(follow)
        self.command = list(command) if command else None
        self.duration_s = duration_s
        self.max_depth = int(max_depth)
        self.thresh_us = int(thresh_us)
        self.buffer_kb = buffer_kb
        if isinstance(options, Mapping):
            self.options = {str(k): bool(v) for k, v in options.items()}
        else:
            self.options = {}
            for opt in _as_tuple(options):
                on = not opt.startswith("no")
                self.options[opt if on else opt[2:]] = on
        self.events = _as_tuple(events)
        self.clock = clock
        self.stream = stream
        self.want_instance = instance
        self.force = force
        self._tracefs = tracefs
        self._lock_dir = lock_dir
        self._validate()

        #: the parsed result, set by :meth:`stop` (None before, or after a failed recording)
        self.trace: Trace | None = None
        #: what the sidecar JSON holds (filled as the recording goes)
        self.meta: dict[str, Any] = {}
        self.returncode: int | None = None
        self.interrupted = False
        self._top: TraceFS | None = None
        self._dir: TraceFS | None = None
        self._lock: _Lock | None = None
        self._snapshot: dict[str, str] = {}
        self._instance_name: str | None = None
        self._reader: _PipeReader | None = None
        self._pipe_fd: int | None = None
        self._out: Any = None
        self._raw: RawReaders | None = None
        self._made_dir = False          # raw: this recording created the output directory
        self._stats_before: dict[int, dict[str, float]] = {}
        self._old_sigterm: Any = None
        self._t0 = 0.0
        self._started = False

    # ------------------------------------------------------------------ start
    def __enter__(self) -> "Recorder":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.interrupted = issubclass(exc_type, KeyboardInterrupt)
            self.stop(load=False)

    def start(self) -> "Recorder":
        """Configure tracefs and start recording (tracing_on=1). On any failure, tracefs is
        restored before the error propagates."""
        if self._started:
            raise RecordError("this Recorder has already been started")
        self._started = True
        try:
            self._start()
        except BaseException:
            with _signals_deferred():
                failures = self._cleanup()
            self._restore_sigterm()
            if self._out is not None and self.output.exists() and self.output.stat().st_size == 0:
                self.output.unlink()          # created by us, nothing recorded into it
            if self._made_dir:
                shutil.rmtree(self.output, ignore_errors=True)   # ours, nothing recorded
            if self.netlink and self._pcap_ours:
                self.pcap_path.unlink(missing_ok=True)           # nothing recorded into it
            if failures:
                warnings.warn("tracefs could not be fully restored: "
                              + "; ".join(failures), RuntimeWarning, stacklevel=2)
            raise
        return self

    def _start(self) -> None:
        if self.netlink:
            _nlmon.check_nlmon()        # no nlmon / CAP_NET_ADMIN: refuse before touching anything
        top = self._tracefs.top if self._tracefs is not None else TraceFS()
        self._top = top
        tracers = top.read("available_tracers").split()
        if self.netlink and "function_graph" not in tracers:
            raise TracerUnavailableError(
                f"this kernel has no function_graph tracer (available tracers: "
                f"{' '.join(tracers) or 'none'}); it needs CONFIG_FUNCTION_GRAPH_TRACER — run "
                "`ftracekit doctor` for details")
        if self.netlink and not self.functions:
            graph, filt = _nlmon.default_functions(top.available_functions())
            self.functions = tuple(graph)
            self.filter = self.filter or tuple(filt)
        self._choose_mode(tracers)
        if self.note:
            self.meta["note"] = self.note
            if self.functions:       # asked for call trees and gets events only: say so
                warnings.warn(self.note, RuntimeWarning, stacklevel=3)

        lock = _Lock(top, self._lock_dir)
        if lock.acquire():
            self._lock = lock
            repairs = _recover(top, lock)
            if repairs:
                warnings.warn("cleaned up after a killed ftracekit: " + "; ".join(repairs),
                              StaleStateWarning, stacklevel=3)
        elif not self.force:
            holder = (lock.read() or {}).get("pid", "?")
            raise TracerBusyError(
                f"another ftracekit (pid {holder}) is recording on {top.root}; wait for it to "
                "finish, or use --force")

        d = self._choose_dir(top)
        self._dir = d
        self._check_busy(top, d)

        plan = self._plan(top, d)
        top_files = [f for t, f, _ in plan if t is top]
        if d is not top:
            # An instance's funcgraph-* files can be the tracer's global flags (seen on 6.12):
            # writing them changes the top level too, so snapshot those as well.
            top_files += [f for t, f, _ in plan if t is d and f.startswith("options/funcgraph-")
                          and top.exists(f)]
        top_files = self._restore_order(list(dict.fromkeys(top_files)))
        self._snapshot = top.snapshot(top_files)
        if self._lock is not None:
            self._lock.write({"pid": os.getpid(), "started": _now(), "root": str(top.root),
                              "instance": self._instance_name, "snapshot": self._snapshot,
                              "nlmon": _nlmon.device_name() if self.netlink else None})

        if self.raw:
            self._prepare_capture_dir()
        else:
            try:
                self._out = open(self.output, "wb")
            except OSError as err:
                raise RecordError(f"cannot write the trace to {self.output}: {err.strerror}") from err
        for target, name, value in plan:
            target.ensure(name, value)
        self.meta.update(self._describe(top, d))
        d.clear()
        if self._out is not None:
            self._out.write(d.header().encode())
            self._out.flush()          # a non-empty file now says: the recording is starting
        self._stats_before = d.cpu_stats()
        if self.raw:
            # cpuN.raw files appearing in the directory say: the recording is starting
            self._raw = RawReaders(d, self.output)
        elif self.stream:
            self._pipe_fd = d.open_pipe()
            self._reader = _PipeReader(self._pipe_fd, self._out)
            self._reader.start()
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        if self.netlink:
            self._nlmon = _nlmon.NlmonCapture(self.pcap_path).start()
        self._t0 = time.monotonic()
        self.meta["started"] = _now()
        d.write("tracing_on", "1")

    def _prepare_capture_dir(self) -> None:
        """Create the capture directory, or empty a previous capture in it (checked by
        :meth:`_validate_raw`: nothing else is deleted)."""
        out = self.output
        try:
            if out.is_dir():
                for p in out.iterdir():
                    if p.name == "formats" and p.is_dir():
                        shutil.rmtree(p)
                    elif p.name in CAPTURE_FILES or _is_cpu_raw(p.name):
                        p.unlink()
            else:
                out.mkdir()
                self._made_dir = True
        except OSError as err:
            raise RecordError(f"cannot write the capture to {out}: {err.strerror}") from err

    # ------------------------------------------------------------------ running
    @property
    def pcap_path(self) -> Path:
        """Where a netlink capture goes: ``netlink.pcap`` beside the trace text, or inside
        the raw capture directory."""
        base = self.output if self.raw else (self.output.parent if str(self.output.parent)
                                             else Path("."))
        return base / _nlmon.PCAP_NAME

    @property
    def _pcap_ours(self) -> bool:
        return self._nlmon is not None or (self.pcap_path.exists()
                                           and self.pcap_path.stat().st_size <= 24)

    @property
    def lines(self) -> int:
        """Lines of trace text written so far (streaming mode; 0 for a raw capture)."""
        return self._reader.lines if self._reader is not None else 0

    @property
    def bytes(self) -> int:
        """Bytes captured so far: trace text (streaming mode), or ring-buffer pages (raw)."""
        if self._raw is not None:
            return self._raw.bytes
        return self._reader.bytes if self._reader is not None else 0

    @property
    def captured(self) -> int:
        """What ``run``'s progress callback reports: :attr:`lines`, or for a raw capture
        :attr:`bytes` (pages are copied whole, there are no lines until decoding)."""
        return self.bytes if self.raw else self.lines

    def lost_events(self) -> int:
        """Events lost so far (overrun + dropped, all CPUs) since the start."""
        if self._dir is None:
            return 0
        return _lost(self._stats_before, self._dir.cpu_stats())["total"]

    def run(self, *, progress: Callable[[int, int], None] | None = None,
            interval_s: float = 0.5) -> "Trace":
        """Record: run the command, or wait ``duration_s``, or wait for Ctrl-C; then stop and
        return the parsed :class:`~ftracekit.trace.Trace`. Ctrl-C / SIGTERM stop the recording
        early and the result is still returned (``interrupted`` is set). ``progress(count,
        lost)`` is called every ``interval_s`` while waiting: ``count`` is :attr:`captured`
        (lines of text, or bytes of pages for a raw capture), ``lost`` events lost so far."""
        self.start()
        try:
            self._wait(progress, interval_s)
        except KeyboardInterrupt:
            self.interrupted = True
        except BaseException:
            self.stop(load=False)
            raise
        trace = self.stop()
        assert trace is not None
        return trace

    def _wait(self, progress: Callable[[int, int], None] | None, interval_s: float) -> None:
        deadline = self._t0 + self.duration_s if self.duration_s else None
        proc = None
        if self.command:
            try:
                proc = subprocess.Popen(self.command)
            except OSError as err:
                raise RecordError(f"cannot run {self.command[0]!r}: {err.strerror}") from err
        try:
            while True:
                step = interval_s
                if deadline is not None:
                    step = min(step, deadline - time.monotonic())
                    if step <= 0:
                        break
                if proc is not None:
                    try:
                        self.returncode = proc.wait(timeout=max(step, 0.01))
                        break
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(max(step, 0.01))
                if progress is not None:
                    progress(self.captured, self.lost_events())
        finally:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc is not None:
                self.returncode = proc.returncode

    # ------------------------------------------------------------------ stop
    def stop(self, *, load: bool = True) -> "Trace | None":
        """Stop recording, write the text and the sidecar (raw: the capture files and
        ``capture.json``), restore tracefs, then (``load``) parse what was written and return
        the :class:`Trace`. Raises :class:`RecordError` when nothing was recorded, or when
        tracefs could not be fully restored."""
        if not self._started:
            raise RecordError("this Recorder was never started")
        failures: list[str] = []
        with _signals_deferred() as pending:
            try:
                self._finish_capture()
            finally:
                failures = self._cleanup()
        self._restore_sigterm()
        if pending:      # Ctrl-C while stopping: we were stopping anyway
            self.interrupted = self.meta["interrupted"] = True
        return self._conclude(failures, load)

    def _finish_capture(self) -> None:
        d = self._dir
        if d is None or (self._out is None and self._raw is None):
            return
        elapsed = time.monotonic() - self._t0
        d.write("tracing_on", "0")
        if self._nlmon is not None:
            self.meta["netlink"] = self._nlmon.stop()
        if self._raw is not None:
            self._finish_raw(d, elapsed)
            return
        if self._reader is not None:
            self._reader.stop()
            if self._reader.error is not None:
                raise RecordError(f"reading trace_pipe failed: {self._reader.error}")
            lines = self._reader.lines
        else:
            text = d.read("trace")
            body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
            self._out.write(body.encode())
            lines = body.count("\n")
        self._note_outcome(d, elapsed, lines=lines)
        self._out.close()

    def _finish_raw(self, d: TraceFS, elapsed: float) -> None:
        """Stop the page readers, then save what decoding needs (while ``d`` still exists)."""
        assert self._raw is not None
        self._raw.stop()
        self._note_outcome(d, elapsed, bytes=self._raw.bytes, pages=self._raw.pages,
                           cpus=[r.cpu for r in self._raw.readers])
        events = [f[len("events/"):-len("/enable")] for spec in self.events
                  for f in d.event_files(spec)]
        self.meta = write_capture_files(d, self.output, events, self.meta)   # + page_size

    def _note_outcome(self, d: TraceFS, elapsed: float, **amount: Any) -> None:
        """Record in ``meta`` how the recording went: duration, what was captured
        (``amount``: lines, or bytes/pages/cpus), per-CPU stats and lost events, the command's
        status. Reads ``d``'s stats now (after tracing stopped and the readers drained)."""
        stats_after = d.cpu_stats()
        self.meta.update({
            "duration_s": round(elapsed, 6),
            **amount,
            "stats_before": self._stats_before,
            "stats_after": stats_after,
            "lost_events": _lost(self._stats_before, stats_after),
            "command_returncode": self.returncode,
            "interrupted": self.interrupted,
        })

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def _cleanup(self) -> list[str]:
        """Close files, remove the instance, restore the snapshot, release the lock. Each step
        runs even when an earlier one failed; returns what could not be restored."""
        failures: list[str] = []
        if self._nlmon is not None:
            failure = self._nlmon.close()   # removes the nlmon device
            if failure:
                failures.append(failure)
            self._nlmon = None
        if self._raw is not None:       # open trace_pipe_raw files would keep the instance busy
            self._raw.close()           # (read errors: raised by _finish_raw, not restore failures)
        if self._reader is not None and self._reader.is_alive():
            self._reader._stop_event.set()
            self._reader.join()
        if self._pipe_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe_fd)
            self._pipe_fd = None
        if self._out is not None and not self._out.closed:
            self._out.close()
        top = self._top
        if top is not None and self._instance_name is not None:
            try:
                with contextlib.suppress(TracefsError):
                    top.instance(self._instance_name).write("tracing_on", "0")
                top.remove_instance(self._instance_name)
            except TracefsError as err:
                failures.append(f"instance {self._instance_name}: {err}")
            self._instance_name = None
        if top is not None and self._snapshot:
            failures += top.restore(self._snapshot)
        if self._lock is not None:
            if not failures:
                self._lock.release()     # empty lock = nothing to recover
            else:                        # keep the snapshot so a later run can retry
                os.close(self._lock.fd)  # type: ignore[arg-type]
                self._lock.fd = None
            self._lock = None
        return failures

    def _conclude(self, failures: list[str], load: bool) -> "Trace | None":
        if not self.meta.get("settings") or "duration_s" not in self.meta:
            if failures:
                raise TracefsError("could not restore tracefs: " + "; ".join(failures))
            return None
        if failures:
            self.meta["restore_failures"] = failures
        if self.raw:
            write_capture_info(self.output, self.meta)
        else:
            write_sidecar(self.output, self.meta)
        drops = self.meta.get("netlink", {}).get("drops", 0)
        if drops:
            warnings.warn(f"{drops} netlink packets were dropped by the capture socket (its "
                          "receive queue was full)", LostEventsWarning, stacklevel=3)
        lost = self.meta["lost_events"]["total"]
        if lost:
            warnings.warn(
                f"{lost} events were lost (ring buffer overrun/dropped); use a larger "
                "--buffer-kb, fewer functions, or --depth/--thresh", LostEventsWarning,
                stacklevel=3)
        if failures:
            raise TracefsError("recording written, but tracefs could not be fully restored: "
                               + "; ".join(failures))
        if not load:
            return None
        if self.meta["bytes" if self.raw else "lines"] == 0:
            what = " or ".join(self.functions)
            held = "no ring-buffer pages" if self.raw else "only the header"
            raise RecordError(
                f"nothing was recorded: {what} was not called during the recording "
                f"({self.output} holds {held})")
        from ..loader import load

        self.trace = load(self.output)
        return self.trace


def _lost(before: Mapping[int, Mapping[str, float]],
          after: Mapping[int, Mapping[str, float]]) -> dict[str, Any]:
    per_cpu = {}
    for cpu, a in after.items():
        b = before.get(cpu, {})
        per_cpu[cpu] = {
            "overrun": int(a.get("overrun", 0) - b.get("overrun", 0)),
            "dropped": int(a.get("dropped_events", 0) - b.get("dropped_events", 0)),
        }
    total = sum(v["overrun"] + v["dropped"] for v in per_cpu.values())
    return {"per_cpu": per_cpu, "total": total}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record(functions: str | Sequence[str], **settings: Any) -> "Trace":
    """Record function_graph calls of ``functions`` and return the parsed trace.

    One-call form of :class:`Recorder` (same keyword settings), e.g.
    ``record("rtnetlink_rcv", command=["ip", "link", "show"], output="t.txt")``, or with
    ``raw=True, output="t.raw"`` for a binary capture directory (busy graphs).
    """
    return Recorder(functions, **settings).run()
