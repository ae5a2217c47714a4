"""A dataset queried with DuckDB (embedded, out of core, all cores): :func:`open_dataset`.

The analyses have the names and columns of :class:`ftracekit.Trace`'s: ``top``, ``stats``,
``calls_of``, ``slowest``, ``roots``, ``compare`` (between tags); ``trace`` pulls a call's
subtree or a time window back into an in-memory :class:`~ftracekit.Trace`; ``sql`` runs any
query on the views ``calls`` and ``events`` (columns: :data:`.layout.CALL_SCHEMA` /
:data:`.layout.EVENT_SCHEMA` plus one text column per tag, ``trace`` included). Needs
``duckdb`` (``pip install 'ftracekit[scale]'``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis as A
from ..errors import FtracekitError, InputError
from ..trace import Trace
from .frames import as_calls, as_events
from .layout import CALL_SCHEMA, EVENT_SCHEMA, need, read_manifest

__all__ = ["Dataset", "open_dataset", "func_stats_sql", "BASE_NAME_SQL"]

#: SQL for :func:`ftracekit.analysis.base_name` of ``func`` (GCC clone suffixes removed).
BASE_NAME_SQL = (r"regexp_replace(func, '(\.(isra|constprop|part|cold|lto_priv|llvm)"
                 r"(\.[0-9]+)?)+$', '')")


# ``stats`` percentiles exactly as pandas' ``Series.quantile`` computes them (through numpy:
# q·100/100, linear interpolation between the order statistics around (n − 1)·q, from b
# downwards when the fraction is ≥ 0.5), from the sorted non-null values ``l`` (a DuckDB
# list), so that the figures equal the in-memory ones to the last digit. (``top`` and
# ``compare`` use DuckDB's quantile_cont, which interpolates as ``groupby().quantile`` does.)
_MACROS = """
CREATE OR REPLACE MACRO ftk_h(l, q) AS q::DOUBLE * (len(l) - 1)::DOUBLE;
CREATE OR REPLACE MACRO ftk_a(l, q) AS l[floor(ftk_h(l, q))::BIGINT + 1];
CREATE OR REPLACE MACRO ftk_b(l, q) AS l[least(floor(ftk_h(l, q))::BIGINT + 2, len(l))];
CREATE OR REPLACE MACRO ftk_f(l, q) AS ftk_h(l, q) - floor(ftk_h(l, q));
CREATE OR REPLACE MACRO ftk_series_q(l, q) AS CASE WHEN len(l) = 0 THEN NULL
    WHEN ftk_f(l, q) >= 0.5
    THEN ftk_b(l, q) - (ftk_b(l, q) - ftk_a(l, q)) * (1 - ftk_f(l, q))
    ELSE ftk_a(l, q) + (ftk_b(l, q) - ftk_a(l, q)) * ftk_f(l, q) END;
"""
_SORTED = "list_sort(list(duration_us) FILTER (WHERE duration_us IS NOT NULL))"


def _q(q: float) -> str:
    """``q`` as numpy's percentile sees it (q·100/100), as a SQL literal."""
    return repr(float(np.true_divide(q * 100, 100)))


def func_stats_sql(source: str, key: str = "func") -> str:
    """SQL giving :func:`ftracekit.analysis.func_stats` of the calls in ``source`` (a table
    or subquery), grouped by ``key``, in order of first appearance (``first``); the mean as
    ``dur_sum``/``dur_n`` (see :func:`_finish_stats`)."""
    return f"""
        SELECT {key} AS func, count(*) AS "count", fsum(duration_us) AS total_us,
               fsum(self_us) AS self_us, fsum(duration_us) AS dur_sum,
               count(duration_us) AS dur_n,
               quantile_cont(duration_us, 0.5::DOUBLE) AS p50_us,
               quantile_cont(duration_us, 0.9::DOUBLE) AS p90_us,
               quantile_cont(duration_us, 0.99::DOUBLE) AS p99_us,
               max(duration_us) AS max_us, min(call) AS first
        FROM {source} WHERE func IS NOT NULL GROUP BY {key} ORDER BY first"""


def _finish_stats(df: pd.DataFrame, durations: Any = None) -> pd.DataFrame:
    """A :func:`func_stats_sql` result as :func:`ftracekit.analysis.func_stats` shapes it.

    The mean: pandas divides a Kahan sum taken in row order; DuckDB's ``fsum`` is exactly
    rounded. They differ in the last bit at most, which matters only where the mean lies on
    a half nanosecond (common: durations have 3 decimals) and rounding to ns goes either way;
    percentiles likewise. Those few functions' figures are taken by pandas itself from their
    durations in call order (``durations(names)`` → DataFrame ``func``, ``duration_us``)."""
    if not len(df):
        return pd.DataFrame(columns=A.TOP_COLUMNS, index=pd.Index([], name="func"))
    table = df.drop(columns="first").set_index("func")
    table.index = table.index.astype(str)
    table.index.name = "func"
    n = table.pop("dur_n").astype(float)
    table["mean_us"] = table.pop("dur_sum").astype(float) / n.where(n > 0)
    # (DuckDB's quantile_cont interpolates with other float operations than pandas: the
    # same last-bit caveat as the mean, the same cure)
    exact_cols = ["mean_us", "p50_us", "p90_us", "p99_us"]
    vals = table[exact_cols].astype(float)
    half = ((np.abs((vals * 1000) % 1 - 0.5) < 1e-6) & vals.notna()).any(axis=1)
    if half.any() and durations is not None:
        rows = durations(list(table.index[half.to_numpy()]))
        g = rows.groupby("func", sort=False)["duration_us"]
        q = g.quantile([0.5, 0.9, 0.99]).unstack()
        exact = pd.DataFrame({"mean_us": g.mean(), "p50_us": q[0.5], "p90_us": q[0.9],
                              "p99_us": q[0.99]})
        table.loc[exact.index, exact_cols] = exact[exact_cols].to_numpy()
    table["count"] = table["count"].astype(np.int64)
    us = A.TOP_COLUMNS[1:]
    table[us] = table[us].astype(float).round(3)
    return table[A.TOP_COLUMNS]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Dataset:
    """A Parquet dataset written by :func:`ftracekit.convert`, or a part of it (see
    :meth:`select`). ``inputs``: one row per converted trace (tags, lines, calls …)."""

    def __init__(self, path: str | os.PathLike[str], *, _tags: dict[str, str] | None = None,
                 _window: tuple[float | None, float | None] = (None, None),
                 threads: int | None = None) -> None:
        duckdb = need("duckdb")
        self.path = os.path.abspath(os.fspath(path))
        self.manifest = read_manifest(self.path)
        self.tag_keys: list[str] = list(self.manifest["tag_keys"])
        self._tags = dict(_tags or {})
        self._window = _window
        unknown = set(self._tags) - set(self.tag_keys)
        if unknown:
            raise InputError(f"{self.path}: no tag {', '.join(sorted(unknown))} (its tags: "
                             f"{', '.join(self.tag_keys)})")
        self._inputs = [i for i in self.manifest["inputs"]
                        if all(i["tags"].get(k) == str(v) for k, v in self._tags.items())]
        self.con = duckdb.connect()
        self.con.execute(_MACROS)
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads TO {int(threads)}")
        self._make_views()

    # -- files and views ---------------------------------------------------------------------
    def files(self, table: str = "calls") -> list[str]:
        """The Parquet files of ``table`` (``calls``/``events``) this selection reads: those of
        the selected inputs whose time range meets the window."""
        t0, t1 = self._window
        out = []
        for inp in self._inputs:
            for f in inp["files"][table]:
                if (t0 is not None or t1 is not None) and f["t_min"] is None:
                    continue                   # (no times: nothing starts in any window)
                if t0 is not None and f["t_max"] < t0:
                    continue
                if t1 is not None and f["t_min"] >= t1:
                    continue
                out.append(os.path.join(self.path, f["path"]))
        return out

    def _make_views(self) -> None:
        for table, schema, tcol in (("calls", CALL_SCHEMA, "start_s"),
                                    ("events", EVENT_SCHEMA, "ts_s")):
            files = self.files(table)
            cond = [f"{_quote(k)} = {self._lit(v)}" for k, v in self._tags.items()]
            t0, t1 = self._window
            if t0 is not None:
                cond.append(f"{tcol} >= {float(t0)!r}")
            if t1 is not None:
                cond.append(f"{tcol} < {float(t1)!r}")
            where = f" WHERE {' AND '.join(cond)}" if cond else ""
            if files:
                src = f"read_parquet({self._lit(files)}, union_by_name = true)"
            else:
                cols = [f"NULL::{_SQL_TYPES[t]} AS {_quote(n)}" for n, t in schema]
                cols += [f"NULL::VARCHAR AS {_quote(k)}" for k in self.tag_keys]
                src, where = f"(SELECT {', '.join(cols)} WHERE false)", ""
            self.con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {src}{where}")

    @staticmethod
    def _lit(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(Dataset._lit(v) for v in value) + "]"
        return "'" + str(value).replace("'", "''") + "'"

    def select(self, *, start_s: float | None = None, end_s: float | None = None,
               **tags: str) -> "Dataset":
        """The part of the dataset with these tag values (``host="a"``) and/or calls starting
        in [``start_s``, ``end_s``) (events: ``ts_s``); only the files that can hold them are
        read."""
        for name, v in (("start_s", start_s), ("end_s", end_s)):
            if v is not None and not (isinstance(v, (int, float, np.number)) and v == v):
                raise InputError(f"{name} must be a number of seconds, not {v!r}")
        both = dict(self._tags)
        both.update({k: str(v) for k, v in tags.items()})
        t0, t1 = self._window
        window = (start_s if start_s is not None else t0, end_s if end_s is not None else t1)
        return Dataset(self.path, _tags=both, _window=window)

    @property
    def inputs(self) -> pd.DataFrame:
        """One row per selected input: its tags, ``lines``, ``bytes``, ``calls``, ``events``,
        ``forced_cuts``, ``source``."""
        rows = [dict(i["tags"], lines=i["lines"], bytes=i["bytes"], calls=i["calls"],
                     events=i["events"], forced_cuts=i["forced_cuts"], source=i["source"])
                for i in self._inputs]
        return pd.DataFrame(rows, columns=self.tag_keys + ["lines", "bytes", "calls", "events",
                                                           "forced_cuts", "source"])

    def __repr__(self) -> str:
        sel = f" {self._tags}" if self._tags else ""
        calls = sum(i["calls"] for i in self._inputs)
        return f"<Dataset {self.path}{sel}: {len(self._inputs)} inputs, {calls:,} calls>"

    def sql(self, query: str, params: Any = None) -> pd.DataFrame:
        """Run ``query`` (views ``calls`` and ``events``) and return the result as pandas."""
        pa = need("pyarrow")
        try:
            rel = self.con.sql(query, params=params)
            if rel is None:                  # (a statement without a result)
                return pd.DataFrame()
            tab = rel.to_arrow_table()
            # (Int64 keeps 64-bit values exact where a column has NULLs: retval)
            return tab.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        except need("duckdb").Error as err:
            raise FtracekitError(f"sql: {str(err).splitlines()[0]}") from None

    # -- analyses ------------------------------------------------------------------------------
    def functions(self) -> list[str]:
        """Names of the functions that have at least one call, sorted."""
        df = self.sql("SELECT DISTINCT func FROM calls WHERE func IS NOT NULL")
        return sorted(df["func"].astype(str))

    def _match(self, func: str) -> list[str]:
        names = self.functions()
        probe = pd.DataFrame({"func": pd.Categorical(names)})
        return A.match_funcs(probe, func)

    def _calls_where(self, where: str, params: Any = None, order: str = "", limit: str = ""
                     ) -> pd.DataFrame:
        df = self.sql(f"SELECT * FROM calls WHERE {where} {order} {limit}", params)
        return as_calls(df, self.tag_keys)

    def calls_of(self, func: str) -> pd.DataFrame:
        """All calls of ``func`` (exact, glob or base name, as :meth:`Trace.calls_of`), with
        the tag columns; index ``call`` (ids count per input)."""
        return self._calls_where("func IN (SELECT unnest(?))", [self._match(func)],
                                 "ORDER BY " + self._order())

    def _order(self) -> str:
        return ", ".join([_quote(k) for k in self.tag_keys] + ["call"])

    def roots(self, func: str | None = None) -> pd.DataFrame:
        """Calls without a parent, optionally only those of ``func``."""
        if func is None:
            return self._calls_where("parent < 0", None, "ORDER BY " + self._order())
        return self._calls_where("parent < 0 AND func IN (SELECT unnest(?))",
                                 [self._match(func)], "ORDER BY " + self._order())

    def slowest(self, func: str | None = None, n: int = 10) -> pd.DataFrame:
        """The ``n`` longest calls of ``func`` (default: of the roots), longest first."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise FtracekitError(f"n must be a non-negative integer, not {n!r}")
        order = f"ORDER BY duration_us DESC NULLS LAST, {self._order()}"
        if func is None:
            return self._calls_where("parent < 0", None, order, f"LIMIT {int(n)}")
        return self._calls_where("func IN (SELECT unnest(?))", [self._match(func)], order,
                                 f"LIMIT {int(n)}")

    def top(self, n: int | None = 20, by: str = "self") -> pd.DataFrame:
        """Per-function statistics, largest ``by`` first: the columns of :meth:`Trace.top`."""
        A.rank_top(pd.DataFrame(columns=A.TOP_COLUMNS), 0, by)      # (checks ``by``)
        table = _finish_stats(self.sql(func_stats_sql("calls")), self._durations("func"))
        return A.rank_top(table, n, by)

    def _durations(self, key: str) -> Any:
        """``names`` → the durations of the calls whose ``key`` is one of them, as
        DataFrame ``func`` (= the key), ``duration_us``, in call order."""
        order = self._order()

        def fetch(names: list[str]) -> pd.DataFrame:
            return self.sql(f"""SELECT * FROM (SELECT {key} AS func, duration_us, {order}
                                FROM calls) WHERE func IN (SELECT unnest(?)) ORDER BY {order}""",
                            [names])
        return fetch

    def stats(self, func: str) -> pd.Series:
        """Statistics of one function, as :meth:`Trace.stats` (``tasks``: distinct tasks per
        input, summed over inputs)."""
        names = self._match(func)
        task = ", ".join([_quote(k) for k in self.tag_keys] + ["pid"])
        df = self.sql(f"""
            SELECT count(*) AS "count",
                   count(*) FILTER (status = 'complete') AS complete,
                   count(*) FILTER (status = 'no-exit') AS no_exit,
                   count(*) FILTER (status = 'no-entry') AS no_entry,
                   coalesce(sum(duration_us), 0) AS total_us,
                   coalesce(sum(self_us), 0) AS self_us,
                   avg(duration_us) AS mean_us, stddev_samp(duration_us) AS std_us,
                   min(duration_us) AS min_us, ftk_series_q({_SORTED}, {_q(0.5)}) AS p50_us,
                   ftk_series_q({_SORTED}, {_q(0.9)}) AS p90_us,
                   ftk_series_q({_SORTED}, {_q(0.99)}) AS p99_us, max(duration_us) AS max_us,
                   count(DISTINCT ({task})) AS tasks, count(DISTINCT cpu) AS cpus,
                   count(*) FILTER (parent < 0) AS roots
            FROM calls WHERE func IN (SELECT unnest(?))""", [names])
        row = df.iloc[0]
        out = {}
        for k, v in row.items():
            if k.endswith("_us"):
                out[k] = round(float(v), 3) if v is not None and not pd.isna(v) else float("nan")
            else:
                out[k] = int(v)
        return pd.Series(out, name=func, dtype=object)

    def compare(self, a: dict[str, str], b: dict[str, str], n: int | None = None,
                by: str = "total") -> pd.DataFrame:
        """Per-function change from the inputs tagged ``a`` (``{"host": "a"}``) to those
        tagged ``b``: the columns and order of :meth:`Trace.compare`."""
        sides = []
        for tags in (a, b):
            part = self.select(**tags)
            if not part._inputs:
                raise InputError(f"{self.path}: no input tagged {tags}")
            sel = f"(SELECT {BASE_NAME_SQL} AS base, * FROM calls)"
            stats = _finish_stats(part.sql(func_stats_sql(sel, "base")),
                                  part._durations(BASE_NAME_SQL))
            names = part.sql(f"""SELECT base, string_agg(func, ', ' ORDER BY func) AS funcs
                FROM (SELECT DISTINCT {BASE_NAME_SQL} AS base, func FROM calls
                      WHERE func IS NOT NULL) GROUP BY base""")
            sides += [stats, names.set_index("base")["funcs"]]
        return A.compare_stats(*sides, n=n, by=by)

    def packets(self, dev: str | None = None, dropped: bool | None = None,
                start_s: float | None = None, end_s: float | None = None) -> pd.DataFrame:
        """One row per skb generation of each selected input: the columns and rows of
        :meth:`Trace.packets` plus the tag columns (see :mod:`.packets`: SQL picks the packet
        steps and their calls' ancestors, the summary runs on those rows)."""
        from .packets import dataset_packets

        return dataset_packets(self, dev=dev, dropped=dropped, start_s=start_s, end_s=end_s)

    def dumps(self) -> pd.DataFrame:
        """Not available: a dataset does not store netlink messages (a clear error)."""
        from .packets import dataset_dumps

        return dataset_dumps(self)

    # -- back to memory ------------------------------------------------------------------------
    def trace(self, *, call: int | None = None, start_s: float | None = None,
              end_s: float | None = None, **tags: str) -> Trace:
        """An in-memory :class:`~ftracekit.Trace` of one input (select it with ``tags`` when
        the dataset holds several): the subtree of ``call``, or the calls starting in
        [``start_s``, ``end_s``) and their events, or the whole input. Ids are those of the
        input (a filtered trace keeps them)."""
        part = self.select(start_s=start_s, end_s=end_s, **tags) if (
            tags or start_s is not None or end_s is not None) else self
        if len(part._inputs) != 1:
            raise InputError(f"{self.path}: {len(part._inputs)} inputs match {part._tags or '{}'}"
                             f"; name one with tags ({', '.join(self.tag_keys)})")
        inp = part._inputs[0]
        if call is not None:
            root = part.sql("SELECT root FROM calls WHERE call = ?", [int(call)])
            if not len(root):
                raise FtracekitError(f"no call {call} in {inp['tags']}")
            calls = part._calls_where("root = ?", [int(root['root'].iloc[0])], "ORDER BY call")
            whole = Trace(calls, pd.DataFrame(columns=[n for n, _ in EVENT_SCHEMA]))
            calls = whole.subtree(int(call))
        else:
            calls = part._calls_where("true", None, "ORDER BY call")
        ids = calls.index.to_numpy()
        ev = part.sql("SELECT * FROM events WHERE call IN (SELECT unnest(?)) ORDER BY line",
                      [ids.tolist()]) if call is not None else \
            part.sql("SELECT * FROM events ORDER BY line")
        calls = calls.drop(columns=self.tag_keys)
        events = as_events(ev.drop(columns=[k for k in self.tag_keys if k in ev]))
        meta = dict(inp["meta"], source=inp["source"], dataset=self.path, tags=inp["tags"])
        return Trace(calls, events, meta)


_SQL_TYPES = {"int64": "BIGINT", "int32": "INTEGER", "int16": "SMALLINT", "float64": "DOUBLE",
              "string": "VARCHAR", "bool_": "BOOLEAN"}


def open_dataset(path: str | os.PathLike[str], *, threads: int | None = None) -> Dataset:
    """Open a dataset written by :func:`ftracekit.convert` for querying with DuckDB.

    ``threads``: DuckDB worker threads (default: all cores). Raises
    :class:`~ftracekit.errors.InputError` for a folder that is not a dataset, one written in
    another dataset format, or a missing ``duckdb`` (``pip install 'ftracekit[scale]'``)."""
    return Dataset(path, threads=threads)
