"""Query results (DuckDB or Dask frames) typed as :class:`ftracekit.Trace`'s tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .layout import CALL_SCHEMA, EVENT_SCHEMA

__all__ = ["as_calls", "as_events"]

_CATEGORICAL = {"func", "module", "comm", "status", "args", "event", "lat_flags"}
_NUMPY = {"int64": np.int64, "int32": np.int32, "int16": np.int16, "float64": np.float64,
          "bool_": bool}


def _typed(df: pd.DataFrame, schema: list[tuple[str, str]]) -> pd.DataFrame:
    """Query results with the dtypes of :class:`Trace`'s tables."""
    for name, typ in schema:
        if name not in df:
            continue
        if name in _CATEGORICAL:
            df[name] = pd.Categorical(df[name].astype(object).where(df[name].notna(), None))
        elif name == "retval":
            df[name] = pd.array(df[name], dtype="Int64")
        elif name == "text":
            df[name] = pd.array(df[name].astype(object), dtype=object)
        else:
            df[name] = df[name].to_numpy(dtype=_NUMPY[typ])
    return df


def as_calls(df: pd.DataFrame, tag_keys: list[str]) -> pd.DataFrame:
    """Rows of the ``calls`` view as :class:`~ftracekit.Trace`'s ``calls`` table (indexed by
    ``call``, its columns and dtypes, then the tag columns present)."""
    df = _typed(df, CALL_SCHEMA)
    df = df.set_index("call")
    cols = [n for n, _ in CALL_SCHEMA if n != "call"] + [k for k in tag_keys if k in df]
    return df[cols]


def as_events(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ``events`` view as :class:`~ftracekit.Trace`'s ``events`` table."""
    df = _typed(df, EVENT_SCHEMA)
    return df[[n for n, _ in EVENT_SCHEMA]].reset_index(drop=True)
