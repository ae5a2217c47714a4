"""Packet summaries on a dataset: :meth:`Dataset.packets` (the rows of :meth:`Trace.packets`).

A packet is followed through the calls whose ``args`` hold an skb pointer and the events
whose text holds ``skbaddr=`` (:mod:`ftracekit.net.packets`). On a dataset, SQL picks out of
each input only what the summary reads:

* the events of the event names whose first text has ``skbaddr=`` (the rule of
  :func:`ftracekit.net.packets.steps`);
* the calls with an skb argument, the calls those events fired in, and every ancestor of
  either (a recursive query up ``parent``: the softirq context and a drop's caller are read
  from them).

Those rows (a small part of a big capture: packet steps, not calls) become a small in-memory
:class:`~ftracekit.Trace` per input with the input's call ids, and the generations and the
summary are computed by :func:`ftracekit.net.packets.packets` itself, so the rows equal the
in-memory ones. The result has the columns of :data:`ftracekit.net.packets.PACKET_COLUMNS`
(``first_s``/``last_s`` in s, ``span_us``/``max_gap_us`` in µs) plus one column per tag.

Netlink dumps (:meth:`Trace.dumps`) need the netlink messages, which a dataset does not store:
:meth:`Dataset.dumps` says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import FtracekitError
from ..net.packets import PACKET_COLUMNS, NoPacketsError, packets
from ..trace import Trace
from .frames import as_calls, as_events

if TYPE_CHECKING:  # pragma: no cover
    from .query import Dataset

__all__ = ["dataset_packets", "packet_trace", "SKB_ARG_SQL"]

#: SQL condition: the call's ``args`` hold an skb pointer (as :func:`..net.packets._call_steps`
#: reads them; the kernel-address check is left to it).
SKB_ARG_SQL = r"regexp_matches(args, '(^|, )\w*skb\w*=0x[0-9a-fA-F]{1,16}(,|$)')"

_EVENTS_SQL = """
    WITH firsts AS (SELECT event, arg_min(text, line) AS t FROM events
                    WHERE event IS NOT NULL GROUP BY event)
    SELECT e.* FROM events e JOIN firsts f ON e.event = f.event
    WHERE contains(f.t, 'skbaddr=') ORDER BY e.line"""

_CALLS_SQL = f"""
    WITH RECURSIVE own(call) AS (
        SELECT call FROM calls WHERE args IS NOT NULL AND {SKB_ARG_SQL}
        UNION SELECT unnest(?::BIGINT[])),
    anc(call) AS (
        SELECT call FROM own
        UNION SELECT c.parent FROM calls c JOIN anc ON c.call = anc.call WHERE c.parent >= 0)
    SELECT * FROM calls WHERE call IN (SELECT call FROM anc) ORDER BY call"""


def packet_trace(part: "Dataset") -> Trace:
    """The rows of one input (``part`` selects exactly one) that its packet summary reads, as
    an in-memory :class:`~ftracekit.Trace` (call ids as in the input)."""

    inp = part._inputs[0]
    keys = part.tag_keys
    ev = part.sql(_EVENTS_SQL)
    owners = sorted({int(c) for c in ev["call"].dropna().tolist() if int(c) >= 0}) \
        if len(ev) else []
    calls = as_calls(part.sql(_CALLS_SQL, [owners]), keys).drop(columns=keys)
    events = as_events(ev.drop(columns=[k for k in keys if k in ev]))
    meta = dict(inp["meta"], source=inp["source"], tags=inp["tags"])
    return Trace(calls, events, meta)


def dataset_packets(ds: "Dataset", dev: str | None = None, dropped: bool | None = None,
                    start_s: float | None = None, end_s: float | None = None) -> pd.DataFrame:
    """:meth:`Trace.packets` of every selected input, one after the other (in the order of
    the manifest), with the tag columns; filters as there. Raises
    :class:`~ftracekit.net.packets.NoPacketsError` when no input has skb addresses."""
    out: list[pd.DataFrame] = []
    for inp in ds._inputs:
        part = ds.select(**inp["tags"])
        try:
            pk = packets(packet_trace(part), dev=dev, dropped=dropped, start_s=start_s,
                         end_s=end_s)
        except NoPacketsError:
            continue
        for k in ds.tag_keys:
            pk[k] = inp["tags"][k]
        out.append(pk)
    if not out:
        raise NoPacketsError(
            "no input of this dataset has skb addresses: no funcgraph-args with skb= and no "
            "events with skbaddr= (record them with `ftracekit record --packets`)")
    return pd.concat(out, ignore_index=True)[PACKET_COLUMNS + ds.tag_keys]


def dataset_dumps(ds: "Dataset") -> Any:
    """Netlink dumps are not kept in datasets (the netlink messages are not converted)."""
    raise FtracekitError(
        f"{ds.path}: a dataset holds calls and events, not netlink messages; load the trace "
        "with its netlink capture for dumps (ftracekit.load(TRACE, netlink=PCAP).dumps())")
