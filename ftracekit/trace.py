"""The user-facing :class:`Trace`: the calls and events tables plus the analyses on them.

The analyses themselves are pure functions in :mod:`ftracekit.analysis`; the methods here
validate arguments and delegate. Text/HTML trees and plots live in :mod:`ftracekit.show`,
reached through ``Trace.tree`` and the ``Trace.plot`` accessor (imported on first use).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from . import analysis as A
from .analysis import TOP_COLUMNS, base_name
from .errors import FtracekitError

if TYPE_CHECKING:  # pragma: no cover
    from .show.render import CallTree

__all__ = ["Trace", "TOP_COLUMNS", "base_name"]

def _count_arg(name: str, n: Any, allow_none: bool = False) -> Any:
    """A row count argument: an int ≥ 0 (or None where ``allow_none``)."""
    if n is None and allow_none:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        want = "an integer ≥ 0" + (" or None" if allow_none else "")
        raise FtracekitError(f"{name} must be {want}, not {n!r}")
    return int(n)


class Trace:
    """A parsed function_graph trace.

    Attributes
    ----------
    calls : pandas.DataFrame
        One row per call, index ``call`` (int, order of appearance). An entry or leaf line
        starts a call; an exit line with no open entry is a call of its own. Columns:

        ========== ================================================================================
        func       function name (categorical), without ``()`` and without the module suffix
        module     module from ``name [module]`` (categorical), NaN for built-in code
        pid, comm  task (pid −1 / comm NaN when the trace does not say); comm as printed (≤ 7
                   characters in kernel text, 16 in trace-cmd text)
        cpu        CPU of the line that started the call (−1 when not printed)
        exit_cpu   CPU of the exit line (−1 when there is none); differs from ``cpu`` after a
                   migration
        depth      depth as printed (0 = a ``set_graph_function`` root)
        parent     ``call`` of the caller, −1 for none (always exactly one level up)
        root       ``call`` of the outermost known ancestor (the depth-0 call normally; the call
                   itself when it has no parent)
        start_s    absolute time of the call's entry in seconds (funcgraph-abstime, trace-cmd;
                   funcgraph-rel-time gives seconds since the buffer started), else NaN
        end_s      absolute time of the exit in seconds, else NaN
        duration_us duration in microseconds as printed by the kernel; NaN when the exit is missing
        self_us    duration minus the durations of the direct children (µs)
        n_children number of direct children
        status     ``complete``, ``no-exit`` (entry seen, exit not), ``no-entry`` (exit seen,
                   entry not)
        in_irq     the call started inside an irq block (``==========>`` … ``<==========``)
        retval     return value (funcgraph-retval), nullable Int64 holding the 64-bit value as
                   signed (errors are negative); NA when not printed
        line       1-based line number of the line that started the call
        args       funcgraph-args text as printed (``skb=0xff…, len=42``; categorical), NaN where
                   the line printed none; typed values: :meth:`arg`
        ========== ================================================================================

    events : pandas.DataFrame
        One row per comment/event line: ``line``, ``cpu``, ``pid``, ``comm``, ``ts_s``
        (seconds or NaN), ``event`` (e.g. ``kfree_skb``; ``marker`` for trace_marker /
        trace_printk text), ``text`` (the comment without ``/* */``), ``call`` (innermost call
        open in that task at that point, −1 if none), ``lat_flags`` (latency flags of an
        event line in trace-event text, e.g. ``..s1.``; NaN where not printed). Typed fields:
        :meth:`event_fields`.
    meta : dict
        What was detected: ``source``, ``lines``, ``bytes``, ``layout`` (columns present),
        ``tracer``, ``line_kinds`` (count per kind), ``lost_events`` (``per_cpu``, ``total``),
        ``skipped`` (``count`` + first ``examples`` as ``(line, text)``), ``kernel_hints``,
        ``tasks``, ``recording`` (the sidecar written by the recorder, when present), …
    """

    def __init__(self, calls: pd.DataFrame, events: pd.DataFrame, meta: dict[str, Any] | None = None):
        self.calls = calls
        self.events = events
        self.meta: dict[str, Any] = dict(meta or {})
        self._children_index: A.ChildIndex | None = None

    # -- basics --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        src = self.meta.get("source", "?")
        return (f"<Trace {src}: {len(self.calls):,} calls, {len(self.events):,} events, "
                f"{self.n_tasks} tasks, {self.n_cpus} CPUs>")

    @property
    def n_tasks(self) -> int:
        """Number of distinct tasks (pid, or per-CPU when the pid is unknown) with calls."""
        c = self.calls
        if not len(c):
            return 0
        return int(len(c[["pid", "cpu"]].assign(cpu=np.where(c["pid"] > 0, -2, c["cpu"]))
                       .drop_duplicates()))

    @property
    def n_cpus(self) -> int:
        """Number of distinct CPUs seen on call lines (0 when the trace has no CPU column)."""
        cpus = self.calls["cpu"]
        return int(cpus[cpus >= 0].nunique())

    @property
    def functions(self) -> list[str]:
        """Names of the functions that have at least one call, sorted."""
        return A.functions(self.calls)

    @property
    def has_times(self) -> bool:
        """Whether calls carry timestamps (``start_s``/``end_s``)."""
        return bool(self.calls["start_s"].notna().any())

    # -- selecting -----------------------------------------------------------------------------
    def _match_funcs(self, func: str) -> list[str]:
        return A.match_funcs(self.calls, func)

    def calls_of(self, func: str) -> pd.DataFrame:
        """All calls of ``func`` (exact name, a glob such as ``tcp_*``, or a name without its
        GCC suffix such as ``finish_task_switch`` for ``finish_task_switch.isra.0``).

        Raises :class:`~ftracekit.errors.UnknownFunctionError` (with close matches) if none.
        """
        return A.calls_of(self.calls, func)

    def roots(self, func: str | None = None) -> pd.DataFrame:
        """Calls without a parent (graph roots, and calls whose callers were not recorded),
        optionally only those of ``func``."""
        return A.roots(self.calls if func is None else self.calls_of(func))

    def slowest(self, func: str | None = None, n: int = 10) -> pd.DataFrame:
        """The ``n`` longest calls of ``func`` (default: of the roots), longest first."""
        n = _count_arg("n", n)
        c = self.roots() if func is None else self.calls_of(func)
        return c.sort_values("duration_us", ascending=False, na_position="last", kind="stable").head(n)

    def children(self, call: int) -> pd.DataFrame:
        """Direct children of ``call``, in order of appearance."""
        call = self._check_call(call)
        ids = self._child_idx().children(call)
        return self.calls.loc[ids] if len(ids) else self.calls.iloc[0:0]

    def subtree(self, call: int) -> pd.DataFrame:
        """``call`` and all its descendants, in order of appearance."""
        call = self._check_call(call)
        ids = self._subtree_ids(call)
        return self.calls.loc[np.sort(ids)]

    def _check_call(self, call: Any) -> int:
        """``call`` as an int id of a call in this trace, else a library error saying which
        ids there are (a filtered trace keeps the numbers of the full one)."""
        if isinstance(call, (float, np.floating)) and float(call).is_integer():
            call = int(call)
        if isinstance(call, bool) or not isinstance(call, (int, np.integer)):
            raise FtracekitError(f"a call is given by its integer id (the index of "
                                 f"Trace.calls), not {call!r}")
        idx = self.calls.index
        if call not in idx:
            if not len(idx):
                raise FtracekitError(f"no call {call} in this trace: it holds no calls")
            span = (f"{len(idx):,} calls numbered {int(idx.min())}..{int(idx.max())}"
                    + ("" if len(idx) == int(idx.max()) - int(idx.min()) + 1 else ", with gaps"))
            raise FtracekitError(f"no call {call} in this trace (it holds {span})")
        return int(call)

    def _child_idx(self) -> A.ChildIndex:
        if self._children_index is None:
            self._children_index = A.ChildIndex(self.calls)
        return self._children_index

    def _subtree_ids(self, call: int) -> np.ndarray:
        return self._child_idx().subtree(call)

    def errors(self, func: str | None = None) -> pd.DataFrame:
        """Calls that returned an error (needs funcgraph-retval): ``retval`` in the kernel's
        error range -4095..-1 — not every negative value, since kernel pointers and the
        leftovers of void functions read as negative too — with an ``errno`` column
        (``-ENOBUFS`` …), optionally only those of ``func``."""
        c = A.errors(self.calls if func is None else self.calls_of(func)).copy()
        c["errno"] = [A.errno_name(v) for v in c["retval"]]
        return c

    # -- aggregating ---------------------------------------------------------------------------
    def top(self, n: int | None = 20, by: str = "self") -> pd.DataFrame:
        """Per-function statistics, largest first.

        ``by``: ``"self"`` (sum of self time), ``"total"`` (sum of durations; recursive
        functions count nested time more than once), ``"count"`` or ``"max"``.
        Columns: ``count`` (calls), ``total_us``, ``self_us`` (sums), ``mean_us``, ``p50_us``,
        ``p90_us``, ``p99_us``, ``max_us`` (of durations; calls without a duration are
        counted but not in the duration statistics). Index: ``func``.
        """
        return A.top(self.calls, _count_arg("n", n, allow_none=True), by)

    def stats(self, func: str) -> pd.Series:
        """Statistics of one function: counts by status, ``total_us``, ``self_us``, ``mean_us``,
        ``std_us``, ``min_us``, ``p50_us``, ``p90_us``, ``p99_us``, ``max_us``, ``tasks``, ``cpus``,
        ``roots`` (calls without a parent)."""
        return A.stats(self.calls_of(func), func)

    def compare(self, other: "Trace", n: int | None = None, by: str = "total") -> pd.DataFrame:
        """Per-function change from this trace (``a``) to ``other`` (``b``).

        Functions are matched by name without GCC clone suffixes (:func:`base_name`, as
        :meth:`calls_of` does): ``rtnl_fill_ifinfo`` on one kernel and
        ``rtnl_fill_ifinfo.isra.0`` on another are one row, indexed by the base name;
        ``funcs_a``/``funcs_b`` list the names as each trace printed them (``""``: absent).

        Columns: ``count_a``, ``count_b``, ``count_change``, ``total_us_a``, ``total_us_b``,
        ``total_change_us``, ``total_change_pct``, ``self_us_a``, ``self_us_b``,
        ``self_change_us``, ``p50_us_a``, ``p50_us_b``, ``p50_change_pct``, ``p99_us_a``,
        ``p99_us_b``, ``p99_change_pct``, ``funcs_a``, ``funcs_b`` (µs to 3 decimals).
        Functions missing on one side have count 0 and times 0 there (percentiles NaN).
        Sorted by the absolute change of ``by`` (``total``, ``self``, ``count``, ``p50``,
        ``p99``), largest first — the order ``plot.compare`` draws with the same ``by``.
        """
        if not isinstance(other, Trace):
            raise FtracekitError(f"compare needs another Trace (ftracekit.load(...)), not "
                                 f"{type(other).__name__} {other!r:.40}")
        return A.compare(self.calls, other.calls, _count_arg("n", n, allow_none=True), by)

    # -- one call ------------------------------------------------------------------------------
    def critical_path(self, call: int, *, include_irq: bool = False) -> pd.DataFrame:
        """Where the time of ``call`` went: the chain down through the heaviest child, ending
        where the time is spent.

        At each call the path follows the child with the longest duration, except children
        that interrupted it (``in_irq`` while the call itself is not), whose time is reported
        in ``irq_us`` instead (``include_irq=True`` follows them too). It ends at a call whose
        own time (``self_us``) is at least as long as any child it could follow, or when there
        is none. ``attrs["end"]`` says which: ``"self time"``, ``"no children"`` or ``"only
        interrupts below"``.

        Columns: ``call``, ``func``, ``depth``, ``duration_us``, ``self_us``, ``irq_us`` (µs of
        interrupts taken directly inside this call), ``n_children``, ``pct_of_top`` (duration
        as % of ``call``'s), ``share_of_parent`` (% of the previous row's), percentages with one
        decimal.
        """
        call = self._check_call(call)
        return A.critical_path(self.calls, self._child_idx(), call, include_irq=include_irq)

    def tree(self, call: int, max_depth: int | None = None, min_us: float = 0.0, *,
             events: bool = True) -> "CallTree":
        """The call tree under ``call`` as an object that prints as indented text (duration,
        self time and interrupt time in µs, return values where the trace has them) and
        renders as collapsible HTML in Jupyter, opened along the critical path.

        ``max_depth``: levels below ``call`` to show; ``min_us``: hide children shorter than
        this. Hidden children are summarised per parent as "… N calls, X µs: below
        --min-us" (or "deeper than max_depth"), so the time they hold stays visible; calls on
        the critical path are never hidden. ``events``: show trace events (``kfree_skb`` …) at
        the place in the call where they happened.
        """
        from .show.render import CallTree

        call = self._check_call(call)
        if max_depth is not None:
            max_depth = _count_arg("max_depth", max_depth)
        if not isinstance(min_us, (int, float, np.integer, np.floating)) or min_us < 0:
            raise FtracekitError(f"min_us must be a number of µs ≥ 0, not {min_us!r}")
        return CallTree(self, call, max_depth=max_depth, min_us=float(min_us), events=events)

    # -- subsets -------------------------------------------------------------------------------
    def filter(self, pid: int | Iterable[int] | None = None, comm: str | Iterable[str] | None = None,
               cpu: int | Iterable[int] | None = None, start_s: float | None = None,
               end_s: float | None = None, func: str | None = None) -> "Trace":
        """A Trace with the calls (and events) of the given tasks / CPUs / time window.

        ``pid``/``cpu``: an int or a list of ints; ``comm``: a name or glob, or a list of them;
        ``start_s``/``end_s``: absolute seconds as the trace prints them (the ``start_s``
        column, the time axis of the plots) — calls that start in ``[start_s, end_s)`` are
        kept (needs timestamps); ``func``: whole subtrees rooted at calls of that function.

        Call numbers are kept (``Trace.calls`` of the result is a subset of this one's); calls
        whose caller was left out become roots of the result (``parent`` −1, ``root`` recomputed
        within the subset), so ``roots()`` and ``slowest()`` work on it. ``n_children`` and
        ``self_us`` still describe the whole call.
        """
        c = self.calls
        e = self.events
        mask = np.ones(len(c), dtype=bool)
        emask = np.ones(len(e), dtype=bool)

        def ints(name: str, v: Any) -> list[int]:
            vals = list(v) if isinstance(v, (list, tuple, set, np.ndarray, pd.Series)) else [v]
            bad = [x for x in vals if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
            if bad or not vals:
                raise FtracekitError(f"{name} must be an integer or a list of integers, not {v!r}")
            return [int(x) for x in vals]

        if pid is not None:
            p = ints("pid", pid)
            mask &= c["pid"].isin(p).to_numpy()
            emask &= e["pid"].isin(p).to_numpy()
        if comm is not None:
            pats = [comm] if isinstance(comm, str) else (list(comm) if isinstance(comm, (list, tuple, set)) else [comm])
            if not pats or not all(isinstance(x, str) for x in pats):
                raise FtracekitError(f"comm must be a name (globs allowed) or a list of names, "
                                     f"not {comm!r}")
            def comm_mask(series: pd.Series) -> np.ndarray:
                s = series.astype(object).fillna("")
                names = pd.unique(s)
                keep = {n for n in names if any(fnmatch.fnmatchcase(str(n), pt) for pt in pats)}
                return s.isin(keep).to_numpy()
            mask &= comm_mask(c["comm"])
            emask &= comm_mask(e["comm"])
        if cpu is not None:
            cp = ints("cpu", cpu)
            mask &= c["cpu"].isin(cp).to_numpy()
            emask &= e["cpu"].isin(cp).to_numpy()
        if start_s is not None or end_s is not None:
            for name, v in (("start_s", start_s), ("end_s", end_s)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))):
                    raise FtracekitError(f"{name} must be a time in seconds, not {v!r}")
            if not self.has_times:
                raise FtracekitError("this trace has no timestamps (record with funcgraph-abstime) "
                                     "so it cannot be cut by time")
            st = c["start_s"].to_numpy()
            ts = e["ts_s"].to_numpy()
            if start_s is not None:
                mask &= st >= start_s
                emask &= ts >= start_s
            if end_s is not None:
                mask &= st < end_s
                emask &= ts < end_s
        if func is not None:
            if not isinstance(func, str):
                raise FtracekitError(f"func must be a function name, not {func!r}")
            tops = self.calls_of(func).index.to_numpy()
            keep = np.zeros(len(c), dtype=bool)
            if len(tops):
                ids = np.concatenate([self._subtree_ids(int(t)) for t in tops])
                keep[np.isin(c.index.to_numpy(), ids)] = True
            mask &= keep
            emask &= e["call"].isin(c.index[keep]).to_numpy()
        meta = dict(self.meta)
        meta["filtered_from"] = self.meta.get("source")
        return Trace(A.reroot(c[mask]), e[emask], meta)

    # -- packets and arguments (ftracekit.net) -------------------------------------------------
    def arg(self, name: str) -> pd.Series:
        """Argument ``name`` of every call (funcgraph-args, 6.15+), index ``call``: ``UInt64``
        when any value is hex (pointers, 6.17+ unsigned ints; negative decimals then as their
        two's complement), ``Int64`` when all are decimal, text for structs; NA where the call
        has no such argument. Parsed once per distinct args text, not per call."""
        from .net.values import arg_names, arg_series

        if not self.calls["args"].notna().any():
            raise FtracekitError("this trace has no function arguments: record with "
                                 "funcgraph-args (kernel 6.15+ with BTF), e.g. `ftracekit "
                                 "record --packets FUNC`")
        out = arg_series(self.calls["args"], name)
        if not out.notna().any():
            from .errors import _suggest

            names = arg_names(self.calls["args"])
            close = _suggest(name, names)
            hint = ("did you mean " + " or ".join(map(repr, close)) + "?") if close else \
                "it has " + ", ".join(names[:12])
            raise FtracekitError(f"no argument {name!r} in this trace; {hint}")
        return out

    def event_fields(self, event: str) -> pd.DataFrame:
        """The events named ``event`` with one typed column per field of their text (see
        :func:`ftracekit.net.events.event_fields`): ``line``, ``ts_s``, ``cpu``, ``pid``,
        ``comm``, ``call``, then the fields (``Int64``, ``UInt64`` for hex and ``%p``, or text;
        ``location`` also as ``location_func``). Any event, any kernel's layout."""
        from .net.events import event_fields

        return event_fields(self.events, event)

    def packets(self, dev: str | None = None, dropped: bool | None = None,
                start_s: float | None = None, end_s: float | None = None) -> pd.DataFrame:
        """One row per skb generation seen in funcgraph-args (``skb=``) or events
        (``skbaddr=``); see :mod:`ftracekit.net.packets` for how generations are split.

        Columns: ``skb`` (as printed: ``0x…`` raw, or the 16-digit hash), ``gen`` (0, 1, … per
        address), ``first_s``/``last_s`` (s), ``span_us``, ``n_steps``, ``first``/``last``
        (step names), ``devs``, ``cpus``, ``tasks`` (``comm-pid``; each a sorted
        comma-separated list), ``dropped``, ``reason`` (drop reason name, or its number from a
        ``reason=`` argument), ``drop_location`` (event ``location``, else the caller of the
        freeing call), ``max_gap_us`` (largest time between consecutive steps), ``gap_after``/
        ``gap_before`` (the steps around it), ``clone_of`` (source skb of an ``skb_clone``).
        Filters: ``dev``, ``dropped``, ``start_s``/``end_s`` (packets overlapping the window).
        The columns of names (``first`` … ``tasks``, ``gap_after``, ``gap_before``) are
        categoricals, as ``func`` and ``comm`` of the calls table are.
        """
        from .net.packets import packets

        return packets(self, dev=dev, dropped=dropped, start_s=start_s, end_s=end_s)

    def journey(self, skb: str | int, gen: int | None = None) -> pd.DataFrame:
        """The time-ordered steps of one packet across tasks and CPUs (all generations of the
        address unless ``gen``). ``skb`` as printed: ``0xffff…``, ``ffff…`` or a hash.

        Columns: ``gen``, ``ts_s`` (s), ``cpu``, ``task`` (``comm-pid``), ``context`` (``task``,
        ``softirq``, ``irq``), ``kind`` (``call``/``event``), ``name``, ``dev``, ``call`` (−1: an
        event outside any call), ``duration_us`` (calls), ``gap_us`` (since the previous step).
        """
        from .net.packets import journey

        return journey(self, skb, gen)

    def callers(self, func: str | None = None, event: str | None = None) -> pd.DataFrame:
        """The distinct call chains (root first) that led to ``func`` or to ``event``; columns
        ``chain``, ``depth``, ``count``, ``total_us``, ``mean_us``, ``max_us``,
        ``example_call`` — see :func:`ftracekit.net.callers.callers`."""
        from .net.callers import callers

        return callers(self.calls, self.events, func=func, event=event,
                       match_funcs=self._match_funcs)

    # -- summaries -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline figures: lines, calls by status, tasks, CPUs, events, time span, lost events."""
        c = self.calls
        st = c["status"].value_counts()
        span = None
        if self.has_times:
            span = float(np.nanmax(c["end_s"].to_numpy(dtype=float, na_value=np.nan))
                         - np.nanmin(c["start_s"].to_numpy(dtype=float, na_value=np.nan)))
        lost = self.meta.get("lost_events", {})
        rec_lost = (self.meta.get("recording") or {}).get("lost_events") or {}
        return {
            "source": self.meta.get("source"),
            "lines": self.meta.get("lines"),
            "calls": len(c),
            "complete": int(st.get("complete", 0)),
            "no_exit": int(st.get("no-exit", 0)),
            "no_entry": int(st.get("no-entry", 0)),
            "tasks": self.n_tasks,
            "cpus": self.n_cpus,
            "functions": int(c["func"].nunique()),
            "events": len(self.events),
            "span_s": span,
            "lost_events": int(lost.get("total", 0) or 0),
            "lost_event_lines_without_count": int(lost.get("lines_without_count", 0) or 0),
            "recording_lost_events": rec_lost.get("total"),
            "skipped_lines": int(self.meta.get("skipped", {}).get("count", 0)),
        }

    def _repr_html_(self) -> str:
        from .show.render import trace_html

        return trace_html(self)

    @property
    def plot(self) -> Any:
        """Plots of this trace (:mod:`ftracekit.show.plot`), e.g. ``trace.plot.hist("netlink_dump")``."""
        from .show.plot import TracePlots

        return TracePlots(self)

    # -- netlink (issue 12; the views live in net/netlink.py) ----------------------------------
    @property
    def has_netlink(self) -> bool:
        """Whether a netlink capture goes with this trace (``Trace.netlink`` works)."""
        return bool(self.meta.get("netlink_pcap"))

    @property
    def netlink(self) -> pd.DataFrame:
        """The captured netlink messages (:func:`ftracekit.netlink.read_pcap`'s columns, times
        on the trace clock) plus ``call`` — the handler call of a request, the ``netlink_dump``
        round that sent a dump reply, the handler call that produced another reply — and
        ``pid`` of that call; −1 where none was traced. Loaded on first use from the capture
        recorded with ``--netlink`` (or given to ``load(..., netlink=PCAP)``)."""
        cached = getattr(self, "_netlink", None)
        if cached is None:
            from .net.netlink import load_for

            if not self.has_netlink:
                raise FtracekitError("this trace has no netlink capture: record with "
                                     "`ftracekit record --netlink`, or load(trace, netlink=PCAP)")
            cached = load_for(self, self.meta["netlink_pcap"],
                              self.meta.get("netlink_clock_offset_s"))
            self._netlink = cached
        return cached

    def dumps(self) -> pd.DataFrame:
        """One row per netlink dump request: rounds, messages, bytes, kernel time in the rounds,
        user-space time between them, the slowest round's call and a verdict (kernel-bound,
        reader-bound, balanced). Columns: :func:`ftracekit.net.netlink.dumps`."""
        from .net.netlink import dumps

        return dumps(self.netlink, self.calls)

    def dump_rounds(self, dump: int) -> pd.DataFrame:
        """The rounds of one dump — ``dump`` is its ``seq`` or, when no dump has that seq, its
        position in :meth:`dumps` — one row per reply packet (``ftracekit.net.netlink.rounds``)."""
        from .net.netlink import rounds

        return rounds(self.netlink, self.calls, self._dump_packet(dump))

    def _dump_packet(self, dump: int) -> int:
        d = self.dumps()
        hit = d.index[d["seq"] == dump]
        if len(hit):
            return int(hit[0])
        if 0 <= int(dump) < len(d):
            return int(d.index[int(dump)])
        raise FtracekitError(f"no dump with seq {dump} (and only {len(d)} dumps): seqs "
                             f"{', '.join(str(s) for s in d['seq'].head(10))}")
