"""Column helpers of the packet views: categoricals built from codes (a few distinct names,
devices and tasks over millions of rows, never a Python string per row), and pandas string
columns built in Arrow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["combine", "obj", "cat", "none_cat", "factorized", "sparse_cat", "values",
           "codes_cats", "as_cat", "str_column", "STR"]


def combine(*cols: np.ndarray) -> np.ndarray:
    """One dense code per distinct row of the given columns (hashing, no tuples, no sort)."""
    h = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        cc, uniq = pd.factorize(c)
        h = pd.factorize(h * (len(uniq) + 1) + (cc.astype(np.int64) + 1))[0].astype(np.int64)
    return h


def obj(a: np.ndarray) -> pd.Series:
    """An object column as is (pandas 3 would infer its str dtype: a copy of every string)."""
    return pd.Series(np.asarray(a, dtype=object), dtype=object)


def cat(codes: np.ndarray, cats: Any) -> pd.Categorical:
    """A categorical of ``cats`` (distinct, as objects) at ``codes`` (−1: missing)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32),
                                     categories=pd.Index(np.asarray(cats, dtype=object),
                                                         dtype=object))


def none_cat(n: int) -> pd.Categorical:
    return cat(np.full(n, -1), [])


def factorized(values: np.ndarray) -> pd.Categorical:
    """A categorical of an object array (None/NaN: missing)."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return cat(codes, uniq.to_numpy(dtype=object) if hasattr(uniq, "to_numpy") else uniq)


def sparse_cat(n: int, rows: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """A categorical of ``n`` rows, missing except at ``rows`` (holding ``values``)."""
    sub = factorized(values)
    codes = np.full(n, -1, dtype=np.int32)
    codes[rows] = np.asarray(sub.codes)
    return cat(codes, sub.categories)


def values(col: Any) -> np.ndarray:
    """A categorical (or any) column as an object array, None where missing."""
    if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
        cat = col.array if isinstance(col, pd.Series) else col
        cats = np.append(np.asarray(cat.categories, dtype=object), None)
        return cats[np.asarray(cat.codes)]              # (code −1 → the last: None)
    return np.asarray(col, dtype=object)


def codes_cats(col: Any) -> tuple[np.ndarray, np.ndarray]:
    cat = col.array if isinstance(col, pd.Series) else col
    return np.asarray(cat.codes).astype(np.int64), np.asarray(cat.categories, dtype=object)


def as_cat(col: pd.Series) -> pd.Categorical:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.array
    return factorized(col.to_numpy(dtype=object))




def str_column(codes: np.ndarray, cats: np.ndarray) -> Any:
    """``cats[codes]`` (None at code −1) as a pandas string array: the distinct strings are
    converted once and taken in Arrow; an object array where pandas' string dtype is not
    Arrow."""
    if STR is None:
        return np.append(np.asarray(cats, dtype=object), None)[codes]
    import pyarrow as pa

    arr = pa.array(np.asarray(cats, dtype=object), type=pa.large_string(), from_pandas=True)
    return pd.array(arr.take(pa.array(codes, mask=codes < 0)), dtype=STR)


def _arrow_str_dtype() -> Any:
    """pandas' default string dtype when it is Arrow-backed (pandas 3), else None."""
    dt = pd.Series(["x"]).dtype
    try:
        import pyarrow  # noqa: F401
    except ImportError:                         # pragma: no cover - without pyarrow
        return None
    return dt if getattr(dt, "storage", None) == "pyarrow" else None


STR = _arrow_str_dtype()


