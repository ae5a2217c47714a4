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


# Linux errno names (include/uapi/asm-generic/errno-base.h, errno.h, and the kernel-internal
# include/linux/errno.h ones a function can return).
_ERRNO = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
    26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
    32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG", 37: "ENOLCK",
    38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 61: "ENODATA",
    62: "ETIME", 71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 84: "EILSEQ", 88: "ENOTSOCK",
    89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP", 96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN",
    101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET",
    105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 110: "ETIMEDOUT",
    111: "ECONNREFUSED", 112: "EHOSTDOWN", 113: "EHOSTUNREACH", 114: "EALREADY",
    115: "EINPROGRESS", 116: "ESTALE", 122: "EDQUOT", 125: "ECANCELED", 512: "ERESTARTSYS",
    513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 524: "ENOTSUPP",
}

#: The kernel's error range: IS_ERR_VALUE is -4095..-1 (MAX_ERRNO).
MAX_ERRNO = 4095


def errno_name(value: Any) -> str | None:
    """``-2`` → ``-ENOENT``; ``None`` outside the kernel's error range (-4095..-1), where a
    "negative" value is a kernel pointer or the garbage a void function leaves in the
    return register, not an error."""
    if _missing(value):
        return None
    v = int(value)
    if not -MAX_ERRNO <= v <= -1:
        return None
    name = _ERRNO.get(-v)
    return f"-{name}" if name else f"-errno {-v}"
