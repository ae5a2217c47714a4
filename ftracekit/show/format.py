"""One format per kind of number, used by every table, tree, report, plot label and export.

* durations and self times: microseconds with 3 decimals (the kernel prints ns), thousands
  separated: ``30,335.800``; the unit is written ``µs``;
* counts: integers, thousands separated: ``1,234``;
* times: seconds with 6 decimals, as the trace prints them: ``635.567622``;
* shares: percent with 1 decimal: ``65.3 %``;
* unknown values: ``-``.

:func:`round_us` is what tables and exports hold (values rounded to the ns the kernel
measured, so ``813.0419999999999`` reads ``813.042``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import errno_name   # (names are a fact about the kernel; shown from here)

__all__ = ["US", "fmt_us", "fmt_count", "fmt_s", "fmt_pct", "round_us", "errno_name"]


#: The unit of durations, as written everywhere.
US = "µs"


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v))


def fmt_us(v: Any, width: int = 0, *, unit: bool = False) -> str:
    """Microseconds: ``30,335.800`` (3 decimals); ``-`` when unknown; ``unit`` appends `` µs``."""
    s = "-" if _missing(v) else f"{float(v):,.3f}" + (f" {US}" if unit else "")
    return s.rjust(width) if width else s


def fmt_count(v: Any, width: int = 0) -> str:
    """A count: ``1,234``; ``-`` when unknown."""
    s = "-" if _missing(v) else f"{int(v):,}"
    return s.rjust(width) if width else s


def fmt_s(v: Any, width: int = 0) -> str:
    """Seconds as the trace prints them: ``635.567622``; ``-`` when unknown."""
    s = "-" if _missing(v) else f"{float(v):.6f}"
    return s.rjust(width) if width else s


def fmt_pct(v: Any, width: int = 0) -> str:
    """A share in percent: ``65.3 %``; ``-`` when unknown."""
    s = "-" if _missing(v) else f"{float(v):.1f} %"
    return s.rjust(width) if width else s


def round_us(values: Any) -> Any:
    """Durations rounded to the nanosecond (3 decimals of µs), for tables and exports."""
    return np.round(values, 3)
