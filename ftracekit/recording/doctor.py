"""``ftracekit doctor``: what this kernel and machine support for recording, and why not.

:func:`diagnose` looks (through :mod:`ftracekit.recording.tracefs` only) at: tracefs and how it was found,
root, kernel lockdown, the tracers, function_graph, function filters, whether a private instance
can host function_graph (6.11+), the funcgraph options, a few useful events, buffer sizes and
clocks, and whether someone else's tracer or a (dead) ftracekit is using tracing. It changes
nothing except creating and removing a probe instance (and mounting tracefs when it is absent,
as ``record`` would).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from ..errors import FtracekitError, PermissionDeniedError, TracefsError
from ._lock import INSTANCE_PREFIX, _proc_starttime, stale_state
from .tracefs import TraceFS

__all__ = ["Check", "Diagnosis", "diagnose", "USEFUL_EVENTS"]

#: Events worth knowing about for network tracing (system:event).
USEFUL_EVENTS = ("skb:kfree_skb", "skb:consume_skb", "net:netif_receive_skb",
                 "tcp:tcp_send_reset", "sock:inet_sock_set_state")

#: funcgraph options and the kernel that brought them (for the "missing" hints).
_OPTION_SINCE = {"retval": "6.5 + CONFIG_FUNCTION_GRAPH_RETVAL", "retval-hex": "6.5",
                 "retaddr": "6.13", "args": "6.16", "tail": "~4.x", "proc": "2.6",
                 "abstime": "2.6", "irqs": "3.10"}


@dataclass
class Check:
    """One line of the diagnosis. ``status``: ``ok``, ``info``, ``warn`` or ``fail`` (a fail
    means recording cannot work)."""

    name: str
    status: str
    detail: str


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)
    #: where a recording would go: "instance", "top-level" or None (cannot record)
    mode: str | None = None

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def ok(self) -> bool:
        """True when recording can work on this machine now."""
        return not self.reasons

    @property
    def reasons(self) -> list[str]:
        """Why recording cannot work (the details of the failed checks)."""
        return [c.detail for c in self.checks if c.status == "fail"]

    def verdict(self) -> str:
        if self.ok:
            where = "in a private instance" if self.mode == "instance" else "at the top level"
            return f"recording can work ({where})"
        more = len(self.reasons) - 1
        return "cannot record: " + self.reasons[0] + (
            f" (and {more} more problem{'s' if more > 1 else ''} above)" if more else "")

    def format(self) -> str:
        """The report ``ftracekit doctor`` prints."""
        width = max((len(c.name) for c in self.checks), default=0)
        marks = {"ok": "ok  ", "info": "    ", "warn": "WARN", "fail": "FAIL"}
        lines = [f"{marks.get(c.status, c.status):4} {c.name:<{width}}  {c.detail}"
                 for c in self.checks]
        lines.append(self.verdict())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "mode": self.mode, "verdict": self.verdict(),
                "checks": [c.__dict__ for c in self.checks]}


def diagnose(tracefs: TraceFS | None = None, *, mount: bool = True,
             lock_dir: str | os.PathLike[str] | None = None) -> Diagnosis:
    """Inspect this machine's tracing support; see :class:`Diagnosis`."""
    diag = Diagnosis()
    diag.add("kernel", "info", f"{platform.release()} ({platform.machine()})")
    root = os.geteuid() == 0
    diag.add("root", "ok" if root else "fail",
             "running as root" if root else "not root: recording needs root (run with sudo)")

    if tracefs is None:
        try:
            tracefs = TraceFS(mount=mount)
        except FtracekitError as err:
            diag.add("tracefs", "fail", str(err))
            return diag
    how = {"tracefs": "tracefs mount", "debugfs": "under debugfs (old kernel or no tracefs mount)",
           "mounted": "was not mounted; ftracekit mounted it", "given": "given"}[tracefs.how]
    diag.add("tracefs", "ok", f"{tracefs.root} ({how})")
    _lockdown(diag)

    try:
        tracers = tracefs.read("available_tracers").split()
    except TracefsError as err:
        diag.add("tracers", "fail", str(err))
        return diag
    diag.add("tracers", "info", " ".join(tracers) or "none")
    has_graph = "function_graph" in tracers
    diag.add("function_graph", "ok" if has_graph else "fail",
             "function_graph tracer present" if has_graph else
             "this kernel has no function_graph tracer (built without "
             "CONFIG_FUNCTION_GRAPH_TRACER): recording is impossible here")

    _filters(diag, tracefs, has_graph)
    instance_ok = _instances(diag, tracefs, has_graph)
    _options(diag, tracefs)
    _events(diag, tracefs)
    _netlink(diag)
    _buffers(diag, tracefs)
    _in_use(diag, tracefs, instance_ok, lock_dir)
    if diag.ok:
        diag.mode = "instance" if instance_ok else "top-level"
    return diag


def _netlink(diag: Diagnosis) -> None:
    """``record --netlink``: nlmon, CAP_NET_ADMIN, ``ip``; a leftover device of a dead
    recording. Info/warn only: plain recording does not need it."""
    from .nlmon import nlmon_support, stale_devices

    s = nlmon_support()
    diag.add("netlink capture", "ok" if s["ok"] else "info",
             f"--netlink works: {s['detail']}" if s["ok"] else f"--netlink unavailable: {s['detail']}")
    stale = stale_devices()
    if stale:
        diag.add("nlmon devices", "warn", f"left by a killed ftracekit: {', '.join(stale)} "
                 "(`ftracekit doctor --clean` removes them)")


def _lockdown(diag: Diagnosis) -> None:
    try:
        with open("/sys/kernel/security/lockdown", encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return
    mode = text[text.find("[") + 1:text.find("]")] if "[" in text else text
    diag.add("lockdown", "ok" if mode == "none" else "warn",
             f"kernel lockdown: {mode}" + ("" if mode == "none" else
                                           " (tracefs may refuse some files)"))


def _filters(diag: Diagnosis, tfs: TraceFS, has_graph: bool) -> None:
    if has_graph and not tfs.exists("set_graph_function"):
        diag.add("graph filter", "fail", "set_graph_function is missing: cannot pick functions")
    denied, problems = [], []
    for name in ("set_ftrace_filter", "available_filter_functions"):
        if not tfs.exists(name):
            problems.append(f"{name} is missing (kernel without dynamic ftrace)")
            continue
        try:
            text = tfs.read(name)
        except PermissionDeniedError:
            denied.append(name)
            continue
        except TracefsError as err:
            problems.append(str(err))
            continue
        if name == "available_filter_functions":
            count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            diag.add("functions", "ok", f"{count:,} traceable functions")
    if denied:
        who = ("although running as root: tracing is locked down on this kernel"
               if os.geteuid() == 0 else "(not root)")
        problems.insert(0, f"function filters refused: reading {' and '.join(denied)} gives "
                           f"EPERM {who}")
    for p in problems:
        diag.add("function filters", "fail", p)


def _instances(diag: Diagnosis, tfs: TraceFS, has_graph: bool) -> bool:
    """Probe whether a private instance can host function_graph (mkdir + read + rmdir)."""
    if not tfs.exists("instances"):
        diag.add("instances", "info", "no instances/ directory (kernel < 3.10): top level only")
        return False
    name = f"{INSTANCE_PREFIX}{os.getpid()}-{_proc_starttime(os.getpid())}"
    try:
        inst = tfs.make_instance(name)
    except TracefsError as err:
        diag.add("instances", "info", f"cannot create an instance ({err}): top level only")
        return False
    try:
        ok = "function_graph" in inst.available_tracers()
    finally:
        try:
            tfs.remove_instance(name)
        except TracefsError as err:
            diag.add("instances", "warn", f"could not remove the probe instance: {err}")
    if ok:
        diag.add("instances", "ok", "function_graph works in a private instance (kernel >= 6.11): "
                 "recordings leave the top-level tracer alone (the graph filter, depth and "
                 "threshold are still global)")
    elif has_graph:
        diag.add("instances", "info", "instances cannot host function_graph (kernel < 6.11): "
                 "recordings use the top level, which must be free")
    else:
        diag.add("instances", "info", "instances can be created, but not with function_graph")
    return ok


def _options(diag: Diagnosis, tfs: TraceFS) -> None:
    opts = tfs.options()
    graph = sorted(o[len("funcgraph-"):] for o in opts if o.startswith("funcgraph-"))
    if not graph:
        diag.add("funcgraph options", "info", "none (they come with the function_graph tracer)")
        return
    missing = [f"{o} ({v})" for o, v in _OPTION_SINCE.items() if o not in graph]
    detail = " ".join(graph) + (f"; missing: {', '.join(missing)}" if missing else "")
    diag.add("funcgraph options", "ok", detail)


def _events(diag: Diagnosis, tfs: TraceFS) -> None:
    found, missing = [], []
    for spec in USEFUL_EVENTS:
        system, event = spec.split(":")
        (found if tfs.exists(f"events/{system}/{event}/enable") else missing).append(spec)
    if not tfs.exists("events"):
        diag.add("events", "warn", "no events/ directory")
        return
    detail = (" ".join(found) or "none of the usual ones")
    if missing:
        detail += f"; absent: {' '.join(missing)}"
    diag.add("events", "ok" if found else "info", detail)


def _buffers(diag: Diagnosis, tfs: TraceFS) -> None:
    parts = []
    cpus = tfs.cpus()
    for name, label in (("buffer_size_kb", "per CPU"), ("buffer_total_size_kb", "total")):
        if tfs.exists(name):
            try:
                parts.append(f"{tfs.read_value(name)} KiB {label}")
            except TracefsError:
                pass
    diag.add("buffer", "info", ", ".join(parts) + f" ({len(cpus)} CPUs)")
    if tfs.exists("trace_clock"):
        try:
            clocks = tfs.read("trace_clock").split()
            diag.add("clock", "info", " ".join(clocks))
        except TracefsError:
            pass


def _in_use(diag: Diagnosis, tfs: TraceFS, instance_ok: bool,
            lock_dir: str | os.PathLike[str] | None) -> None:
    try:
        state = stale_state(tfs, lock_dir=lock_dir)
    except (OSError, FtracekitError) as err:
        state = None
        diag.add("ftracekit lock", "warn", f"cannot check the lock: {err}")
    stale_instances = set(state["stale_instances"]) if state else set()
    stale_top = bool(state and state["stale_pid"] is not None)

    users = []
    try:
        current = tfs.current_tracer()
    except TracefsError as err:
        diag.add("in use", "warn", str(err))
        return
    if current != "nop" and not stale_top:
        users.append(f"top level: tracer {current!r}")
    for name in tfs.instances():
        if name in stale_instances:
            continue
        try:
            tracer = tfs.instance(name).current_tracer()
        except FtracekitError:
            continue
        if tracer != "nop":
            users.append(f"instance {name}: tracer {tracer!r}")
    try:
        events = tfs.read_list("set_event")
    except TracefsError:
        events = []
    if events:
        users.append(f"top level: {len(events)} events enabled")

    graph_users = [u for u in users if "'function_graph'" in u]
    if not instance_ok and current != "nop" and not stale_top:
        diag.add("in use", "fail", f"the top-level tracer {current!r} is in use by someone else: "
                 "record would refuse (use --force to take it over)")
    elif instance_ok and graph_users:
        diag.add("in use", "fail", f"function_graph is already in use ({graph_users[0]}) and its "
                 "graph filter is global: record would refuse (use --force)")
    else:
        diag.add("in use", "warn" if users else "ok", "; ".join(users) if users else
                 "no other tracer is active")

    if state is None:
        return
    if state["recording_pid"] is not None:
        diag.add("ftracekit lock", "fail",
                 f"another ftracekit (pid {state['recording_pid']}) is recording now")
    elif stale_top or stale_instances:
        what = []
        if stale_top:
            what.append(f"settings of killed ftracekit pid {state['stale_pid']}"
                        + (f" (top-level tracer {current!r})" if current != "nop" else ""))
        what += [f"instance {n}" for n in sorted(stale_instances)]
        diag.add("ftracekit lock", "warn", "left behind: " + ", ".join(what) +
                 " (the next record restores it; or run `ftracekit doctor --clean`)")
    else:
        diag.add("ftracekit lock", "ok", f"no other ftracekit recording ({state['lock']})")
