"""A recording's settings: validation, the trace options it sets, the plan of every tracefs
write (checked before anything is written), where it records (instance or top level) and
the description stored in the sidecar. :class:`~ftracekit.recording.recorder.Recorder`
inherits these; it owns the recording's life (start, run, stop, restore).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .._version import __version__
from ..errors import RecordError, TracefsError, TracerBusyError, TracerUnavailableError
from .rawcapture import CAPTURE_FILES
from .tracefs import TraceFS

if TYPE_CHECKING:  # pragma: no cover
    pass

from ._lock import INSTANCE_PREFIX, _proc_starttime

__all__ = ["DEFAULT_OPTIONS", "PACKET_EVENTS"]

#: Trace events with an skb address (``skbaddr=``) that ``packets=True`` enables where the kernel
#: has them (``net:*_entry`` are the receive entry points, 4.x+).
PACKET_EVENTS = (
    "net:net_dev_queue", "net:net_dev_start_xmit", "net:net_dev_xmit", "net:netif_rx",
    "net:netif_receive_skb", "net:napi_gro_receive_entry", "net:napi_gro_frags_entry",
    "net:netif_receive_skb_entry", "net:netif_receive_skb_list_entry", "net:netif_rx_entry",
    "skb:kfree_skb", "skb:consume_skb", "skb:skb_copy_datagram_iovec", "tcp:tcp_send_reset",
    "qdisc:qdisc_dequeue",
)

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


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _is_cpu_raw(name: str) -> bool:
    """``cpuN.raw``: one CPU's pages in a capture directory."""
    return name.startswith("cpu") and name.endswith(".raw") and name[3:-4].isdigit()


class _Settings:
    """The settings half of :class:`~ftracekit.recording.recorder.Recorder` (see there for the
    parameters)."""

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

    # -- packets / events-only recording (issue 11) ------------------------------------------
    def _choose_mode(self, tracers: list[str]) -> None:
        """function_graph, or the events alone (tracer nop): without functions, or with
        ``packets`` on a kernel that has no function_graph."""
        if self.functions and "function_graph" in tracers:
            return
        if not self.functions:
            self.events_only = True
            self.note = "no functions given: recording the events alone (tracer nop)"
            return
        if self.packets:
            self.events_only = True
            self.note = ("this kernel has no function_graph tracer: recording the skb events "
                         "alone (tracer nop), without call trees")
            return
        raise TracerUnavailableError(
            f"this kernel has no function_graph tracer (available tracers: "
            f"{' '.join(tracers) or 'none'}); it needs CONFIG_FUNCTION_GRAPH_TRACER — run "
            "`ftracekit doctor` for details (events alone: give no FUNC, or --packets)")

    def _packet_event_files(self, d: TraceFS) -> list[str]:
        return [f"events/{spec.replace(':', '/')}/enable" for spec in PACKET_EVENTS
                if d.exists(f"events/{spec.replace(':', '/')}/enable")]

    @staticmethod
    def _drop_reasons(d: TraceFS) -> dict[str, str]:
        """Drop reason numbers → names from ``kfree_skb``'s print fmt (``__print_symbolic``);
        the enum changes between kernels, so it is stored with each recording."""
        import re

        name = "events/skb/kfree_skb/format"
        if not d.exists(name):
            return {}
        try:
            fmt = d.read(name)
        except TracefsError:
            return {}
        return {n: s for n, s in re.findall(r'\{\s*(\d+),\s*"(\w+)"\s*\}', fmt)}
    # ------------------------------------------------------------------------------------------

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
            "packets": self.packets,
            "netlink": getattr(self, "netlink", False),
        }

    def _resolve_options(self, d: TraceFS) -> dict[str, bool]:
        """Option file names → on/off: the defaults the kernel has, then the user's."""
        present = set(d.options())
        wanted = {k: v for k, v in DEFAULT_OPTIONS.items() if k in present
                  and not (self.events_only and k.startswith("funcgraph-"))}
        if self.packets:
            if "hash-ptr" in present:
                wanted["hash-ptr"] = False       # skbaddr= raw, joinable with skb= args
            if "funcgraph-args" in present and not self.events_only:
                wanted["funcgraph-args"] = True
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
        graph = not self.events_only
        required = {"set_graph_function": self.functions, "set_graph_notrace": self.notrace,
                    "set_ftrace_filter": self.filter, "max_graph_depth": self.max_depth,
                    "tracing_thresh": self.thresh_us}
        defaults = {"set_graph_function": (), "set_graph_notrace": (), "set_ftrace_filter": (),
                    "set_ftrace_notrace": (), "set_ftrace_notrace_pid": (),
                    "max_graph_depth": 0, "tracing_thresh": 0}
        for name, default in (defaults if graph else {}).items():
            value = required.get(name, default)
            target = where(name)
            if not target.exists(name):
                if value not in ((), 0):
                    raise TracerUnavailableError(
                        f"this kernel has no {name} (needed for the requested setting)")
                continue
            plan.append((target, name, list(value) if isinstance(value, tuple) else value))
        if not graph:
            pass
        elif d.exists("set_ftrace_pid"):
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
        event_files = [f for spec in self.events for f in d.event_files(spec)]
        if self.packets:
            event_files += self._packet_event_files(d)
            if not event_files:
                raise TracerUnavailableError("this kernel has none of the skb trace events "
                                             "(net:net_dev_queue, skb:kfree_skb, …)")
        for f in dict.fromkeys(event_files):
            plan.append((d, f, "1"))
        if event_files and d.exists("set_event_pid"):
            plan.append((d, "set_event_pid", [str(p) for p in self.pids]))
        plan.append((d, "current_tracer", "function_graph" if graph else "nop"))
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
        if self.events_only or "function_graph" in inst.available_tracers():
            return inst
        top.remove_instance(name)
        self._instance_name = None
        if self.want_instance:
            raise TracerUnavailableError(
                "this kernel cannot run function_graph in a tracing instance (needs Linux 6.11+)")
        return top

    def _check_busy(self, top: TraceFS, d: TraceFS) -> None:
        if self.force or (self.events_only and d is not top):
            return       # (events in a private instance touch nothing global)
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
            "events_only": self.events_only,
            **({"skb_drop_reasons": self._drop_reasons(d)} if self.packets else {}),
        }
