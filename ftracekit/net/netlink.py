"""Netlink messages joined to the kernel calls that handled them, and dumps split into rounds.

What the join relies on (``net/netlink/af_netlink.c``, 6.1–6.12):

* a request is tapped in ``netlink_unicast_kernel`` just before the family's ``netlink_rcv``
  (``rtnetlink_rcv``, ``genl_rcv`` …) runs in the *sending* task: its handler call is the first
  call of that function starting at or after the packet (µs later);
* a dump's first round runs inside that handler (``__netlink_dump_start`` → ``netlink_dump``),
  each later round in ``netlink_recvmsg`` of the reading task, one per ``recvmsg`` while the
  receive queue is at most half full. One round = one skb = one captured packet, tapped in
  ``__netlink_sendskb`` *inside* ``netlink_dump``; ``NLMSG_DONE`` comes in the last data skb
  or (6.10+, some handlers) alone in a round of its own;
* a task runs its rounds one after another, so a round of one task never overlaps another.

So the join is structural first: request → handler call (family's function, first start at
or after the packet); the dump's reply packets, in order, → the ``netlink_dump`` calls of the
requesting task, each the one whose interval holds the packet (time only picks among that
task's rounds). Non-dump replies (acks, errors, single GETs) are produced inside the request's
handler call. Packet times are ``CLOCK_REALTIME``; they are put on the trace's ``mono`` clock
with the realtime − monotonic offset the recorder sampled (``meta["recording"]["netlink"]``).

Each join has a plain sequential definition (``*_sequential``) beside the vectorised one; the
tests check that both give the same result.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import FtracekitError
from ._nlmsg import (FAMILIES, MESSAGE_COLUMNS, PcapTruncatedWarning, decode_packets, flag_names,
                     read_pcap, truncation_note, type_name)

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["read_pcap", "decode_packets", "PcapTruncatedWarning", "MESSAGE_COLUMNS", "FAMILIES",
           "type_name", "flag_names", "truncation_note", "HANDLERS", "join", "packets",
           "join_requests", "join_requests_sequential", "join_rounds", "join_rounds_sequential",
           "dumps", "rounds", "DUMP_COLUMNS", "ROUND_COLUMNS", "verdict", "BOUND_RATIO",
           "clock_offset", "TOLERANCE_S", "WINDOW_S"]

#: The function that handles a family's requests (its ``netlink_rcv``).
HANDLERS = {"ROUTE": "rtnetlink_rcv", "GENERIC": "genl_rcv", "SOCK_DIAG": "sock_diag_rcv",
            "NETFILTER": "nfnetlink_rcv", "XFRM": "xfrm_netlink_rcv", "FIB_LOOKUP": "nl_fib_input"}
#: A request's handler may start this much *before* the packet time (clock alignment error).
TOLERANCE_S = 100e-6
#: … and at most this long after it (the tap runs immediately before the handler; under an
#: emulated CPU that is tens of µs).
WINDOW_S = 0.050
#: kernel-bound when kernel time ≥ this × user-space time between rounds, reader-bound when
#: the user-space time ≥ this × kernel time, else balanced
BOUND_RATIO = 2.0


# ------------------------------------------------------------------------------ packets
def packets(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per captured packet (index ``packet``): ``ts_s``, ``family``, ``direction``,
    ``type`` / ``flags`` / ``seq`` / ``portid`` of its first message, ``n_messages``,
    ``n_done`` (``NLMSG_DONE`` messages), ``bytes`` (``packet_len``)."""
    g = messages.groupby("packet", sort=True, observed=True)
    first = g.first()
    out = pd.DataFrame({
        "ts_s": first["ts_s"], "family": first["family"].astype(str),
        "direction": first["direction"].astype(str), "type": first["type"].astype(str),
        "flags": first["flags"].astype(str), "seq": first["seq"], "portid": first["portid"],
        "n_messages": g.size(),
        "n_done": (messages["type"] == "NLMSG_DONE").groupby(messages["packet"]).sum(),
        "bytes": first["packet_len"],
    })
    out.index.name = "packet"
    return out


def _func_calls(calls: pd.DataFrame, name: str) -> pd.DataFrame:
    """Complete calls of ``name`` (GCC clones included), sorted by start."""
    func = calls["func"].astype(str)
    mask = ((func == name) | func.str.startswith(name + ".")) & calls["start_s"].notna()
    return calls.loc[mask, ["pid", "start_s", "end_s"]].sort_values("start_s", kind="stable")


# ------------------------------------------------------------------------- requests
def join_requests(pk: pd.DataFrame, calls: pd.DataFrame, *, tol_s: float = TOLERANCE_S,
                  window_s: float = WINDOW_S) -> pd.Series:
    """Handler call of each request packet (``to_kernel``), −1 where none was traced.

    Definition (:func:`join_requests_sequential`): packets in time order; each takes the first
    call of its family's handler (:data:`HANDLERS`) not taken yet that starts at or after
    ``ts_s − tol_s``, if that call starts by ``ts_s + window_s``. One pass over sorted arrays
    (requests are few next to the rounds' messages)."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    req = pk[pk["direction"] == "to_kernel"]
    for family, group in req.groupby("family", sort=True):
        handler = HANDLERS.get(str(family))
        if handler is None:
            continue
        cand = _func_calls(calls, handler)
        if cand.empty:
            continue
        starts = cand["start_s"].to_numpy()
        ids = cand.index.to_numpy()
        order = np.lexsort((group.index.to_numpy(), group["ts_s"].to_numpy()))
        ts = group["ts_s"].to_numpy()[order]
        first = np.searchsorted(starts, ts - tol_s, side="left")
        taken = np.zeros(len(starts), dtype=bool)
        picked = np.full(len(ts), -1, dtype=np.int64)
        for i in range(len(ts)):
            k = first[i]
            while k < len(starts) and taken[k]:
                k += 1
            if k < len(starts) and starts[k] <= ts[i] + window_s:
                taken[k] = True
                picked[i] = ids[k]
        out.loc[group.index.to_numpy()[order]] = picked
    return out


def join_requests_sequential(pk: pd.DataFrame, calls: pd.DataFrame, *,
                             tol_s: float = TOLERANCE_S, window_s: float = WINDOW_S) -> pd.Series:
    """Plain-loop definition of :func:`join_requests`."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    taken: set[int] = set()
    for p in sorted(pk.index[pk["direction"] == "to_kernel"], key=lambda p: (pk.at[p, "ts_s"], p)):
        handler = HANDLERS.get(str(pk.at[p, "family"]))
        if handler is None:
            continue
        ts = pk.at[p, "ts_s"]
        for call, row in _func_calls(calls, handler).iterrows():
            if row["start_s"] >= ts - tol_s and call not in taken:
                if row["start_s"] <= ts + window_s:
                    out[p] = call
                    taken.add(call)
                break
    return out


# ---------------------------------------------------------------------------- rounds
def _dump_requests(pk: pd.DataFrame) -> pd.DataFrame:
    return pk[(pk["direction"] == "to_kernel") & pk["flags"].str.contains("DUMP")]


def _replies_of(pk: pd.DataFrame, req: pd.Series) -> pd.DataFrame:
    """The dump's reply packets: to user space, same family and seq, after the request, up to
    the first one holding ``NLMSG_DONE`` (a later dump may reuse the seq). The replies carry
    the socket's port id; the request's ``nlmsg_pid`` is what user space wrote — often 0
    (iproute2) — so when it is 0 the port is the one of the first reply with that seq."""
    r = pk[(pk["direction"] == "to_user") & (pk["family"] == req["family"])
           & (pk["seq"] == req["seq"]) & (pk.index > req.name)]
    port = int(req["portid"]) or (int(r["portid"].iloc[0]) if len(r) else 0)
    r = r[r["portid"] == port]
    done = np.flatnonzero(r["n_done"].to_numpy() > 0)
    return r.iloc[: done[0] + 1] if len(done) else r


def _nearest_interval(starts: np.ndarray, ends: np.ndarray, ts: np.ndarray,
                      tol_s: float) -> np.ndarray:
    """Per time, the position of the interval (sorted, not overlapping) that holds it, else of
    the nearest one within ``tol_s`` (the earlier on a tie), else −1."""
    before = np.searchsorted(starts, ts, side="right") - 1        # last start <= ts
    after = before + 1
    n = len(starts)
    d_before = np.where(before >= 0, np.maximum(ts - ends[np.maximum(before, 0)], 0.0), np.inf)
    d_after = np.where(after < n, starts[np.minimum(after, n - 1)] - ts, np.inf)
    pick = np.where(d_after < d_before, after, before)
    best = np.minimum(d_before, d_after)
    return np.where(best <= tol_s, pick, -1)


def join_rounds(pk: pd.DataFrame, calls: pd.DataFrame, request_call: pd.Series, *,
                tol_s: float = TOLERANCE_S) -> pd.Series:
    """``netlink_dump`` call (the round) of each dump reply packet, −1 where none was traced.

    Definition (:func:`join_rounds_sequential`): the reply packets of a dump request, in order,
    go to the ``netlink_dump`` calls of the task whose handler call took the request — each to
    that task's round that holds the packet's time, else to the nearest one within ``tol_s``
    (a task's rounds never overlap, so at most one holds it)."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    rounds = _func_calls(calls, "netlink_dump")
    if rounds.empty:
        return out
    by_pid = {pid: g for pid, g in rounds.groupby("pid", sort=False)}
    for p, req in _dump_requests(pk).iterrows():
        h = request_call.get(p, -1)
        if h < 0:
            continue
        mine = by_pid.get(calls.at[h, "pid"])
        if mine is None:
            continue
        rep = _replies_of(pk, req)
        ts = rep["ts_s"].to_numpy()
        starts, ends = mine["start_s"].to_numpy(), mine["end_s"].to_numpy()
        pos = _nearest_interval(starts, ends, ts, tol_s)
        out.loc[rep.index] = np.where(pos >= 0, mine.index.to_numpy()[np.maximum(pos, 0)], -1)
    return out


def join_rounds_sequential(pk: pd.DataFrame, calls: pd.DataFrame, request_call: pd.Series, *,
                           tol_s: float = TOLERANCE_S) -> pd.Series:
    """Plain-loop definition of :func:`join_rounds`."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    rounds = _func_calls(calls, "netlink_dump")
    for p, req in _dump_requests(pk).iterrows():
        h = request_call.get(p, -1)
        if h < 0:
            continue
        mine = rounds[rounds["pid"] == calls.at[h, "pid"]]
        for q, rep in _replies_of(pk, req).iterrows():
            best, best_d = -1, np.inf
            for call, r in mine.iterrows():      # the round holding the packet, else the nearest
                t = rep["ts_s"]
                d = 0.0 if r["start_s"] <= t <= r["end_s"] else min(abs(t - r["start_s"]),
                                                                   abs(t - r["end_s"]))
                if d < best_d:
                    best, best_d = call, d
            if best_d <= tol_s:
                out[q] = best
    return out


# ------------------------------------------------------------------------------ join
def clock_offset(meta: dict[str, Any]) -> float | None:
    """realtime − monotonic of the recording (mean of the start and end samples), or None."""
    nl = (meta.get("recording") or {}).get("netlink") or {}
    samples = [v for v in nl.get("clock_offset_s") or [] if v is not None]
    return float(np.mean(samples)) if samples else None


def join(messages: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """``messages`` (on the trace's clock) plus ``call`` — the handler call of a request, the
    ``netlink_dump`` round that sent a dump reply, the handler call that produced any other
    reply of a request (ack, error, single GET) — and ``pid`` (that call's task), −1 where none
    was traced."""
    pk = packets(messages)
    req_call = join_requests(pk, calls)
    pkt_call = req_call.copy()
    round_call = join_rounds(pk, calls, req_call)
    pkt_call[round_call >= 0] = round_call[round_call >= 0]
    # other replies of a request: produced inside its handler call
    handled = pk[(pk["direction"] == "to_kernel") & (req_call >= 0)]
    for p, req in handled.iterrows():
        h = req_call[p]
        start, end = calls.at[h, "start_s"], calls.at[h, "end_s"]
        rep = pk[(pk["direction"] == "to_user") & (pk["seq"] == req["seq"])
                 & (pk["family"] == req["family"]) & (pkt_call < 0) & (pk.index > p)
                 & ((pk["portid"] == req["portid"]) | (req["portid"] == 0))
                 & (pk["ts_s"] >= start - TOLERANCE_S) & (pk["ts_s"] <= end + TOLERANCE_S)]
        pkt_call[rep.index] = h
    out = messages.copy()
    call = pkt_call.reindex(out["packet"].to_numpy()).to_numpy()
    out["call"] = call
    pid = np.full(len(out), -1, dtype=np.int64)
    has = call >= 0
    pid[has] = calls["pid"].reindex(call[has]).to_numpy()
    out["pid"] = pid
    return out


# ----------------------------------------------------------------------------- dumps
#: Columns of :func:`dumps`.
DUMP_COLUMNS = ["seq", "portid", "family", "type", "pid", "comm", "request_call", "start_s",
                "end_s", "duration_us", "n_rounds", "n_messages", "bytes", "kernel_us",
                "user_us", "slowest_round_us", "slowest_call", "done", "error", "verdict"]
ROUND_COLUMNS = ["round", "packet", "call", "start_s", "end_s", "kernel_us", "gap_before_us",
                 "n_messages", "bytes", "first_ifname", "last_ifname", "done"]


def verdict(kernel_us: float, user_us: float, n_traced: int) -> str:
    """``kernel-bound``, ``reader-bound``, ``balanced`` (see :data:`BOUND_RATIO`), or
    ``untraced`` when no round was traced."""
    if n_traced == 0:
        return "untraced"
    if user_us >= BOUND_RATIO * kernel_us and user_us > 0:
        return "reader-bound"
    if kernel_us >= BOUND_RATIO * user_us:
        return "kernel-bound"
    return "balanced"


def rounds(joined: pd.DataFrame, calls: pd.DataFrame, request_packet: int) -> pd.DataFrame:
    """One row per round of the dump requested in packet ``request_packet``: ``round`` (1…),
    ``packet``, ``call`` (its ``netlink_dump``, −1 if untraced), ``start_s``/``end_s`` (the
    call's; the packet time when untraced), ``kernel_us`` (the call's duration), ``gap_before_us``
    (µs from the previous round's end to this one's start: user space, reading and asking for
    more; NaN for the first), ``n_messages`` (without ``NLMSG_DONE``), ``bytes``,
    ``first_ifname``/``last_ifname``, ``done`` (holds ``NLMSG_DONE``)."""
    pk = packets(joined)
    req = pk.loc[request_packet]
    rep = _replies_of(pk, req)
    msgs = joined[joined["packet"].isin(rep.index)]
    call = joined.groupby("packet")["call"].first().reindex(rep.index).to_numpy()
    has = call >= 0
    start = rep["ts_s"].to_numpy().copy()
    end = start.copy()
    kernel = np.full(len(rep), np.nan)
    if has.any():
        c = calls.loc[call[has]]
        start[has], end[has] = c["start_s"].to_numpy(), c["end_s"].to_numpy()
        kernel[has] = c["duration_us"].to_numpy()
    gap = np.full(len(rep), np.nan)
    gap[1:] = (start[1:] - end[:-1]) * 1e6
    data = msgs[msgs["type"] != "NLMSG_DONE"].groupby("packet")
    names = data["ifname"]
    return pd.DataFrame({
        "round": np.arange(1, len(rep) + 1), "packet": rep.index.to_numpy(), "call": call,
        "start_s": start, "end_s": end, "kernel_us": kernel, "gap_before_us": gap,
        "n_messages": data.size().reindex(rep.index, fill_value=0).to_numpy(),
        "bytes": rep["bytes"].to_numpy(),
        "first_ifname": names.first().reindex(rep.index).to_numpy(),
        "last_ifname": names.last().reindex(rep.index).to_numpy(),
        "done": (rep["n_done"] > 0).to_numpy(),
    })


def dumps(joined: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per dump request (index: the request's ``packet``), columns
    :data:`DUMP_COLUMNS`: ``seq``, ``portid`` (the socket's port, from the replies), ``family``,
    ``type`` (``RTM_GETLINK`` …);
    ``pid``/``comm`` of the requesting task and ``request_call`` (its handler call; −1/NaN when
    untraced); ``start_s`` (request) and ``end_s`` (the last round's end, or its packet);
    ``duration_us``; ``n_rounds`` (reply packets); ``n_messages`` (reply messages without
    ``NLMSG_DONE``); ``bytes``; ``kernel_us`` (sum of the traced rounds' durations);
    ``user_us`` (sum of the gaps between rounds); ``slowest_round_us`` and ``slowest_call``
    (its ``netlink_dump`` call, for ``tree``/``critical_path``; −1 if none); ``done``
    (``NLMSG_DONE`` seen); ``error`` (``NLMSG_DONE``'s status, or the ``NLMSG_ERROR`` code);
    ``verdict`` (:func:`verdict`). Times in seconds on the trace clock, durations in µs."""
    pk = packets(joined)
    reqs = _dump_requests(pk)
    first_call = joined.groupby("packet")["call"].first()
    rows = []
    for p, req in reqs.iterrows():
        r = rounds(joined, calls, p)
        h = int(first_call.get(p, -1))
        traced = r[r["call"] >= 0]
        kernel = float(traced["kernel_us"].sum())
        user = float(np.nansum(r["gap_before_us"].to_numpy())) if len(r) > 1 else 0.0
        slow = traced.loc[traced["kernel_us"].idxmax()] if len(traced) else None
        reply = joined[joined["packet"].isin(r["packet"])]
        status = reply.loc[reply["type"].isin(["NLMSG_DONE", "NLMSG_ERROR"]), "error"]
        end = float(r["end_s"].iloc[-1]) if len(r) else float(req["ts_s"])
        port = int(pk.at[int(r["packet"].iloc[0]), "portid"]) if len(r) else int(req["portid"])
        rows.append({
            "seq": int(req["seq"]), "portid": port, "family": req["family"],
            "type": req["type"], "pid": int(calls.at[h, "pid"]) if h >= 0 else -1,
            "comm": calls.at[h, "comm"] if h >= 0 else np.nan, "request_call": h,
            "start_s": float(req["ts_s"]), "end_s": end,
            "duration_us": (end - float(req["ts_s"])) * 1e6, "n_rounds": len(r),
            "n_messages": int(r["n_messages"].sum()), "bytes": int(r["bytes"].sum()),
            "kernel_us": kernel, "user_us": user,
            "slowest_round_us": float(slow["kernel_us"]) if slow is not None else np.nan,
            "slowest_call": int(slow["call"]) if slow is not None else -1,
            "done": bool(r["done"].any()),
            "error": int(status.iloc[-1]) if len(status) and pd.notna(status.iloc[-1]) else pd.NA,
            "verdict": verdict(kernel, user, len(traced)),
        })
    out = pd.DataFrame(rows, columns=DUMP_COLUMNS, index=pd.Index(reqs.index, name="packet"))
    out["error"] = out["error"].astype("Int64")
    return out


def load_for(trace: "Trace", pcap: str | os.PathLike[str] | None,
             clock_offset_s: float | None = None) -> pd.DataFrame:
    """Read ``pcap`` for ``trace`` and join it (what ``Trace.netlink`` returns). The offset:
    ``clock_offset_s``, else the recording's, else an error saying how to give it."""
    offset = clock_offset_s if clock_offset_s is not None else clock_offset(trace.meta)
    if offset is None:
        raise FtracekitError(
            f"{pcap}: no realtime − monotonic clock offset for this capture (the trace was not "
            "recorded with --netlink): pass clock_offset_s= (seconds, "
            "CLOCK_REALTIME − CLOCK_MONOTONIC of the recording machine)")
    return join(read_pcap(pcap, clock_offset_s=offset), trace.calls)
