"""ftracekit — record, parse and analyse Linux ftrace ``function_graph`` traces.

>>> import ftracekit
>>> trace = ftracekit.load("trace.txt")          # or .gz / .xz, a file object, "-" for stdin
>>> trace.slowest("rtnetlink_rcv", n=5)          # pandas DataFrame, one row per call
>>> print(trace.tree(trace.slowest("rtnetlink_rcv").index[0], min_us=10))
>>> trace.top(20, by="self")
>>> trace = ftracekit.record("rtnetlink_rcv", command=["ip", "link", "show"])   # needs root

See :class:`ftracekit.Trace` for the calls/events tables (the column contract), and the
README's "How the code is laid out" for the folders (one per pipeline stage).
"""


from ._version import __version__
from .errors import (
    FtracekitError, InputError, NotATraceError, PermissionDeniedError, RecordError,
    TracefsError, TracefsNotFoundError, TracerBusyError, TracerUnavailableError,
    NotTraceableError, UnknownFunctionError,
)
from .loader import load, parse
from .dataset import Dataset, convert, open_dataset
from .net import netlink
from .recording import Recorder, record
from .show import export
from .trace import Trace

__all__ = [
    "__version__",
    "load",
    "parse",
    "record",
    "Recorder",
    "Trace",
    "convert",
    "open_dataset",
    "Dataset",
    "export",
    "netlink",
    "FtracekitError",
    "InputError",
    "NotATraceError",
    "UnknownFunctionError",
    "TracefsError",
    "TracefsNotFoundError",
    "PermissionDeniedError",
    "TracerUnavailableError",
    "NotTraceableError",
    "TracerBusyError",
    "RecordError",
]
