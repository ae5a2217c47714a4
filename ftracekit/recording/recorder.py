"""Live recording: configure function_graph, stream the trace to a file, restore tracefs.

:class:`Recorder` owns one recording's whole life — configure → run → read → restore — and
:func:`record` is the one-call form. Every tracefs access goes through :mod:`ftracekit.tracefs`;
the only thing this module knows about parsing is calling :func:`ftracekit.load` on what it
wrote: trace text streamed from ``trace_pipe``, or (``raw=True``) a capture directory of
ring-buffer pages copied from ``per_cpu/cpuN/trace_pipe_raw`` (:mod:`ftracekit.rawcapture`).

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
import errno
import fcntl
import hashlib
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .._version import __version__
from ..errors import RecordError, TracefsError, TracerBusyError, TracerUnavailableError
from .rawcapture import CAPTURE_FILES, RawReaders, write_capture_files, write_capture_info
from .sidecar import write_sidecar
from .tracefs import TraceFS

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["Recorder", "record", "recover_stale", "LostEventsWarning", "StaleStateWarning",
           "INSTANCE_PREFIX", "DEFAULT_OPTIONS"]

#: Name prefix of the private tracing instances ftracekit creates.
INSTANCE_PREFIX = "ftracekit-"

#: Trace options every recording sets (when the kernel has them), so the text has the columns the
#: parser relies on — comm-pid and absolute timestamps — whatever someone else left there.
DEFAULT_OPTIONS: dict[str, bool] = {
    "funcgraph-proc": True,
    "funcgraph-abstime": True,
    "funcgraph-cpu": True,
    "funcgraph-duration": True,
    "funcgraph-overhead": True,
    "funcgraph-irqs": True,
    "funcgraph-tail": False,
    "funcgraph-overrun": False,
    "funcgraph-retval": False,
    "funcgraph-retval-hex": False,
    "funcgraph-retaddr": False,
    "funcgraph-args": False,
    "context-info": True,
    "latency-format": False,
    "function-fork": False,
    "event-fork": False,
}

_POLL_MS = 100            # how often the pipe reader wakes when the kernel does not wake it
_READ_CHUNK = 1 << 16


class LostEventsWarning(RuntimeWarning):
    """The ring buffer lost events during a recording (overrun or dropped); counts are in
    ``Trace.meta["recording"]["lost_events"]``."""


class StaleStateWarning(RuntimeWarning):
    """A killed ftracekit had left tracefs modified; it was restored before recording."""


# ---------------------------------------------------------------------------------------- lock
def _default_lock_dir() -> Path:
    for d in ("/run/lock", "/run", tempfile.gettempdir()):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return Path(d)
    return Path(tempfile.gettempdir())


def _proc_starttime(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (tells pid reuse apart), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _owner_alive(instance_name: str) -> bool:
    """Whether the process that created instance ``ftracekit-<pid>-<start>`` still runs."""
    parts = instance_name[len(INSTANCE_PREFIX):].split("-")
    if len(parts) != 2 or not parts[0].isdigit():
        return True     # not ours by format: never touch it
    return _proc_starttime(int(parts[0])) == parts[1]


class _Lock:
    """An ``flock``-ed JSON file per tracefs: held while recording, keeps the snapshot."""

    def __init__(self, tracefs: TraceFS, lock_dir: str | os.PathLike[str] | None = None):
        key = hashlib.sha1(str(tracefs.top.root.resolve()).encode()).hexdigest()[:10]
        self.path = Path(lock_dir or _default_lock_dir()) / f"ftracekit-{key}.lock"
        self.fd: int | None = None

    def read(self) -> dict[str, Any] | None:
        """The content left in the lock file (None when empty or unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another live process holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RecordError(f"cannot create the lock file {self.path}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise RecordError(f"cannot lock {self.path}: {err.strerror}") from err
        self.fd = fd
        return True

    def held_by_other(self) -> bool:
        """Whether a live process holds the lock (looks only: changes nothing)."""
        if not self.path.exists():
            return False
        if not self.acquire():
            return True
        os.close(self.fd)  # type: ignore[arg-type]
        self.fd = None
        return False

    def write(self, data: Mapping[str, Any]) -> None:
        assert self.fd is not None
        blob = json.dumps(data, default=str).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, blob, 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Empty the file (= clean state) and drop the lock. The file stays: deleting a file
        others may be about to lock would let two processes hold two different locks."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)
            self.fd = None


def _recover(tracefs: TraceFS, lock: _Lock) -> list[str]:
    """With ``lock`` held: undo what a killed recording left. Returns what was done."""
    done = []
    stale = lock.read()
    if stale:
        snapshot = stale.get("snapshot") or {}
        failures = tracefs.top.restore(snapshot)
        changed = len(snapshot)
        done.append(f"restored the tracefs settings left by ftracekit pid {stale.get('pid')} "
                    f"({changed} files checked" + (f"; failed: {'; '.join(failures)}" if failures
                                                   else "") + ")")
        if stale.get("instance") and stale["instance"] in tracefs.top.instances():
            tracefs.top.remove_instance(stale["instance"])
            done.append(f"removed instance {stale['instance']}")
        os.ftruncate(lock.fd, 0)  # type: ignore[arg-type]
    for name in tracefs.top.instances():
        if name.startswith(INSTANCE_PREFIX) and not _owner_alive(name):
            tracefs.top.remove_instance(name)
            done.append(f"removed instance {name} of a dead ftracekit")
    return done


def recover_stale(tracefs: TraceFS | None = None, *,
                  lock_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Restore what a killed (SIGKILL) recording left behind: its top-level settings and its
    instance. Returns a description of each repair ([] when there was nothing to do).
    Raises :class:`TracerBusyError` while another ftracekit is recording."""
    tracefs = tracefs or TraceFS()
    lock = _Lock(tracefs, lock_dir)
    if not lock.acquire():
        raise TracerBusyError(f"another ftracekit is recording right now (lock {lock.path})")
    try:
        return _recover(tracefs, lock)
    finally:
        lock.release()


def stale_state(tracefs: TraceFS, *, lock_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read-only view for ``doctor``: ``{"lock": path, "recording_pid": pid or None (a live
    ftracekit holds the lock), "stale_pid": pid or None, "stale_instances": [...]}``."""
    lock = _Lock(tracefs, lock_dir)
    info: dict[str, Any] = {"lock": str(lock.path), "recording_pid": None, "stale_pid": None,
                            "stale_instances": [n for n in tracefs.top.instances()
                                                if n.startswith(INSTANCE_PREFIX)
                                                and not _owner_alive(n)]}
    content = lock.read()
    if content:
        key = "recording_pid" if lock.held_by_other() else "stale_pid"
        info[key] = content.get("pid")
    return info


# --------------------------------------------------------------------------------- signals
@contextlib.contextmanager
def _signals_deferred(reraise: bool = False) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM off while restoring tracefs (a second Ctrl-C must not leave it
    half-restored). The signals that arrived are in the yielded list; with ``reraise`` they
    become a KeyboardInterrupt afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    pending: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if pending and reraise:
        raise KeyboardInterrupt


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------ pipe reader
class _PipeReader(threading.Thread):
    """Copies ``trace_pipe`` into the output file while recording, so the ring buffer is
    consumed as it fills instead of wrapping."""

    def __init__(self, fd: int, out: Any):
        super().__init__(name="ftracekit-trace-pipe", daemon=True)
        self.fd = fd
        self.out = out
        self.lines = 0
        self.bytes = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def drain(self) -> None:
        """Read everything available now."""
        while True:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.out.write(chunk)
            self.lines += chunk.count(b"\n")
            self.bytes += len(chunk)

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        try:
            while not self._stop_event.is_set():
                poller.poll(_POLL_MS)
                self.drain()
        except BaseException as err:  # surfaced by stop()
            self.error = err

    def stop(self) -> None:
        """Stop the thread, then read what is left (call after tracing_on=0)."""
        self._stop_event.set()
        self.join()
        if self.error is None:
            self.drain()


# --------------------------------------------------------------------------------- recorder
def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


class Recorder:
    """One function_graph recording. Use it as a context manager or call :meth:`run`::

        with Recorder(["rtnetlink_rcv"], output="trace.txt") as rec:
            subprocess.run(["ip", "link", "show"])
        trace = rec.trace

        trace = Recorder(["rtnetlink_rcv"], command=["ip", "link", "show"]).run()

    Parameters (units in the names):

    functions
        graph functions: names or globs written to ``set_graph_function`` (required).
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
    tracefs
        a :class:`TraceFS` (default: the system's, mounted if needed).
    lock_dir
        where the lock file lives (default ``/run/lock``).
    """

    def __init__(
        self,
        functions: str | Sequence[str],
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
        tracefs: TraceFS | None = None,
        lock_dir: str | os.PathLike[str] | None = None,
    ):
        self.functions = _as_tuple(functions)
        if not self.functions:
            raise RecordError("give at least one function to graph (e.g. rtnetlink_rcv)")
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

    # ------------------------------------------------------------------ settings
    def _validate(self) -> None:
        if self.duration_s is not None and not self.duration_s > 0:
            raise RecordError(f"duration must be positive, not {self.duration_s}")
        if self.max_depth < 0 or self.thresh_us < 0:
            raise RecordError("max depth and threshold must be >= 0")
        if self.buffer_kb is not None and self.buffer_kb <= 0:
            raise RecordError(f"buffer size must be positive, not {self.buffer_kb} KiB")
        for pid in self.pids:
            if not os.path.exists(f"/proc/{pid}"):
                raise RecordError(f"no process with pid {pid}")
        parent = self.output.parent if str(self.output.parent) else Path(".")
        if not parent.is_dir():
            raise RecordError(f"cannot write the trace to {self.output}: {parent} is not a directory")
        if self.raw:
            self._validate_raw()
        elif self.output.is_dir():
            raise RecordError(f"cannot write the trace to {self.output}: it is a directory")

    def _validate_raw(self) -> None:
        out = self.output
        if not self.stream:
            raise RecordError("a raw capture reads the ring buffer while recording: it cannot "
                              "be combined with no streaming (--no-stream)")
        if out.name.endswith((".txt", ".txt.gz", ".txt.xz")):
            raise RecordError(f"a raw capture is a directory, not a text file: give -o a "
                              f"directory name (e.g. {out.name.split('.txt')[0] or 'trace'}.raw), "
                              f"not {out}")
        if out.exists() and not out.is_dir():
            raise RecordError(f"cannot write the capture to {out}: it exists and is not a "
                              "directory")
        if out.is_dir():
            foreign = [p.name for p in out.iterdir()
                       if p.name not in CAPTURE_FILES and not _is_cpu_raw(p.name)]
            if foreign:
                raise RecordError(f"cannot write the capture to {out}: the directory holds "
                                  f"other files ({', '.join(sorted(foreign)[:3])}); give a new "
                                  "or empty directory, or a previous capture")

    @property
    def settings(self) -> dict[str, Any]:
        """The recording's settings as stored in the sidecar under ``"settings"``."""
        return {
            "functions": list(self.functions), "notrace": list(self.notrace),
            "filter": list(self.filter), "pids": list(self.pids), "follow": self.follow,
            "command": self.command, "duration_s": self.duration_s, "max_depth": self.max_depth,
            "thresh_us": self.thresh_us, "buffer_kb": self.buffer_kb, "options": self.options,
            "events": list(self.events), "clock": self.clock, "stream": self.stream,
            "raw": self.raw, "instance": self.want_instance, "force": self.force,
        }

    def _resolve_options(self, d: TraceFS) -> dict[str, bool]:
        """Option file names → on/off: the defaults the kernel has, then the user's."""
        present = set(d.options())
        wanted = {k: v for k, v in DEFAULT_OPTIONS.items() if k in present}
        if self.follow:
            wanted.update({k: True for k in ("function-fork", "event-fork") if k in present})
        for name, on in self.options.items():
            for candidate in (f"funcgraph-{name}", name):
                if candidate in present:
                    wanted[candidate] = on
                    break
            else:
                graph = sorted(p[len("funcgraph-"):] for p in present if p.startswith("funcgraph-"))
                raise TracerUnavailableError(
                    f"no trace option {name!r} on this kernel; function_graph options here: "
                    f"{' '.join(graph) or 'none'}")
        return wanted

    def _plan(self, top: TraceFS, d: TraceFS) -> list[tuple[TraceFS, str, Any]]:
        """Every (directory, file, value) the recording writes, in write order. Values are
        checked here (events, clock, missing files) so nothing is written for a bad setting."""
        def where(name: str) -> TraceFS:
            return d if d.exists(name) else top

        plan: list[tuple[TraceFS, str, Any]] = [(d, "tracing_on", "0")]
        required = {"set_graph_function": self.functions, "set_graph_notrace": self.notrace,
                    "set_ftrace_filter": self.filter, "max_graph_depth": self.max_depth,
                    "tracing_thresh": self.thresh_us}
        defaults = {"set_graph_function": (), "set_graph_notrace": (), "set_ftrace_filter": (),
                    "set_ftrace_notrace": (), "set_ftrace_notrace_pid": (),
                    "max_graph_depth": 0, "tracing_thresh": 0}
        for name, default in defaults.items():
            value = required.get(name, default)
            target = where(name)
            if not target.exists(name):
                if value not in ((), 0):
                    raise TracerUnavailableError(
                        f"this kernel has no {name} (needed for the requested setting)")
                continue
            plan.append((target, name, list(value) if isinstance(value, tuple) else value))
        if d.exists("set_ftrace_pid"):
            plan.append((d, "set_ftrace_pid", [str(p) for p in self.pids]))
        elif self.pids:
            raise TracerUnavailableError("this kernel has no set_ftrace_pid: cannot filter by pid")
        if self.buffer_kb is not None:
            plan.append((d, "buffer_size_kb", int(self.buffer_kb)))
        if self.clock is not None:
            clocks = d.read("trace_clock").replace("[", " ").replace("]", " ").split()
            if self.clock not in clocks:
                raise TracerUnavailableError(
                    f"no trace clock {self.clock!r} on this kernel; clocks: {' '.join(clocks)}")
            plan.append((d, "trace_clock", self.clock))
        for spec in self.events:
            for f in d.event_files(spec):
                plan.append((d, f, "1"))
        if self.events and d.exists("set_event_pid"):
            plan.append((d, "set_event_pid", [str(p) for p in self.pids]))
        plan.append((d, "current_tracer", "function_graph"))
        for name, on in self._resolve_options(d).items():
            plan.append((d, f"options/{name}", "1" if on else "0"))
        return plan

    @staticmethod
    def _restore_order(files: list[str]) -> list[str]:
        """current_tracer first (stop the tracer before its settings change under it),
        tracing_on last."""
        first = [f for f in files if f == "current_tracer"]
        last = [f for f in files if f == "tracing_on"]
        return first + [f for f in files if f not in ("current_tracer", "tracing_on")] + last

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
            if failures:
                warnings.warn("tracefs could not be fully restored: "
                              + "; ".join(failures), RuntimeWarning, stacklevel=2)
            raise
        return self

    def _start(self) -> None:
        top = self._tracefs.top if self._tracefs is not None else TraceFS()
        self._top = top
        tracers = top.read("available_tracers").split()
        if "function_graph" not in tracers:
            raise TracerUnavailableError(
                f"this kernel has no function_graph tracer (available tracers: "
                f"{' '.join(tracers) or 'none'}); it needs CONFIG_FUNCTION_GRAPH_TRACER — run "
                "`ftracekit doctor` for details")

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
                              "instance": self._instance_name, "snapshot": self._snapshot})

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

    def _choose_dir(self, top: TraceFS) -> TraceFS:
        if self.want_instance is False:
            return top
        name = f"{INSTANCE_PREFIX}{os.getpid()}-{_proc_starttime(os.getpid())}"
        try:
            inst = top.make_instance(name)
        except TracefsError:
            if self.want_instance:
                raise
            return top
        self._instance_name = name
        if "function_graph" in inst.available_tracers():
            return inst
        top.remove_instance(name)
        self._instance_name = None
        if self.want_instance:
            raise TracerUnavailableError(
                "this kernel cannot run function_graph in a tracing instance (needs Linux 6.11+)")
        return top

    def _check_busy(self, top: TraceFS, d: TraceFS) -> None:
        if self.force:
            return
        if d is top:
            current = top.current_tracer()
            if current != "nop":
                raise TracerBusyError(
                    f"the tracer {current!r} is active at {top.root} (someone else is tracing); "
                    "stop it, or use --force to record anyway (their trace buffer is lost)")
            return
        # In an instance, set_graph_function & co. are global: another function_graph user would
        # see its filter change under it.
        others = [("top level", top)] + [(n, top.instance(n)) for n in top.instances()
                                         if n != self._instance_name]
        for label, other in others:
            try:
                current = other.current_tracer()
            except TracefsError:
                continue
            if current == "function_graph":
                raise TracerBusyError(
                    f"function_graph is already in use ({label} of {top.root}) and its graph "
                    "filter is global; stop it, or use --force")

    def _describe(self, top: TraceFS, d: TraceFS) -> dict[str, Any]:
        u = platform.uname()
        return {
            "ftracekit_version": __version__,
            "kernel": u.release, "kernel_version": u.version, "machine": u.machine,
            "hostname": u.node,
            "tracefs": str(top.root),
            "instance": self._instance_name,
            "mode": "instance" if d is not top else "top-level",
            "capture": "raw" if self.raw else "text",
            "settings": self.settings,
            "trace_clock": d.read_value("trace_clock") if d.exists("trace_clock") else None,
            "buffer_kb": d.read_value("buffer_size_kb") if d.exists("buffer_size_kb") else None,
            "options": {k: v for k, v in d.options().items()
                        if k.startswith("funcgraph-") or k in DEFAULT_OPTIONS},
            "output": str(self.output),
        }

    # ------------------------------------------------------------------ running
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


def _is_cpu_raw(name: str) -> bool:
    """``cpuN.raw``: one CPU's pages in a capture directory."""
    return name.startswith("cpu") and name.endswith(".raw") and name[3:-4].isdigit()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record(functions: str | Sequence[str], **settings: Any) -> "Trace":
    """Record function_graph calls of ``functions`` and return the parsed trace.

    One-call form of :class:`Recorder` (same keyword settings), e.g.
    ``record("rtnetlink_rcv", command=["ip", "link", "show"], output="t.txt")``, or with
    ``raw=True, output="t.raw"`` for a binary capture directory (busy graphs).
    """
    return Recorder(functions, **settings).run()

