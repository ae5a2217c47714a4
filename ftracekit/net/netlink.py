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
           "clock_residual",
           "join_requests", "join_requests_sequential", "join_rounds", "join_rounds_sequential",
           "dumps", "rounds", "DUMP_COLUMNS", "ROUND_COLUMNS", "verdict", "BOUND_RATIO",
           "clock_offset", "clock_samples", "follow_clock", "TOLERANCE_S", "WINDOW_S"]

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
    func = calls["func"]
    if isinstance(func.dtype, pd.CategoricalDtype):
        # (each distinct name tested once: the join asks this several times per trace)
        cats = func.cat.categories.astype(str)
        hit = np.flatnonzero((cats == name) | cats.str.startswith(name + "."))
        named = np.isin(func.cat.codes.to_numpy(), hit)
    else:
        text = func.astype(str)
        named = ((text == name) | text.str.startswith(name + ".")).to_numpy()
    mask = named & calls["start_s"].notna().to_numpy()
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


def _reply_groups(pk: pd.DataFrame) -> dict[tuple[str, int], pd.DataFrame]:
    """Packets to user space by (family, seq), in capture order: built once, so that finding
    each request's replies does not scan every packet."""
    to_user = pk[pk["direction"] == "to_user"]
    return {key: g for key, g in to_user.groupby(["family", "seq"], sort=False)}


def _replies_of(pk: pd.DataFrame, req: pd.Series,
                groups: dict[tuple[str, int], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The dump's reply packets: to user space, same family and seq, after the request, up to
    the first one holding ``NLMSG_DONE`` (a later dump may reuse the seq). The replies carry
    the socket's port id; the request's ``nlmsg_pid`` is what user space wrote — often 0
    (iproute2) — so when it is 0 the port is the one of the first reply with that seq."""
    if groups is None:
        groups = _reply_groups(pk)
    r = groups.get((req["family"], req["seq"]))
    if r is None:
        return pk.iloc[:0]
    r = r[r.index > req.name]
    port = int(req["portid"]) or (int(r["portid"].iloc[0]) if len(r) else 0)
    r = r[r["portid"] == port]
    done = np.flatnonzero(r["n_done"].to_numpy() > 0)
    return r.iloc[: done[0] + 1] if len(done) else r


def dump_replies(pk: pd.DataFrame) -> pd.DataFrame:
    """Every dump's reply packets at once: one row per (``request``, ``packet``) pair, in
    request then capture order — :func:`_replies_of` for all requests, on numpy arrays (one
    pass per request over the packets of its family and seq only)."""
    reqs = _dump_requests(pk)
    to_user = pk[pk["direction"] == "to_user"]
    pos = to_user.index.to_numpy()
    port = to_user["portid"].to_numpy()
    done = to_user["n_done"].to_numpy() > 0
    keys = pd.MultiIndex.from_arrays([to_user["family"], to_user["seq"]])
    by_key = pd.Series(np.arange(len(to_user))).groupby(keys.to_numpy() if len(keys) else
                                                       np.array([], dtype=object)).indices
    req_out, pkt_out = [], []
    for p, fam, seq, rport in zip(reqs.index.to_numpy(), reqs["family"], reqs["seq"],
                                  reqs["portid"]):
        idx = by_key.get((fam, seq))
        if idx is None:
            continue
        idx = idx[pos[idx] > p]
        if not len(idx):
            continue
        want = rport or port[idx[0]]
        idx = idx[port[idx] == want]
        d = np.flatnonzero(done[idx])
        if len(d):
            idx = idx[: d[0] + 1]
        req_out.append(np.full(len(idx), p, dtype=np.int64))
        pkt_out.append(pos[idx])
    cat = (lambda parts: np.concatenate(parts) if parts else np.array([], dtype=np.int64))
    return pd.DataFrame({"request": cat(req_out), "packet": cat(pkt_out)})


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
    (a task's rounds never overlap, so at most one holds it); a round sends one skb, so where
    two packets fall to one round the nearer keeps it (the other: −1)."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    rounds = _func_calls(calls, "netlink_dump")
    if rounds.empty:
        return out
    pairs = dump_replies(pk)
    h = request_call.reindex(pairs["request"].to_numpy()).to_numpy()
    pairs = pairs[h >= 0].assign(pid=calls["pid"].reindex(h[h >= 0]).to_numpy())
    found = []
    for pid, group in pairs.groupby("pid", sort=False):
        mine = rounds[rounds["pid"] == pid]
        if mine.empty:
            continue
        ts = pk["ts_s"].reindex(group["packet"].to_numpy()).to_numpy()
        starts, ends = mine["start_s"].to_numpy(), mine["end_s"].to_numpy()
        pos = _nearest_interval(starts, ends, ts, tol_s)
        ok = pos >= 0
        p = pos[ok]
        dist = np.maximum(np.maximum(starts[p] - ts[ok], ts[ok] - ends[p]), 0.0)
        found.append(group[ok].assign(call=mine.index.to_numpy()[p], dist=dist))
    if found:
        # a packet two dumps claim (a reused seq): the later request's match wins
        hits = pd.concat(found).sort_values(["packet", "request"]).drop_duplicates(
            "packet", keep="last")
        # a round sends one skb: of two packets near one round, the nearer keeps it (the
        # other's own round was not traced, or its time is off by more than the tolerance)
        hits = hits.sort_values(["call", "dist", "packet"]).drop_duplicates("call")
        out.loc[hits["packet"].to_numpy()] = hits["call"].to_numpy()
    return out


def join_rounds_sequential(pk: pd.DataFrame, calls: pd.DataFrame, request_call: pd.Series, *,
                           tol_s: float = TOLERANCE_S) -> pd.Series:
    """Plain-loop definition of :func:`join_rounds`."""
    out = pd.Series(-1, index=pk.index, dtype=np.int64)
    dist: dict[int, float] = {}
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
                dist[q] = best_d
    # one packet per round: the nearest (then the earliest) keeps it
    for call in set(out[out >= 0]):
        claim = sorted((dist[q], q) for q in out.index[out == call])
        for _d, q in claim[1:]:
            out[q] = -1
    return out


# ------------------------------------------------------------------------------ join
def clock_offset(meta: dict[str, Any]) -> float | None:
    """realtime − monotonic of the recording, or None: the median of the sharp samples
    (:func:`clock_samples`), else the mean of the start and end samples (older captures)."""
    got = clock_samples(meta)
    if got is not None:
        return float(np.median(got[1]))
    nl = (meta.get("recording") or {}).get("netlink") or {}
    samples = [v for v in nl.get("clock_offset_s") or [] if v is not None]
    return float(np.mean(samples)) if samples else None


#: A clock sample is sharp when its monotonic reads are this close (or within 4× the sharpest
#: sample's): a thread preempted between them (ms under a loaded emulator) blurs the offset
#: by half their distance — such samples are left out.
SHARP_S = 20e-6


def clock_samples(meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(monotonic s, realtime − monotonic s)`` of the sharp clock samples the capture took
    during the recording (``clock_samples``: ``[monotonic, offset, width]``), sorted; None for
    a capture without them."""
    nl = (meta.get("recording") or {}).get("netlink") or {}
    rows = [r for r in nl.get("clock_samples") or [] if len(r) >= 2 and None not in r[:2]]
    if not rows:
        return None
    arr = np.array([(float(r[0]), float(r[1]), float(r[2]) if len(r) > 2 else 0.0)
                    for r in rows])
    width = arr[:, 2]
    arr = arr[width <= max(SHARP_S, 4 * float(width.min()))]
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    # and those off their neighbours' median (captures that did not record the widths)
    local = pd.Series(arr[:, 1]).rolling(5, center=True, min_periods=1).median().to_numpy()
    keep = np.abs(arr[:, 1] - local) <= SHARP_S
    arr = arr[keep] if keep.any() else arr
    return arr[:, 0], arr[:, 1]


def follow_clock(messages: pd.DataFrame, meta: dict[str, Any], offset_s: float) -> pd.DataFrame:
    """``messages`` (``ts_s`` = realtime − ``offset_s``) with each time put on the monotonic
    clock by the realtime − monotonic offset *at that time*, interpolated between the
    recording's sharp samples (:func:`clock_samples`): a realtime clock stepped or slewed
    during the recording moves packets against the calls otherwise."""
    got = clock_samples(meta)
    if got is None or len(got[0]) < 2 or not len(messages):
        return messages
    mono, off = got
    ts = messages["ts_s"].to_numpy(dtype=float)
    est = ts
    for _ in range(3):          # the offset at the packet's monotonic time (a fixed point: the
        est = ts - (np.interp(est, mono, off) - offset_s)   # offset moves µs per ms)
    out = messages.copy()
    out["ts_s"] = est
    return out


def clock_residual(pk: pd.DataFrame, calls: pd.DataFrame, *,
                   window_s: float = WINDOW_S) -> np.ndarray | None:
    """Seconds to add to each packet's ``ts_s`` so that the requests line up with their
    handlers, or None when there is nothing to learn from.

    Where the realtime − monotonic offset is off (a capture with only its start and end
    samples, one blurred by a preempted reader: 1.8 ms apart under a loaded emulator; a pcap
    from elsewhere with a guessed offset), the tap of a request lands after the start of the
    handler it ran just before. Each request
    is paired with the nearest handler start of its family (within ``window_s``); a line fitted
    through the differences (a constant for one request) is then moved down so that no
    handler starts before its request: the tap always runs first."""
    req = pk[pk["direction"] == "to_kernel"]
    ts_all, d_all = [], []
    for family, group in req.groupby("family", sort=True):
        handler = HANDLERS.get(str(family))
        cand = _func_calls(calls, handler) if handler else None
        if cand is None or cand.empty:
            continue
        starts = cand["start_s"].to_numpy()
        ts = group["ts_s"].to_numpy()
        k = np.clip(np.searchsorted(starts, ts), 1, len(starts) - 1) if len(starts) > 1 \
            else np.zeros(len(ts), dtype=np.int64)
        near = starts[k]
        if len(starts) > 1:
            prev = starts[k - 1]
            near = np.where(np.abs(prev - ts) < np.abs(near - ts), prev, near)
        ok = np.abs(near - ts) <= window_s
        ts_all.append(ts[ok])
        d_all.append((near - ts)[ok])
    if not ts_all or not sum(len(t) for t in ts_all):
        return None
    ts = np.concatenate(ts_all)
    d = np.concatenate(d_all)
    t0 = float(ts.min())
    if len(ts) >= 3 and float(ts.max() - t0) > 0:
        slope, icept = np.polyfit(ts - t0, d, 1)
    else:
        slope, icept = 0.0, float(np.median(d))
    fit = icept + slope * (ts - t0)
    icept += float((d - fit).min())
    return icept + slope * (pk["ts_s"].to_numpy() - t0)


def _n_joined(pk: pd.DataFrame, calls: pd.DataFrame) -> tuple[int, pd.Series, pd.Series]:
    req_call = join_requests(pk, calls)
    round_call = join_rounds(pk, calls, req_call)
    return int((req_call >= 0).sum() + (round_call >= 0).sum()), req_call, round_call


def join(messages: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """``messages`` (on the trace's clock) plus ``call`` — the handler call of a request, the
    ``netlink_dump`` round that sent a dump reply, the handler call that produced any other
    reply of a request (ack, error, single GET) — and ``pid`` (that call's task), −1 where none
    was traced. Where the packets line up better with their calls after
    :func:`clock_residual` (a clock that drifted during the recording), ``ts_s`` is corrected
    by it."""
    pk = packets(messages)
    n_raw, req_call, round_call = _n_joined(pk, calls)
    shift = clock_residual(pk, calls)
    if shift is not None and np.abs(shift).max() > 0:
        pk2 = pk.copy()
        pk2["ts_s"] = pk["ts_s"].to_numpy() + shift
        n_fit, req2, round2 = _n_joined(pk2, calls)
        if n_fit > n_raw:
            per_packet = pd.Series(shift, index=pk.index)
            messages = messages.copy()
            messages["ts_s"] = messages["ts_s"].to_numpy() + per_packet.reindex(
                messages["packet"].to_numpy()).to_numpy()
            pk, req_call, round_call = pk2, req2, round2
    pkt_call = req_call.copy()
    pkt_call[round_call >= 0] = round_call[round_call >= 0]
    # other replies of a request (acks, errors, single GETs): produced inside its handler call;
    # a packet two requests could claim goes to the earlier one
    handled = pk[(pk["direction"] == "to_kernel") & (req_call >= 0)]
    free = pk[(pk["direction"] == "to_user") & (pkt_call < 0)]
    if len(handled) and len(free):
        h = req_call[handled.index].to_numpy()
        reqs = pd.DataFrame({"request": handled.index.to_numpy(), "family": handled["family"],
                             "seq": handled["seq"], "rport": handled["portid"],
                             "start": calls["start_s"].reindex(h).to_numpy() - TOLERANCE_S,
                             "end": calls["end_s"].reindex(h).to_numpy() + TOLERANCE_S,
                             "call": h})
        cand = free[["family", "seq", "portid", "ts_s"]].rename_axis("packet").reset_index()
        m = cand.merge(reqs, on=["family", "seq"])
        m = m[(m["packet"] > m["request"]) & ((m["portid"] == m["rport"]) | (m["rport"] == 0))
              & (m["ts_s"] >= m["start"]) & (m["ts_s"] <= m["end"])]
        m = m.sort_values(["packet", "request"]).drop_duplicates("packet")
        pkt_call[m["packet"].to_numpy()] = m["call"].to_numpy()
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
                "recv_us", "user_us", "slowest_round_us", "slowest_call", "done", "error",
                "verdict"]
ROUND_COLUMNS = ["round", "packet", "call", "start_s", "end_s", "kernel_us", "gap_before_us",
                 "recv_before_us", "user_before_us", "n_messages", "bytes", "first_ifname",
                 "last_ifname", "done"]


def verdict(kernel_us: float, user_us: float, n_traced: int) -> str:
    """``kernel-bound``, ``reader-bound``, ``balanced`` (see :data:`BOUND_RATIO`), or
    ``untraced`` when no round was traced. ``dumps()`` passes the rounds' time plus the
    recvmsg copies as ``kernel_us``."""
    if n_traced == 0:
        return "untraced"
    if user_us >= BOUND_RATIO * kernel_us and user_us > 0:
        return "reader-bound"
    if kernel_us >= BOUND_RATIO * user_us:
        return "kernel-bound"
    return "balanced"


def _packet_table(joined: pd.DataFrame) -> pd.DataFrame:
    """:func:`packets` of a joined table plus, per packet: ``call``, ``n_data`` (messages other
    than ``NLMSG_DONE``), ``first_ifname``/``last_ifname`` among them, ``status`` (the last
    ``NLMSG_DONE``/``NLMSG_ERROR`` code in it)."""
    pk = packets(joined)
    pk["call"] = joined.groupby("packet")["call"].first()
    data = joined[joined["type"] != "NLMSG_DONE"].groupby("packet")
    pk["n_data"] = data.size().reindex(pk.index, fill_value=0)
    pk["first_ifname"] = data["ifname"].first().reindex(pk.index)
    pk["last_ifname"] = data["ifname"].last().reindex(pk.index)
    st = joined[joined["type"].isin(["NLMSG_DONE", "NLMSG_ERROR"])].groupby("packet")["error"]
    pk["status"] = st.last().reindex(pk.index)
    return pk


def _round_table(pt: pd.DataFrame, calls: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """:data:`ROUND_COLUMNS` (+ ``request``) for the (request, packet) ``pairs``."""
    rep = pt.loc[pairs["packet"].to_numpy()]
    call = rep["call"].to_numpy()
    has = call >= 0
    start = rep["ts_s"].to_numpy().copy()
    end = start.copy()
    kernel = np.full(len(rep), np.nan)
    if has.any():
        c = calls.loc[call[has]]
        start[has], end[has] = c["start_s"].to_numpy(), c["end_s"].to_numpy()
        kernel[has] = c["duration_us"].to_numpy()
    # the reader's recvmsg around a later round: before it, the copy of the previous round to
    # user space; after it, the return. Kernel time, but not the dump's: counted apart.
    pre = np.zeros(len(rep))
    post = np.zeros(len(rep))
    if has.any() and "parent" in calls.columns:
        par = calls["parent"].reindex(call[has]).to_numpy()
        ok = par >= 0
        pc = calls.reindex(par[ok])
        is_recv = pc["func"].astype(str).str.startswith("netlink_recvmsg").to_numpy()
        where = np.flatnonzero(has)[ok][is_recv]
        pre[where] = (start[where] - pc["start_s"].to_numpy()[is_recv]) * 1e6
        post[where] = (pc["end_s"].to_numpy()[is_recv] - end[where]) * 1e6
    req = pairs["request"].to_numpy()
    first = np.ones(len(req), dtype=bool)
    first[1:] = req[1:] != req[:-1]
    gap = np.full(len(rep), np.nan)
    gap[1:] = (start[1:] - end[:-1]) * 1e6
    gap[first] = np.nan
    recv = np.full(len(rep), np.nan)
    recv[1:] = np.nan_to_num(pre[1:]) + np.nan_to_num(post[:-1])
    recv[first] = np.nan
    number = np.arange(len(req)) - np.maximum.accumulate(np.where(first, np.arange(len(req)), 0))
    return pd.DataFrame({
        "request": req, "round": number + 1, "packet": rep.index.to_numpy(), "call": call,
        "start_s": start, "end_s": end, "kernel_us": kernel, "gap_before_us": gap,
        "recv_before_us": recv, "user_before_us": gap - recv,
        "n_messages": rep["n_data"].to_numpy(), "bytes": rep["bytes"].to_numpy(),
        "first_ifname": rep["first_ifname"].to_numpy(),
        "last_ifname": rep["last_ifname"].to_numpy(),
        "done": (rep["n_done"] > 0).to_numpy(), "status": rep["status"].to_numpy(),
        "portid": rep["portid"].to_numpy(),
    })


def rounds(joined: pd.DataFrame, calls: pd.DataFrame, request_packet: int) -> pd.DataFrame:
    """One row per round of the dump requested in packet ``request_packet``: ``round`` (1…),
    ``packet``, ``call`` (its ``netlink_dump``, −1 if untraced), ``start_s``/``end_s`` (the
    call's; the packet time when untraced), ``kernel_us`` (the call's duration), ``gap_before_us``
    (µs from the previous round's end to this one's start; NaN for the first), split into
    ``recv_before_us`` (kernel time of the reader's ``netlink_recvmsg`` around the rounds:
    returning after the previous one, copying it to user space before this one) and
    ``user_before_us`` (the rest: user space), ``n_messages`` (without ``NLMSG_DONE``), ``bytes``,
    ``first_ifname``/``last_ifname``, ``done`` (holds ``NLMSG_DONE``)."""
    pt = _packet_table(joined)
    pairs = dump_replies(pt)
    pairs = pairs[pairs["request"] == request_packet]
    return _round_table(pt, calls, pairs)[ROUND_COLUMNS].reset_index(drop=True)


def dumps(joined: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per dump request (index: the request's ``packet``), columns
    :data:`DUMP_COLUMNS`: ``seq``, ``portid`` (the socket's port, from the replies), ``family``,
    ``type`` (``RTM_GETLINK`` …); ``pid``/``comm`` of the requesting task and ``request_call``
    (its handler call; −1/NaN when untraced); ``start_s`` (request) and ``end_s`` (the last
    round's end, or its packet); ``duration_us``; ``n_rounds`` (reply packets); ``n_messages``
    (reply messages without ``NLMSG_DONE``); ``bytes``; ``kernel_us`` (sum of the traced
    rounds' durations); ``recv_us`` (the reader's ``netlink_recvmsg`` time around the rounds:
    copying them to user space); ``user_us`` (the rest of the gaps between rounds: user
    space); ``slowest_round_us`` and
    ``slowest_call`` (its ``netlink_dump`` call, for ``tree``/``critical_path``; −1 if none);
    ``done`` (``NLMSG_DONE`` seen); ``error`` (``NLMSG_DONE``'s status, or the
    ``NLMSG_ERROR`` code); ``verdict`` (:func:`verdict`). Times in seconds on the trace clock,
    durations in µs."""
    pt = _packet_table(joined)
    reqs = _dump_requests(pt)
    r = _round_table(pt, calls, dump_replies(pt))
    traced = r[r["call"] >= 0]
    g = r.groupby("request", sort=False)
    gt = traced.groupby("request", sort=False)
    slow = traced.loc[gt["kernel_us"].idxmax()].set_index("request") if len(traced) else None
    status = r.dropna(subset=["status"]).groupby("request")["status"].last()
    idx = reqs.index
    n_rounds = g.size().reindex(idx, fill_value=0)
    kernel = gt["kernel_us"].sum().reindex(idx, fill_value=0.0)
    recv = g["recv_before_us"].sum().reindex(idx, fill_value=0.0)      # NaN (first) skipped
    user = g["user_before_us"].sum().reindex(idx, fill_value=0.0)
    n_traced = gt.size().reindex(idx, fill_value=0)
    h = reqs["call"].to_numpy()
    has = h >= 0
    pid = np.full(len(h), -1, dtype=np.int64)
    pid[has] = calls["pid"].reindex(h[has]).to_numpy()
    comm = np.full(len(h), np.nan, dtype=object)
    comm[has] = calls["comm"].reindex(h[has]).astype(object).to_numpy()
    end = g["end_s"].last().reindex(idx).fillna(reqs["ts_s"])
    out = pd.DataFrame({
        "seq": reqs["seq"], "portid": g["portid"].first().reindex(idx).fillna(reqs["portid"]),
        "family": reqs["family"], "type": reqs["type"],
        "pid": pid, "comm": comm,
        "request_call": h, "start_s": reqs["ts_s"], "end_s": end,
        "duration_us": (end - reqs["ts_s"]) * 1e6, "n_rounds": n_rounds,
        "n_messages": g["n_messages"].sum().reindex(idx, fill_value=0),
        "bytes": g["bytes"].sum().reindex(idx, fill_value=0),
        "kernel_us": kernel, "recv_us": recv, "user_us": user,
        "slowest_round_us": (slow["kernel_us"].reindex(idx) if slow is not None
                             else pd.Series(np.nan, index=idx)),
        "slowest_call": (slow["call"].reindex(idx).fillna(-1) if slow is not None
                         else pd.Series(-1, index=idx)).astype(np.int64),
        "done": g["done"].any().reindex(idx, fill_value=False).astype(bool),
        "error": status.reindex(idx).astype("Int64"),
        "verdict": [verdict(k + r, u, n) for k, r, u, n in zip(kernel, recv, user, n_traced)],
    }, index=pd.Index(idx, name="packet"), columns=DUMP_COLUMNS)
    out["portid"] = out["portid"].astype(np.int64)
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
    messages = read_pcap(pcap, clock_offset_s=offset)
    if clock_offset_s is None:
        messages = follow_clock(messages, trace.meta, offset)
    return join(messages, trace.calls)
