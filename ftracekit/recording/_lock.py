"""The recording lock and stale-state recovery: what survives a SIGKILLed recording.

A lock file (``/run/lock/ftracekit-<id>.lock``, ``flock``-ed while recording) holds the snapshot
of every top-level control file a recording touches. A live holder means another ftracekit is
recording; a lock with content but no holder is what a killed recording left behind, and
:func:`recover_stale` (run by the next recording and by ``ftracekit doctor --clean``) restores
it and removes the dead recording's instance.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import RecordError, TracerBusyError
from .tracefs import TraceFS

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["recover_stale", "stale_state", "INSTANCE_PREFIX"]

#: Name prefix of the private tracing instances ftracekit creates.
INSTANCE_PREFIX = "ftracekit-"


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
    from .nlmon import remove_stale_devices    # nlmon devices of dead recordings (issue 12)

    done += remove_stale_devices((stale or {}).get("nlmon"))
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
