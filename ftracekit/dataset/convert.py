"""Traces → a Parquet dataset (:func:`convert`), streaming, in bounded memory.

Each input is linked a window at a time (:mod:`ftracekit.dataset.stream`) and each window's
rows are appended to the input's current Parquet file (a new file every ``rows_per_file``
calls); the folder layout and the manifest are described in :mod:`ftracekit.dataset.layout`.
Needs ``pyarrow`` (``pip install 'ftracekit[scale]'``).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..read import Progress, is_capture
from .layout import (
    CALL_SCHEMA, EVENT_SCHEMA, check_tags, need, new_manifest, read_manifest,
    write_manifest,
)
from .stream import StreamStats, stream_tables

__all__ = ["convert", "parse_tags"]

_ROWS_PER_FILE = 4_000_000


def _arrow_table(df: pd.DataFrame, schema: list[tuple[str, str]], tags: dict[str, str],
                 index: str | None) -> Any:
    """One window's rows as an Arrow table with ``schema`` plus the tag columns."""
    pa = need("pyarrow")
    arrays, names = [], []
    for name, typ in schema:
        col = df.index.to_numpy() if name == index else df[name]
        if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
            arr = pa.array(col.astype(object).to_numpy(), type=pa.string(), from_pandas=True)
        else:
            arr = pa.array(col, type=getattr(pa, typ)(), from_pandas=True)
        arrays.append(arr)
        names.append(name)
    for key, value in tags.items():
        arrays.append(pa.DictionaryArray.from_arrays(np.zeros(len(df), dtype=np.int32),
                                                     pa.array([value])).cast(pa.string()))
        names.append(key)
    return pa.Table.from_arrays(arrays, names=names)


class _Files:
    """The Parquet files of one table of one input: rotated every ``rows_per_file`` rows;
    records each file's rows and ``start_s``/``ts_s`` range for the manifest."""

    def __init__(self, root: str, table: str, folder: str, token: str, rows_per_file: int,
                 time_col: str) -> None:
        self.root, self.table, self.folder, self.token = root, table, folder, token
        self.rows_per_file = rows_per_file
        self.time_col = time_col
        self.done: list[dict[str, Any]] = []
        self.writer: Any = None
        self.current: dict[str, Any] = {}

    def write(self, tab: Any) -> None:
        pq = need("pyarrow.parquet")
        pc = need("pyarrow.compute")
        if self.writer is None:
            rel = os.path.join(self.table, self.folder,
                               f"part-{self.token}-{len(self.done):05d}.parquet")
            os.makedirs(os.path.join(self.root, os.path.dirname(rel)), exist_ok=True)
            self.writer = pq.ParquetWriter(os.path.join(self.root, rel), tab.schema,
                                           compression="zstd")
            self.current = {"path": rel, "rows": 0, "t_min": None, "t_max": None}
        self.writer.write_table(tab, row_group_size=1 << 20)
        cur = self.current
        cur["rows"] += tab.num_rows
        mm = pc.min_max(tab[self.time_col])
        for k, pick in (("t_min", min), ("t_max", max)):
            v = mm["min" if k == "t_min" else "max"].as_py()
            if v is not None:
                cur[k] = v if cur[k] is None else pick(cur[k], v)
        if cur["rows"] >= self.rows_per_file:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.done.append(self.current)
            self.writer = None


def _trace_name(path: str, taken: set[str]) -> str:
    """The ``trace`` tag of an input: its file name (``-2``, ``-3``… when taken)."""
    base = os.path.basename(os.path.normpath(os.fspath(path))) or "trace"
    base = base.replace("=", "_")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def _drop_reasons(src: str, meta: dict[str, Any]) -> dict[str, str] | None:
    """The recording's drop-reason names (``skb_drop_reasons``: number → name, read by
    :meth:`Dataset.packets`), from a raw capture's or a text capture's recorder sidecar."""
    rec = meta.get("recording")
    if rec is None and os.path.isfile(src):
        from ..recording.sidecar import find_sidecar
        rec, _note = find_sidecar(src)
    return (rec or {}).get("skb_drop_reasons") or None


def _convert_one(src: str, root: str, tags: dict[str, str], token: str, progress: bool | None,
                 window_lines: int | None, max_window_lines: int | None, rows_per_file: int
                 ) -> dict[str, Any]:
    folder = os.path.join(*[f"{k}={v}" for k, v in tags.items()])
    calls_out = _Files(root, "calls", folder, token, rows_per_file, "start_s")
    events_out = _Files(root, "events", folder, token, rows_per_file, "ts_s")
    st = StreamStats()
    size = os.path.getsize(src) if os.path.isfile(src) else \
        sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src)
            if f.startswith("cpu") and f.endswith(".raw"))
    bar = Progress(os.path.basename(src), size, progress, verb="converting")
    t0 = time.monotonic()
    try:
        for calls, events in stream_tables(src, window_lines=window_lines, stats=st,
                                           max_window_lines=max_window_lines,
                                           on_progress=lambda b, t, n: bar.update(
                                               b * size // t if t and size else b, n),
                                           scratch=root):
            if len(calls):
                calls_out.write(_arrow_table(calls, CALL_SCHEMA, tags, "call"))
            if len(events):
                events_out.write(_arrow_table(events, EVENT_SCHEMA, tags, None))
            del calls, events
    finally:
        calls_out.close()
        events_out.close()
        bar.finish()
    meta = {k: v for k, v in st.meta.items()
            if k in ("layout", "tracer", "options", "kernel_hints", "header", "format",
                     "lost_events", "late_events")}
    reasons = _drop_reasons(src, st.meta)
    if reasons:
        meta["recording"] = {"skb_drop_reasons": reasons}
    return {"source": os.path.abspath(src), "tags": tags, "lines": st.lines, "bytes": st.bytes,
            "calls": st.calls, "events": st.events, "windows": st.windows,
            "forced_cuts": st.forced_cuts, "max_window_lines": st.max_window_lines,
            "seconds": round(time.monotonic() - t0, 3), "meta": meta,
            "files": {"calls": calls_out.done, "events": events_out.done}}


def convert(traces: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
            dataset: str | os.PathLike[str], *, tags: dict[str, str] | None = None,
            append: bool = False, progress: bool | None = None,
            window_lines: int | None = None, max_window_lines: int | None = None,
            rows_per_file: int = _ROWS_PER_FILE) -> dict[str, Any]:
    """Convert function_graph captures into the Parquet dataset ``dataset`` (a folder).

    ``traces``: text captures (plain, ``.gz``, ``.xz``), trace-cmd ``trace.dat`` files (plain
    or compressed; a compressed one is unpacked into a temporary file inside the dataset
    while it is read) and ``record --raw`` capture directories; binary ones are decoded a
    block of pages per CPU at a time and merged into time order
    (:mod:`ftracekit.dataset.pagemerge`), their "lines" being events.

    Every input gets ``tags`` (``{"host": "a", "run": "3"}``; the same tag names for every
    input of a dataset) plus ``trace`` = its file name. The dataset holds exactly the calls
    and events :func:`ftracekit.load` gives for each input (see :mod:`.stream` for the one
    exception, a forced cut, counted as ``forced_cuts``). Memory stays near that of linking
    ``window_lines`` lines (default 10^6 lines of text, 5×10^5 events of a binary capture:
    under 1 GB peak on the 10^7-line benchmark captures, see the README), whatever the input
    size;
    ``max_window_lines`` (default 8 × ``window_lines``): see :func:`.stream.stream_tables`.
    ``progress``: a progress line on stderr (default: on a terminal, for big inputs).

    An existing ``dataset`` is refused unless ``append``; then the new inputs are added (their
    tags must differ from those already there). Returns the manifest entries of the inputs
    written. Raises :class:`~ftracekit.errors.InputError` for bad paths, tags or input.
    """
    need("pyarrow.parquet")
    srcs = [os.fspath(traces)] if isinstance(traces, (str, os.PathLike)) else \
        [os.fspath(t) for t in traces]
    if not srcs:
        raise InputError("convert: no trace given")
    for s in srcs:
        if os.path.isdir(s) and not is_capture(s):
            raise InputError(f"{s}: a directory but not a raw capture (record --raw writes "
                             "one); convert takes text, trace.dat or raw captures")
        if not os.path.exists(s):
            raise InputError(f"{s}: no such trace (convert takes text captures, plain, .gz or "
                             ".xz, trace-cmd trace.dat files and record --raw directories)")
    tags = check_tags(dict(tags or {}))
    root = os.fspath(dataset)
    exists = os.path.exists(root)
    if exists and not append:
        raise InputError(f"{root}: already exists; add to it with --append (append=True) "
                         "or choose a new folder")
    if exists:
        man = read_manifest(root)
        keys = [k for k in man["tag_keys"] if k != "trace"]
        if keys != sorted(tags):
            raise InputError(f"{root}: its inputs are tagged {', '.join(keys) or '(no tags)'}"
                             f"; give the same tags (got {', '.join(tags) or 'none'})")
        work = root
    else:
        man = new_manifest(sorted(tags) + ["trace"])
        work = f"{root.rstrip(os.sep)}.partial-{os.getpid()}"
        if os.path.exists(work):
            shutil.rmtree(work)
        os.makedirs(work)
    tags = {k: tags[k] for k in man["tag_keys"] if k != "trace"}
    seen = {tuple(sorted(i["tags"].items())) for i in man["inputs"]}
    taken = {i["tags"]["trace"] for i in man["inputs"]
             if all(i["tags"].get(k) == v for k, v in tags.items())}
    token = uuid.uuid4().hex[:8]
    written = []
    try:
        for s in srcs:
            t = dict(tags, trace=_trace_name(s, taken))
            taken.add(t["trace"])
            if tuple(sorted(t.items())) in seen:       # (cannot happen: names are made unique)
                raise InputError(f"{s}: the dataset already has an input tagged {t}")
            written.append(_convert_one(s, work, t, token, progress, window_lines,
                                        max_window_lines, rows_per_file))
    except BaseException:
        if not exists:
            shutil.rmtree(work, ignore_errors=True)
        raise
    man["inputs"].extend(written)
    write_manifest(work, man)
    if not exists:
        os.rename(work, root)
    return {"dataset": os.path.abspath(root), "inputs": written}


def parse_tags(items: Iterable[str]) -> dict[str, str]:
    """``["host=a", "run=3"]`` → ``{"host": "a", "run": "3"}`` (CLI ``--tag``)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--tag {item!r}: give key=value")
        out[key.strip()] = value.strip()
    return check_tags(out)

