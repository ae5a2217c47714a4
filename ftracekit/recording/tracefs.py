"""tracefs access: the ONLY code in ftracekit that touches ``/sys/kernel/tracing``.

:class:`TraceFS` wraps one tracing directory — the top level, an instance under ``instances/``,
or any directory that looks like one (tests point it at a fake tree). It finds tracefs through
``/proc/mounts`` (``tracefs``, else ``debugfs`` + ``/tracing``), mounts it when it is absent and
the caller is root, reads and writes control files with the standard library only, and turns
``OSError`` into the one-line errors of :mod:`ftracekit.errors`:

* EACCES / EPERM → :class:`PermissionDeniedError` ("run as root", or "tracing is locked down"
  when already root);
* EINVAL writing a function filter → :class:`NotTraceableError` with close matches from
  ``available_filter_functions`` (or a note that it is unreadable);
* EINVAL writing ``current_tracer`` → :class:`TracerUnavailableError` listing ``available_tracers``;
* EBUSY → :class:`TracerBusyError`; a missing control file → :class:`TracerUnavailableError`.

It also snapshots control files and restores them (:meth:`TraceFS.snapshot`,
:meth:`TraceFS.restore`): the recorder decides *which* files, this module knows *how* each kind
of file is read back and written again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import (
    NotTraceableError,
    PermissionDeniedError,
    TracefsError,
    TracefsNotFoundError,
    TracerBusyError,
    TracerUnavailableError,
)

__all__ = ["TraceFS", "find_tracefs", "DEFAULT_MOUNTPOINT", "FILTER_FILES", "LIST_FILES"]

#: Where tracefs lives on kernels >= 4.1 and where ftracekit mounts it when it is absent.
DEFAULT_MOUNTPOINT = "/sys/kernel/tracing"

#: Files that take function names / globs; EINVAL on them means "not traceable".
FILTER_FILES = frozenset({
    "set_graph_function", "set_graph_notrace", "set_ftrace_filter", "set_ftrace_notrace",
})
#: Files whose content is a list (one item a line), rewritten item by item on restore.
LIST_FILES = FILTER_FILES | {"set_ftrace_pid", "set_ftrace_notrace_pid", "set_event_pid",
                             "set_event_notrace_pid"}

_MODULE_FUNC = re.compile(r"^(\S+) \[(\S+)\]$")          # "func [module]" as read back
_EXPANDED = re.compile(r"^\d+ \(expanded: (\d+)\)$")      # buffer_size_kb before first use


def _unescape_mount(field: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts(mounts_file: str) -> list[tuple[str, str]]:
    """(mountpoint, fstype) pairs from ``mounts_file``; empty when it cannot be read."""
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            out.append((_unescape_mount(parts[1]), parts[2]))
    return out


def _mount_tracefs(target: str) -> None:
    """mount(2) tracefs on ``target``; raises OSError with the errno of the failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    if libc.mount(b"nodev", os.fsencode(target), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def find_tracefs(*, mount: bool = True, mounts_file: str = "/proc/mounts") -> tuple[Path, str]:
    """Locate the tracing directory; return ``(path, how)``.

    ``how`` is ``"tracefs"`` (a tracefs mount), ``"debugfs"`` (``<debugfs>/tracing``) or
    ``"mounted"`` (it was absent and this call mounted tracefs at :data:`DEFAULT_MOUNTPOINT`).
    Raises :class:`TracefsNotFoundError` when there is none and it cannot be mounted.
    """
    mounts = _mounts(mounts_file)
    for point, fstype in mounts:
        if fstype == "tracefs" and os.path.isdir(point):
            return Path(point), "tracefs"
    for point, fstype in mounts:
        if fstype == "debugfs" and os.path.isdir(os.path.join(point, "tracing")):
            return Path(point, "tracing"), "debugfs"
    if not os.path.isdir(DEFAULT_MOUNTPOINT):
        raise TracefsNotFoundError(
            f"this kernel has no tracefs ({DEFAULT_MOUNTPOINT} does not exist): it was built "
            "without CONFIG_FTRACE/CONFIG_TRACING")
    if not mount:
        raise TracefsNotFoundError(
            f"tracefs is not mounted; mount it with: mount -t tracefs nodev {DEFAULT_MOUNTPOINT}")
    if os.geteuid() != 0:
        raise TracefsNotFoundError(
            "tracefs is not mounted and only root can mount it: run as root (sudo), or ask an "
            f"admin to run: mount -t tracefs nodev {DEFAULT_MOUNTPOINT}")
    try:
        _mount_tracefs(DEFAULT_MOUNTPOINT)
    except OSError as err:
        raise TracefsNotFoundError(
            f"tracefs is not mounted and mounting it on {DEFAULT_MOUNTPOINT} failed: "
            f"{err.strerror}") from err
    return Path(DEFAULT_MOUNTPOINT), "mounted"


def _values_equal(name: str, a: str, b: str) -> bool:
    if name in LIST_FILES:
        return sorted(_list_items(name, a)) == sorted(_list_items(name, b))
    va, vb = _single_value(name, a), _single_value(name, b)
    if va != vb and _is_buffer_size(name) and va.isdigit() and vb.isdigit():
        # The kernel rounds a size up to whole sub-buffers ("7 (expanded: 1408)" reads 1410
        # once expanded; writing 1408 back gives 1410 again): within 1% is the same size.
        x, y = int(va), int(vb)
        return abs(x - y) <= max(4, max(x, y) // 100)
    return va == vb


def _is_buffer_size(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("buffer_") and base.endswith("size_kb")


def _single_value(name: str, text: str) -> str:
    """The value to write back for a one-value file, from what reading it returned."""
    value = text.strip()
    base = name.rsplit("/", 1)[-1]
    if base == "trace_clock":
        m = re.search(r"\[(\S+)\]", value)
        return m.group(1) if m else value
    if _is_buffer_size(base):
        m = _EXPANDED.match(value)
        return m.group(1) if m else value
    if base == "enable":
        return value.rstrip("*")        # "1*": enabled in soft mode by a trigger
    return value


def _list_items(name: str, text: str) -> list[str]:
    """Items to write back for a list file, from what reading it returned."""
    items = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "no pid":
            continue
        m = _MODULE_FUNC.match(line)
        items.append(f"{m.group(1)}:mod:{m.group(2)}" if m else line)
    return items


class TraceFS:
    """One tracing directory: the top level, an instance, or a test tree.

    ``TraceFS()`` finds (and if needed mounts) the system's tracefs; ``TraceFS(root=dir)`` uses
    ``dir`` as is. For an instance, :attr:`top` is the top-level directory that holds the global
    files an instance lacks (``set_graph_function``, ``max_graph_depth`` …).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, mount: bool = True,
                 top: "TraceFS | None" = None):
        if root is None:
            path, how = find_tracefs(mount=mount)
        else:
            path, how = Path(root), "given"
            if not path.is_dir():
                raise TracefsNotFoundError(f"{path} is not a tracing directory")
        self.root: Path = path
        #: how it was found: "tracefs", "debugfs", "mounted" (by us) or "given"
        self.how: str = how
        self.top: TraceFS = top if top is not None else self

    def __repr__(self) -> str:
        return f"TraceFS({str(self.root)!r})"

    @property
    def is_instance(self) -> bool:
        return self.top is not self

    @property
    def name(self) -> str:
        """The instance name, or "" for the top level."""
        return self.root.name if self.is_instance else ""

    # ------------------------------------------------------------------ raw access
    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def _error(self, err: OSError, name: str, action: str, value: str | None = None) -> TracefsError:
        """The library error for ``err`` raised while ``action``-ing control file ``name``."""
        path = self.path(name)
        base = name.rsplit("/", 1)[-1]
        code = err.errno
        if code in (errno.EACCES, errno.EPERM):
            if os.geteuid() != 0:
                return PermissionDeniedError(
                    f"permission denied {action} {path}: tracing needs root (run with sudo)")
            return PermissionDeniedError(
                f"permission denied {action} {path} although running as root: tracing is "
                "locked down on this kernel (kernel lockdown or a security policy)")
        if code == errno.ENOENT:
            return TracerUnavailableError(
                f"{path} does not exist: this kernel (or tracing instance) does not support "
                f"{base!r}")
        if code == errno.EBUSY:
            return TracerBusyError(
                f"{path} is busy ({action} {value!r} refused with EBUSY): another tracer or "
                "program is using this tracing instance" if value is not None else
                f"{path} is busy (EBUSY): another program is using this tracing instance")
        if code == errno.EINVAL and value is not None:
            if base in FILTER_FILES:
                return self._not_traceable(value)
            if base == "current_tracer":
                return TracerUnavailableError(
                    f"tracer {value!r} is not available here ({self.root}); available tracers: "
                    f"{' '.join(self.available_tracers()) or 'none'}")
            return TracefsError(f"the kernel rejected {value!r} for {path} (EINVAL)")
        return TracefsError(f"{action} {path} failed: {err.strerror or err}")

    def _not_traceable(self, pattern: str) -> NotTraceableError:
        extra = ""
        candidates: list[str] = []
        try:
            candidates = self.available_functions()
        except TracefsError as err:
            extra = f"no suggestions: {err}"
        if candidates and not extra:
            # difflib over ~50k names is slow on an emulated CPU; a length window keeps it cheap.
            n = len(pattern)
            candidates = [c for c in candidates if abs(len(c) - n) <= max(3, n // 3)]
        return NotTraceableError(pattern, candidates, extra=extra)

    def read(self, name: str) -> str:
        """The whole text of control file ``name``."""
        try:
            with open(self.path(name), "rb") as fh:
                return fh.read().decode("utf-8", errors="replace")
        except OSError as err:
            raise self._error(err, name, "reading") from err

    def read_value(self, name: str) -> str:
        """A one-value file as the value one would write back: ``trace_clock`` → the selected
        clock, ``buffer_size_kb`` → the size in KiB even before the buffer was expanded."""
        return _single_value(name, self.read(name))

    def read_list(self, name: str) -> list[str]:
        """A list file (filters, pids) as items, without ``####`` comments or ``no pid``."""
        return _list_items(name, self.read(name))

    def write(self, name: str, value: str | int) -> None:
        """Write ``value`` to ``name`` like ``echo value > name`` (truncating)."""
        text = str(value)
        try:
            fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        except OSError as err:
            raise self._error(err, name, "opening for write") from err
        try:
            os.write(fd, text.encode() + b"\n")
        except OSError as err:
            raise self._error(err, name, "writing", text) from err
        finally:
            _close(fd)

    def write_list(self, name: str, items: Sequence[str]) -> None:
        """Replace the list in ``name`` by ``items`` (one write per item, so an EINVAL names
        the item at fault); an empty ``items`` clears it."""
        try:
            fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        except OSError as err:
            raise self._error(err, name, "opening for write") from err
        try:
            for item in items:
                try:
                    os.write(fd, str(item).encode() + b"\n")
                except OSError as err:
                    raise self._error(err, name, "writing", str(item)) from err
        except BaseException:
            _close(fd)
            raise
        try:
            os.close(fd)
        except OSError as err:      # filters are committed on close
            raise self._error(err, name, "committing") from err

    def ensure(self, name: str, value: str | int | Sequence[str]) -> bool:
        """Make ``name`` hold ``value`` (a list for list files), writing only when it differs
        from what the file holds now; return whether it wrote."""
        if name in LIST_FILES:
            items = [value] if isinstance(value, (str, int)) else list(value)
            if sorted(map(str, items)) == sorted(self.read_list(name)):
                return False
            self.write_list(name, [str(i) for i in items])
            return True
        if self.read_value(name) == str(value):
            return False
        self.write(name, str(value))
        return True

    # ------------------------------------------------------------------ tracers and options
    def available_tracers(self) -> list[str]:
        """Tracers this directory can use (an instance lists only those allowed in instances);
        [] when the file cannot be read."""
        try:
            return self.read("available_tracers").split()
        except TracefsError:
            return []

    def current_tracer(self) -> str:
        return self.read("current_tracer").strip()

    def set_tracer(self, tracer: str) -> None:
        """Switch ``current_tracer`` (this clears the buffer); unknown → the available list."""
        available = self.available_tracers()
        if available and tracer not in available:
            raise TracerUnavailableError(
                f"tracer {tracer!r} is not available here ({self.root}); available tracers: "
                f"{' '.join(available)}")
        self.write("current_tracer", tracer)

    def options(self) -> dict[str, bool]:
        """Every ``options/<name>`` file and whether it is on."""
        out = {}
        try:
            names = sorted(os.listdir(self.path("options")))
        except OSError:
            return {}
        for n in names:
            try:
                out[n] = self.read(f"options/{n}").strip() == "1"
            except TracefsError:
                continue
        return out

    def set_option(self, name: str, on: bool) -> None:
        """Turn ``options/<name>`` on or off; a missing option → :class:`TracerUnavailableError`."""
        if not self.exists(f"options/{name}"):
            raise TracerUnavailableError(
                f"this kernel has no trace option {name!r} (in {self.path('options')})")
        self.write(f"options/{name}", "1" if on else "0")

    def available_functions(self) -> list[str]:
        """Names from ``available_filter_functions`` (module suffixes dropped)."""
        text = self.top.read("available_filter_functions")
        return [line.split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"]

    # ------------------------------------------------------------------ events
    def event_files(self, spec: str) -> list[str]:
        """The ``events/<sys>/<event>/enable`` files for ``"sys:event"``, ``"sys:*"``,
        ``"sys"`` or ``"sys/event"`` (globs allowed in both parts)."""
        import fnmatch

        system, _, event = spec.replace("/", ":").partition(":")
        event = event or "*"
        events_dir = self.path("events")
        try:
            systems = sorted(d for d in os.listdir(events_dir) if (events_dir / d).is_dir())
        except OSError as err:
            raise self._error(err, "events", "listing") from err
        files = []
        for s in fnmatch.filter(systems, system):
            try:
                names = sorted(os.listdir(events_dir / s))
            except OSError:
                continue
            for e in fnmatch.filter(names, event):
                if (events_dir / s / e / "enable").exists():
                    files.append(f"events/{s}/{e}/enable")
        if not files:
            from ..errors import _suggest

            matched = fnmatch.filter(systems, system)
            if matched:
                known = [f"{s}:{e}" for s in matched for e in sorted(os.listdir(events_dir / s))
                         if (events_dir / s / e).is_dir()]
                near = _suggest(f"{system}:{event}", known)
            else:
                near = _suggest(system, systems)
            hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            raise TracerUnavailableError(f"no trace event {spec!r} on this kernel{hint}")
        return files

    # ------------------------------------------------------------------ buffers
    def cpus(self) -> list[int]:
        """CPU numbers that have a ``per_cpu/cpuN`` directory."""
        try:
            names = os.listdir(self.path("per_cpu"))
        except OSError:
            return []
        return sorted(int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdigit())

    def cpu_stats(self) -> dict[int, dict[str, float]]:
        """``per_cpu/cpuN/stats`` for each CPU: ``entries``, ``overrun``, ``commit_overrun``,
        ``bytes``, ``dropped_events``, ``read_events`` (counts) and the timestamps in seconds."""
        out: dict[int, dict[str, float]] = {}
        for cpu in self.cpus():
            stats: dict[str, float] = {}
            for line in self.read(f"per_cpu/cpu{cpu}/stats").splitlines():
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key = key.strip().replace(" ", "_")
                try:
                    num = float(value.strip())
                except ValueError:
                    continue
                stats[key] = int(num) if num.is_integer() and "." not in value else num
            out[cpu] = stats
        return out

    def clear(self) -> None:
        """Empty the ring buffer (like ``echo > trace``)."""
        self.write("trace", "")

    def header(self) -> str:
        """The comment header ``trace`` prints for the current tracer and options (read while
        the buffer is empty, this is all it prints)."""
        return "".join(line + "\n" for line in self.read("trace").splitlines()
                       if line.startswith("#"))

    def open_pipe(self) -> int:
        """A non-blocking file descriptor on ``trace_pipe`` (consuming reads); close it with
        ``os.close``."""
        try:
            return os.open(self.path("trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            raise self._error(err, "trace_pipe", "opening") from err

    def open_raw(self, cpu: int) -> int:
        """A non-blocking file descriptor on ``per_cpu/cpu<cpu>/trace_pipe_raw`` (whole
        ring-buffer pages, consuming); close it with ``os.close``."""
        name = f"per_cpu/cpu{cpu}/trace_pipe_raw"
        try:
            return os.open(self.path(name), os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            raise self._error(err, name, "opening") from err

    # ------------------------------------------------------------------ instances
    def instances(self) -> list[str]:
        try:
            return sorted(os.listdir(self.top.path("instances")))
        except OSError:
            return []

    def make_instance(self, name: str) -> "TraceFS":
        """Create ``instances/<name>`` (mkdir) and return it."""
        path = self.top.path("instances") / name
        try:
            os.mkdir(path)
        except OSError as err:
            raise self.top._error(err, f"instances/{name}", "creating") from err
        return TraceFS(path, top=self.top)

    def instance(self, name: str) -> "TraceFS":
        """An existing instance."""
        return TraceFS(self.top.path("instances") / name, top=self.top)

    def remove_instance(self, name: str) -> None:
        """rmdir ``instances/<name>`` (fails with EBUSY while one of its files is open)."""
        try:
            os.rmdir(self.top.path("instances") / name)
        except FileNotFoundError:
            return
        except OSError as err:
            raise self.top._error(err, f"instances/{name}", "removing") from err

    # ------------------------------------------------------------------ snapshot / restore
    def snapshot(self, names: Iterable[str]) -> dict[str, str]:
        """The raw text of each existing file in ``names`` (missing ones are skipped).

        ``buffer_size_kb`` reading ``X`` (CPUs differ) adds every ``per_cpu/cpuN/buffer_size_kb``.
        """
        snap: dict[str, str] = {}
        for name in names:
            if name in snap or not self.exists(name):
                continue
            snap[name] = self.read(name)
            if name == "buffer_size_kb" and snap[name].strip() == "X":
                for cpu in self.cpus():
                    per = f"per_cpu/cpu{cpu}/buffer_size_kb"
                    snap[per] = self.read(per)
        return snap

    def differences(self, snapshot: Mapping[str, str]) -> list[str]:
        """Files of ``snapshot`` whose value now differs (compared as values, not bytes: list
        order and ``7 (expanded: 1408)`` vs ``1408`` do not count)."""
        diff = []
        for name, old in snapshot.items():
            try:
                now = self.read(name)
            except TracefsError:
                diff.append(name)
                continue
            if not _values_equal(name, old, now):
                diff.append(name)
        return diff

    def restore(self, snapshot: Mapping[str, str]) -> list[str]:
        """Write back every file of ``snapshot`` whose value changed, in the snapshot's order.

        Best effort: keeps going after a failure; returns one message per file it could not
        restore (empty when all is back).
        """
        failures = []
        for name in self.differences(snapshot):
            old = snapshot[name]
            try:
                if name in LIST_FILES:
                    self.write_list(name, _list_items(name, old))
                elif _single_value(name, old) != "X":   # "X": the per_cpu files restore it
                    self.write(name, _single_value(name, old))
            except TracefsError as err:
                failures.append(f"{name}: {err}")
        return failures


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
