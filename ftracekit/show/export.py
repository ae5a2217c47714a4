"""Exports of a :class:`~ftracekit.Trace` for other tools.

* :func:`to_folded` — folded stacks (``a;b;c 123``) for FlameGraph's ``flamegraph.pl``,
  speedscope, inferno, …; the weight of a stack is the summed self time of its calls.
* :func:`to_chrome` — Chrome trace-event JSON for the Perfetto UI (ui.perfetto.dev) and
  ``chrome://tracing``: one track per task, nested ``X`` slices, events as instant markers.
* :func:`to_parquet` / :func:`to_csv` — the calls and events tables (``-o DIR/`` →
  ``DIR/calls.EXT`` + ``DIR/events.EXT``; ``calls.csv`` → exactly that file, plus
  ``events=`` for the events); :func:`read_parquet` reads a Parquet export back into a Trace.

Everything here is vectorised over the calls table (loops run over tree levels or unique
stacks, never over calls), so exports of multi-million-call traces take seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd

from ..analysis import frame_names, task_ids, task_names
from ._layout import _levels, _parent_pos, layout
from ..errors import FtracekitError
from .format import round_us

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["to_folded", "to_chrome", "to_parquet", "to_csv", "read_parquet", "table_paths",
           "chrome_events", "layout"]

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------------------------
# Folded stacks

def _stack_ids(calls: pd.DataFrame, names: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Intern every call's stack: returns a stack id per call and the stack strings."""
    n = len(calls)
    ppos = _parent_pos(calls)
    sid = np.full(n, -1, dtype=np.int64)
    stacks: list[str] = []
    name_arr = np.asarray(names, dtype=object)
    for g, lv in enumerate(_levels(ppos)):
        parent_sid = np.full(len(lv), -1, dtype=np.int64) if g == 0 else sid[ppos[lv]]
        name_code, name_uniq = pd.factorize(name_arr[lv])
        pair = parent_sid * (len(name_uniq) + 1) + name_code
        codes, uniq = pd.factorize(pair)
        base = len(stacks)
        # one string per unique (parent stack, function) pair
        up = uniq // (len(name_uniq) + 1)
        un = uniq % (len(name_uniq) + 1)
        for ps, nc in zip(up.tolist(), un.tolist()):
            nm = name_uniq[nc]
            stacks.append(nm if ps < 0 else f"{stacks[ps]};{nm}")
        sid[lv] = base + codes
    return sid, stacks


def to_folded(trace: "Trace", path_or_file: PathLike | IO[str] | None = None, *,
              unit: str = "us", tasks: bool = False) -> str | None:
    """Folded stacks: one line ``root;child;…;func WEIGHT`` per distinct call stack.

    The weight is the summed self time of the calls with that stack, as an integer in
    ``unit`` (``"us"``, or ``"ns"`` for full precision: durations have ns resolution), because
    speedscope and most folded-stack readers accept integer weights only; stacks whose
    weight rounds to 0 are left out. Negative self times (measurement noise) and calls
    without a duration count as 0. ``tasks=True`` adds the task (``comm-pid``) as the
    outermost frame. Calls whose caller was not recorded start their own stacks.

    Writes to ``path_or_file`` when given (returns None), else returns the text.
    Open the result with ``flamegraph.pl --countname=us out.folded > out.svg`` or drop it on
    speedscope.
    """
    scale = {"us": 1.0, "ns": 1000.0}.get(unit)
    if scale is None:
        raise FtracekitError(f"unknown unit {unit!r}; use 'us' or 'ns'")
    calls = trace.calls
    names = frame_names(calls)
    if tasks and len(calls):
        tnames = task_names(calls["pid"].to_numpy(), calls["cpu"].to_numpy(), calls["comm"])
        # the task is prepended to every root's name; children inherit it through the stack
        roots = _parent_pos(calls) < 0
        names = names.copy()
        names[roots] = tnames[roots] + ";" + names[roots]
    sid, stacks = _stack_ids(calls, names)
    self_t = np.clip(calls["self_us"].to_numpy(dtype=float, na_value=np.nan), 0, None)
    w = np.bincount(sid, weights=np.nan_to_num(self_t) * scale, minlength=len(stacks)) \
        if len(calls) else np.zeros(0)
    wi = np.rint(w).astype(np.int64)
    keep = np.flatnonzero(wi > 0)
    text = "".join(f"{stacks[i]} {wi[i]}\n" for i in keep)   # one line per distinct stack
    return _write_text(text, path_or_file)


def _write_text(text: str, path_or_file: PathLike | IO[str] | None) -> str | None:
    if path_or_file is None:
        return text
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)  # type: ignore[union-attr]
        return None
    try:
        Path(path_or_file).write_text(text, encoding="utf-8")
    except OSError as err:
        raise FtracekitError(f"cannot write {os.fspath(path_or_file)}: {err.strerror or err}") from err
    return None


# ---------------------------------------------------------------------------------------------
# Chrome trace-event JSON

def _json_strings(values: Any) -> pd.Series:
    """JSON string literal of each value (missing → ``""``), encoding each distinct value once."""
    codes, uniq = pd.factorize(pd.Series(values).astype(object), use_na_sentinel=True)
    lit = np.array([json.dumps(str(u)) for u in uniq] + ['""'], dtype=object)
    return pd.Series(lit[codes])   # code −1 picks the trailing ""


def chrome_events(trace: "Trace", *, clock: str = "auto", events: bool = True
                  ) -> tuple[list[str], dict[str, Any]]:
    """The trace-event records as JSON texts (one per record) and a summary dict.

    See :func:`to_chrome`."""
    calls = trace.calls
    lay = layout(calls, clock=clock)
    out: list[str] = []
    tid = task_ids(calls["pid"].to_numpy(), calls["cpu"].to_numpy())
    ev = trace.events if events else trace.events.iloc[0:0]
    etid = task_ids(ev["pid"].to_numpy(), ev["cpu"].to_numpy())

    # Metadata: one process + thread per task, named comm-pid.
    tn = pd.DataFrame({"tid": np.concatenate([tid, etid]),
                       "name": np.concatenate([
                           task_names(calls["pid"].to_numpy(), calls["cpu"].to_numpy(), calls["comm"]),
                           task_names(ev["pid"].to_numpy(), ev["cpu"].to_numpy(), ev["comm"])])})
    tn = tn.drop_duplicates("tid")
    for t, name in tn.itertuples(index=False):   # one per task
        nm = json.dumps(str(name))
        out.append(f'{{"name":"process_name","ph":"M","pid":{t},"tid":{t},"args":{{"name":{nm}}}}}')
        out.append(f'{{"name":"thread_name","ph":"M","pid":{t},"tid":{t},"args":{{"name":{nm}}}}}')
    n_meta = len(out)

    if len(calls):
        # one f-string per slice: ~2.5 s per million calls (floats print as their shortest
        # repr, which for whole-ns values is the exact decimal)
        out.extend(
            f'{{"name":{nm},"cat":"function","ph":"X","ts":{t},"dur":{d},"pid":{p},"tid":{p},'
            f'"args":{{"call":{c},"line":{ln},"cpu":{cp},"status":{st}}}}}'
            for nm, t, d, p, c, ln, cp, st in zip(
                _json_strings(frame_names(calls)).tolist(), lay["ts_us"].tolist(),
                lay["dur_us"].tolist(), tid.tolist(), calls.index.tolist(),
                calls["line"].tolist(), calls["cpu"].tolist(),
                _json_strings(calls["status"].to_numpy()).tolist()))
    n_slices = len(calls)

    n_inst = 0
    if len(ev):
        ets = np.rint(_event_times(trace, ev, lay) * 1000) / 1000
        name = ev["event"].astype(object).fillna("comment").astype(str)
        out.extend(
            f'{{"name":{nm},"cat":"event","ph":"i","s":"t","ts":{t},"pid":{p},"tid":{p},'
            f'"args":{{"text":{tx},"line":{ln},"call":{c}}}}}'
            for nm, t, p, tx, ln, c in zip(
                _json_strings(name.to_numpy()).tolist(), ets.tolist(), etid.tolist(),
                _json_strings(ev["text"].to_numpy()).tolist(), ev["line"].tolist(),
                ev["call"].tolist()))
        n_inst = len(ev)
    summary = {"slices": n_slices, "instants": n_inst, "tasks": len(tn), "metadata": n_meta,
               "clock": lay.attrs["clock"], "t0_s": lay.attrs["t0_s"],
               "span_us": float(np.nanmax(lay["ts_us"] + lay["dur_us"])) if len(calls) else 0.0}
    return out, summary


def _event_times(trace: "Trace", ev: pd.DataFrame, lay: pd.DataFrame) -> np.ndarray:
    """Time of each event on the layout's clock.

    With timestamps: the event's own. Otherwise (synthetic clock): right after the last
    child of its enclosing call that started before the event's line (or at the call's start),
    or for events outside any call, at the end of the last root of its task before it."""
    if lay.attrs["clock"] == "abstime":
        t0 = lay.attrs["t0_s"]
        ts = (ev["ts_s"].to_numpy(dtype=float, na_value=np.nan) - t0) * 1e6
        # an event lies inside the call it happened in, even where the layout had to move
        # that call (a clock that stood still or jumped)
        call = ev["call"].to_numpy()
        inside = np.isin(call, lay.index.to_numpy()) & np.isfinite(ts)
        if inside.any():
            lo = lay["ts_us"].reindex(call[inside]).to_numpy()
            hi = lo + lay["dur_us"].reindex(call[inside]).to_numpy()
            ts[inside] = np.minimum(np.maximum(ts[inside], lo), hi)
        if not np.isnan(ts).any():
            return ts
    else:
        ts = np.full(len(ev), np.nan)
    calls = trace.calls
    ends = (lay["ts_us"] + lay["dur_us"]).to_numpy()
    lines = calls["line"].to_numpy()
    ev_call = ev["call"].to_numpy()
    ev_line = ev["line"].to_numpy()
    known = pd.Index(calls.index)
    out = ts.copy()
    need = np.isnan(out)
    # enclosing call present in the table: after its last child started before the event
    inside = need & np.isin(ev_call, known) & (ev_call >= 0)
    if inside.any():
        kids = pd.DataFrame({"parent": calls["parent"].to_numpy(), "line": lines, "end": ends})
        kids = kids[kids["parent"].isin(ev_call[inside])].sort_values("line")
        q = pd.DataFrame({"parent": ev_call[inside], "line": ev_line[inside],
                          "i": np.flatnonzero(inside)}).sort_values("line")
        m = pd.merge_asof(q, kids, on="line", by="parent", direction="backward")
        start_of = pd.Series(lay["ts_us"].to_numpy(), index=calls.index)
        m["end"] = m["end"].fillna(m["parent"].map(start_of))
        out[m["i"].to_numpy()] = m["end"].to_numpy()
    rest = np.isnan(out)
    if rest.any():
        # outside any call: the synthetic clock lays roots of all tasks end to end in line
        # order, so "after the last root that started before this line" is well defined
        roots = lay["gen"].to_numpy() == 0
        r = pd.DataFrame({"line": lines[roots], "end": ends[roots]}).sort_values("line")
        r["end"] = r["end"].cummax()
        q = pd.DataFrame({"line": ev_line[rest], "i": np.flatnonzero(rest)}).sort_values("line")
        m = pd.merge_asof(q, r, on="line", direction="backward")
        out[m["i"].to_numpy()] = m["end"].fillna(0.0).to_numpy()
    return out


def to_chrome(trace: "Trace", path: PathLike | IO[str], *, clock: str = "auto",
              events: bool = True) -> dict[str, Any]:
    """Write Chrome trace-event JSON (open it in ui.perfetto.dev or ``chrome://tracing``).

    * every call is a complete slice (``"ph": "X"``) with ``ts``/``dur`` in µs, on the track
      of its task: ``pid`` = ``tid`` = the task's pid (pid 0 and unknown tasks get one pseudo
      id per CPU, ``PSEUDO_TID_BASE + n``); ``args`` holds ``call`` (the call number in
      ``trace.calls``), ``line``, ``cpu`` and ``status``;
    * ``M`` metadata records name each process/thread ``comm-pid``;
    * events/comments (``kfree_skb``, trace_marker text …) are thread-scoped instant events
      (``"ph": "i"``) with the text in ``args``.

    Times come from :func:`layout`: the trace's timestamps (µs since its first call) when it has
    them, else a synthetic clock that lays root calls end to end and packs children from their
    parent's start — durations are exact, positions between calls are not. Calls without an
    exit end with their task's last recorded activity. Slices always nest strictly.

    Returns a summary: ``slices``, ``instants``, ``tasks``, ``metadata``, ``clock``, ``t0_s``,
    ``span_us``, ``path``.
    """
    recs, summary = chrome_events(trace, clock=clock, events=events)
    other = json.dumps({"source": str(trace.meta.get("source")), "clock": summary["clock"],
                        "t0_s": None if summary["t0_s"] != summary["t0_s"] else summary["t0_s"],
                        "generator": "ftracekit"})
    head = '{"displayTimeUnit":"ns","otherData":' + other + ',"traceEvents":[\n'
    body = ",\n".join(recs)
    text = head + body + "\n]}\n"
    _write_text(text, path)
    summary["path"] = (os.fspath(path) if isinstance(path, (str, os.PathLike))
                       else getattr(path, "name", None))
    return summary


# ---------------------------------------------------------------------------------------------
# Tables

#: File name endings that name a table or text file: a path ending in one of them that is
#: not the format's own is a mistake (``-o calls.parquet`` with CSV), not a prefix.
_FILE_EXTS = (".csv", ".parquet", ".pq", ".tsv", ".txt", ".json")


def table_paths(path: PathLike, ext: str, events: PathLike | None = None
                ) -> tuple[Path, Path | None]:
    """Where the calls and events tables go, named the way they were asked for:

    * ``DIR/`` (an existing directory, or a trailing slash: created) → ``DIR/calls.EXT`` and
      ``DIR/events.EXT``;
    * ``NAME.EXT`` → exactly that file for the calls; the events table only when ``events``
      names its file;
    * a name without an extension is a prefix: ``out/run1`` → ``out/run1.calls.EXT`` and
      ``out/run1.events.EXT``.

    ``events`` (a file) replaces the events path in every case. Raises
    :class:`~ftracekit.errors.FtracekitError` for a missing parent directory, a file name with
    another format's extension, or the same file for both tables."""
    s = os.fspath(path)
    p = Path(s)
    ev = Path(os.fspath(events)) if events is not None else None
    if p.is_dir() or s.endswith(os.sep) or s.endswith("/"):
        if p.exists() and not p.is_dir():
            raise FtracekitError(f"cannot write into {s}: it is a file, not a directory")
        p.mkdir(parents=True, exist_ok=True)
        calls, ev = p / f"calls.{ext}", ev or p / f"events.{ext}"
    else:
        suffix = p.suffix.lower()
        if suffix == f".{ext}":
            calls = p
        elif suffix in _FILE_EXTS:
            raise FtracekitError(f"{s}: a {ext} export is written to a .{ext} file (or to a "
                                 f"directory: {p.parent / p.stem}/)")
        else:
            calls, ev = Path(f"{s}.calls.{ext}"), ev or Path(f"{s}.events.{ext}")
    for f in (calls, ev):
        if f is None:
            continue
        if f.suffix.lower() != f".{ext}" and f.suffix.lower() in _FILE_EXTS:
            raise FtracekitError(f"{f}: a {ext} export is written to a .{ext} file")
        if not f.parent.is_dir():
            raise FtracekitError(f"cannot write {f}: directory {f.parent} does not exist")
    if ev is not None and ev.resolve() == calls.resolve():
        raise FtracekitError(f"the calls and events tables cannot both go to {calls}")
    return calls, ev


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise FtracekitError("Parquet export needs pyarrow: pip install pyarrow") from err


def _meta_json(trace: "Trace") -> str:
    return json.dumps(trace.meta, default=str)


def _written(calls: Path, events: Path | None, trace: "Trace") -> dict[str, Any]:
    out: dict[str, Any] = {"calls": str(calls), "calls_rows": len(trace.calls)}
    if events is not None:
        out["events"] = str(events)
        out["events_rows"] = len(trace.events)
    return out


def to_parquet(trace: "Trace", path: PathLike, *, events: PathLike | None = None
               ) -> dict[str, Any]:
    """Write the calls table (and the events table) as Parquet (needs pyarrow).

    ``path``: ``DIR/``, ``calls.parquet`` or a prefix, named as in :func:`table_paths`;
    ``events``: the events file (needed with a ``.parquet`` name to write the events too).
    Column types are kept (categoricals, nullable ``retval``); ``trace.meta`` and the events
    columns are stored in the file metadata so :func:`read_parquet` gives the same Trace back.
    Returns what was written: ``calls`` (path), ``calls_rows`` and, when written, ``events``,
    ``events_rows``.
    """
    _require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    cpath, epath = table_paths(path, "parquet", events)
    ev_dtypes = json.dumps({c: str(t) for c, t in trace.events.dtypes.items()}).encode()
    jobs = [(trace.calls, cpath)] + ([(trace.events, epath)] if epath is not None else [])
    for df, out in jobs:
        try:
            table = pa.Table.from_pandas(df, preserve_index=True)
            md = dict(table.schema.metadata or {})
            md[b"ftracekit.meta"] = _meta_json(trace).encode()
            md[b"ftracekit.event_dtypes"] = ev_dtypes
            # pyarrow gives categories back as str; remember the ones that were object
            cats = {c: str(df[c].cat.categories.dtype) for c in df.columns
                    if isinstance(df[c].dtype, pd.CategoricalDtype)}
            md[b"ftracekit.categories"] = json.dumps(cats).encode()
            pq.write_table(table.replace_schema_metadata(md), out)
        except OSError as err:
            raise FtracekitError(f"cannot write {out}: {err.strerror or err}") from err
    return _written(cpath, epath, trace)


def read_parquet(path: PathLike, *, events: PathLike | None = None) -> "Trace":
    """Read a :func:`to_parquet` export back into a :class:`~ftracekit.Trace`: ``DIR``,
    ``calls.parquet`` (the events from ``events`` when given, else an empty events table) or
    the prefix given to :func:`to_parquet`."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    from ..trace import Trace

    s = os.fspath(path)
    p = Path(s)
    epath: Path | None
    if p.is_dir():
        cpath, epath = p / "calls.parquet", p / "events.parquet"
    elif p.suffix.lower() == ".parquet":
        cpath, epath = p, None
    else:
        cpath, epath = Path(f"{s}.calls.parquet"), Path(f"{s}.events.parquet")
    if events is not None:
        epath = Path(os.fspath(events))
    for f in (cpath, epath):
        if f is not None and not f.exists():
            raise FtracekitError(f"no {f} (write it with ftracekit.export.to_parquet)")

    def read(path: Path) -> tuple[pd.DataFrame, dict]:
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as err:
            raise FtracekitError(f"cannot read {path} as Parquet: {err}") from err
        md = table.schema.metadata or {}
        df = table.to_pandas()
        for col, dt in json.loads(md.get(b"ftracekit.categories", b"{}")).items():
            if col not in df:
                continue
            if not isinstance(df[col].dtype, pd.CategoricalDtype):   # all-null column
                df[col] = pd.Categorical(df[col].astype(object).where(df[col].notna(), None))
            if dt == "object":
                cats = pd.Index(list(df[col].cat.categories), dtype=object)
                df[col] = pd.Categorical.from_codes(df[col].cat.codes, categories=cats)
        return df, md

    calls, md = read(cpath)
    meta = json.loads(md.get(b"ftracekit.meta", b"{}"))
    if epath is not None:
        ev, _ = read(epath)
    else:
        dtypes = json.loads(md.get(b"ftracekit.event_dtypes", b"{}"))
        ev = pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    return Trace(calls, ev, meta)


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    """Durations to the ns the kernel measured (``round_us``), times to the ns: no float
    noise such as ``813.0419999999999`` in text exports."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind != "f":
            continue
        if c.endswith("_us"):
            out[c] = round_us(out[c])
        elif c.endswith("_s"):
            out[c] = np.round(out[c], 9)
    return out


def to_csv(trace: "Trace", path: PathLike, *, events: PathLike | None = None
           ) -> dict[str, Any]:
    """Write the calls table (``call`` is its first column) and the events table as CSV.

    Paths as in :func:`to_parquet` (``calls.csv`` writes exactly that file; ``events`` names
    the events file). Durations (``*_us``) hold 3 decimals (ns) and times (``*_s``) 9, so the
    numbers read as the kernel printed them. Returns what was written (see
    :func:`to_parquet`)."""
    cpath, epath = table_paths(path, "csv", events)
    jobs = [(cpath, True, trace.calls)] + ([(epath, False, trace.events)] if epath else [])
    for out, index, df in jobs:
        try:
            _rounded(df).to_csv(out, index=index)
        except OSError as err:
            raise FtracekitError(f"cannot write {out}: {err.strerror or err}") from err
    return _written(cpath, epath, trace)
