"""Property tests: generated traces (well-formed and mangled) never make the parser raise an
unexpected exception, and the call-tree invariants hold."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftracekit
from ftracekit.calltree.link import link_records
from ftracekit.calltree.tables import fill_tasks, task_keys
from ftracekit.read.text import parse_text

NAMES = ["do_sys_open", "getname", "kmem_cache_alloc", "finish_task_switch.isra.0",
         "nft_do_chain", "foo.constprop.0", "__x64_sys_sendmsg", "rtnl_fill_ifinfo", "a", "b_c"]


def fmt_dur(us: float) -> str:
    """Duration column exactly as trace_print_graph_duration + print_graph_duration print it."""
    ns = int(round(us * 1000))
    usecs, nsecs = divmod(ns, 1000)
    s = str(usecs)
    if len(s) < 7:
        s += "." + f"{nsecs:03d}"[: 7 - len(s)]
    mark = " "
    for limit, m in ((1e9, "$"), (1e8, "@"), (1e7, "*"), (1e6, "#"), (1e5, "!"), (1e4, "+")):
        if ns > limit:
            mark = m
            break
    body = f"{mark} {s} us "
    return body + " " * max(0, 14 - len(body)) + "|  "


def proc_col(comm: str, pid: int) -> str:
    s = f"{comm[:7]}-{pid}"
    pad = max(0, 14 - len(s))
    return " " * (pad // 2) + s + " " * (pad - pad // 2) + " | "


def gen_tree(rnd: random.Random, depth: int, max_depth: int) -> dict:
    n_kids = rnd.choice([0, 0, 1, 2, 3]) if depth < max_depth else 0
    kids = [gen_tree(rnd, depth + 1, max_depth) for _ in range(n_kids)]
    self_us = rnd.choice([0.1, 0.313, 1.5, 12.0, 150.25, 2500.5])
    return {"name": rnd.choice(NAMES), "kids": kids,
            "dur": round(self_us + sum(k["dur"] for k in kids), 3)}


def render(tree: dict, depth: int, prefix: str, out: list[str], tail: bool) -> None:
    ind = "  " * depth
    if not tree["kids"]:
        out.append(f"{prefix}{fmt_dur(tree['dur'])}{ind}{tree['name']}();")
        return
    out.append(f"{prefix}{' ' * 14}|  {ind}{tree['name']}() {{")
    for k in tree["kids"]:
        render(k, depth + 1, prefix, out, tail)
    close = f"}} /* {tree['name']} */" if tail else "}"
    out.append(f"{prefix}{fmt_dur(tree['dur'])}{ind}{close}")


def gen_trace(seed: int, proc: bool, tail: bool, n_roots: int) -> tuple[str, list[dict]]:
    rnd = random.Random(seed)
    lines: list[str] = []
    roots = []
    for i in range(n_roots):
        t = gen_tree(rnd, 0, rnd.choice([1, 3, 6]))
        roots.append(t)
        pid = rnd.choice([100, 2000, 0])
        prefix = f" {rnd.choice([0, 1])}) " + (proc_col(rnd.choice(["ip", "kworker", "a b", "x-y"]), pid)
                                               if proc else "")
        render(t, 0, prefix, lines, tail)
    return "\n".join(lines) + "\n", roots


def check_invariants(t: ftracekit.Trace) -> None:
    c = t.calls
    n = len(c)
    assert list(c.index) == list(range(n))
    parent = c["parent"].to_numpy()
    depth = c["depth"].to_numpy()
    has = parent >= 0
    assert (parent[has] < n).all()
    # A parent is shallower than its child — or at the same depth when the child is an
    # interrupt printed at the depth of the call whose measured time holds it (late exit).
    dp, dc = depth[parent[has]], depth[has]
    assert (dp <= dc).all()
    assert c["in_irq"].to_numpy()[has][dp == dc].all()
    # Children fit in their parent's duration (interrupts are not counted twice).
    sums = np.bincount(parent[has], weights=np.nan_to_num(c["duration_us"].to_numpy()[has]),
                       minlength=n)
    assert not (sums > np.nan_to_num(c["duration_us"].to_numpy(), nan=np.inf) + 2.0).any()
    # n_children counts the children.
    assert np.array_equal(np.bincount(parent[has], minlength=n), c["n_children"].to_numpy())
    # The root of a call has no parent, and is its own root.
    root = c["root"].to_numpy()
    assert (parent[root] == -1).all()
    assert (root[root] == root).all()
    # self = duration - sum(children durations).
    dur = c["duration_us"].to_numpy()
    kids = np.bincount(parent[has], weights=np.nan_to_num(dur[has]), minlength=n)
    ok = ~np.isnan(dur)
    assert np.allclose(c["self_us"].to_numpy()[ok], dur[ok] - kids[ok])
    # Status is consistent with the kind of call.
    st = c["status"].astype(str).to_numpy()
    assert set(st) <= {"complete", "no-exit", "no-entry"}


def check_vectorised_equals_sequential(text: str) -> None:
    try:
        recs, _ = parse_text(text)
    except ftracekit.FtracekitError:
        return
    pid, _ = fill_tasks(recs)
    task = task_keys(pid, recs["cpu"])
    args = (recs["kind"], recs["depth"], recs["func"], recs["module"], task)
    for dur in (None, recs["dur"]):
        a = link_records(*args, dur=dur)
        b = link_records(*args, force_sequential=True, dur=dur)
        for k in ("is_start", "exit_of", "parent", "owner", "interrupt"):
            assert np.array_equal(getattr(a, k), getattr(b, k)), k


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), proc=st.booleans(), tail=st.booleans(), n=st.integers(1, 6))
def test_well_formed_traces_round_trip(seed, proc, tail, n):
    text, roots = gen_trace(seed, proc, tail, n)
    t = ftracekit.parse(text)
    check_invariants(t)
    c = t.calls
    assert (c["status"] == "complete").all()
    assert (c["self_us"] >= -1e-6).all()
    r = t.roots()
    assert len(r) == n
    assert np.allclose(r["duration_us"].to_numpy(), [x["dur"] for x in roots])
    # Without untraced frames in between, a parent is exactly one level up.
    par = c["parent"].to_numpy()
    has = par >= 0
    assert (c["depth"].to_numpy()[par[has]] == c["depth"].to_numpy()[has] - 1).all()
    check_vectorised_equals_sequential(text)


MANGLERS = ["drop", "cut", "garbage", "dup", "swap", "lost", "switch", "comment", "blank"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), proc=st.booleans(), tail=st.booleans(),
       ops=st.lists(st.tuples(st.sampled_from(MANGLERS), st.integers(0, 10**6)), max_size=8))
def test_mangled_traces_never_raise_and_keep_invariants(seed, proc, tail, ops):
    text, _ = gen_trace(seed, proc, tail, 3)
    lines = text.splitlines()
    for op, k in ops:
        if not lines:
            break
        i = k % len(lines)
        if op == "drop":
            del lines[i]
        elif op == "cut":
            lines[i] = lines[i][: k % (len(lines[i]) + 1)]
        elif op == "garbage":
            lines.insert(i, "".join(chr(32 + (k * 7 + j) % 95) for j in range(k % 40)))
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "lost":
            lines.insert(i, f"CPU:{k % 4} [LOST {k} EVENTS]")
        elif op == "switch":
            lines[i:i] = [" " + "-" * 42, f" {k % 2})    sh-1    =>    ip-{k % 5000}", " " + "-" * 42, ""]
        elif op == "comment":
            lines.insert(i, f" 0)               |  /* kfree_skb: reason: NO_SOCKET {k} */")
        elif op == "blank":
            lines.insert(i, "")
    mangled = "\n".join(lines) + ("\n" if seed % 2 else "")
    try:
        t = ftracekit.parse(mangled)
    except ftracekit.FtracekitError:
        return
    check_invariants(t)
    check_vectorised_equals_sequential(mangled)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_unexpected(data):
    try:
        ftracekit.load(__import__("io").BytesIO(data))
    except ftracekit.FtracekitError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" |(){};/*!+#-0123456789.abcusx=>\n")), max_size=300))
def test_random_trace_like_text_never_raises_unexpected(text):
    try:
        t = ftracekit.parse(text)
    except ftracekit.FtracekitError:
        return
    check_invariants(t)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), st.integers(0, 6), st.integers(0, 2),
                          st.integers(-1, 3), st.sampled_from([np.nan, 0.5, 3.0, 100.0])),
                max_size=60))
def test_linking_vectorised_equals_sequential_on_random_records(recs):
    """Random record sequences (kinds entry/leaf/exit/comment, depths, tasks, exit names,
    durations — which decide whether a late entry line adopts the calls before it)."""
    if not recs:
        return
    kind = np.array([r[0] for r in recs], dtype=np.int8)
    depth = np.array([r[1] if r[0] != 3 else -1 for r in recs], dtype=np.int16)
    task = np.array([r[2] for r in recs], dtype=np.int64)
    func = np.array([r[3] for r in recs], dtype=np.int32)
    dur = np.array([r[4] for r in recs], dtype=np.float64)
    module = np.full(len(recs), -1, dtype=np.int32)
    for d in (None, dur):
        a = link_records(kind, depth, func, module, task, dur=d)
        b = link_records(kind, depth, func, module, task, force_sequential=True, dur=d)
        for k in ("is_start", "exit_of", "parent", "owner", "interrupt"):
            assert np.array_equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("us", [0.001, 0.313, 9.999, 10.0, 61.77, 118.427, 1560.141, 33998.59,
                                119760.2, 3594274.0, 12345678.0])
def test_generator_durations_parse_back(us):
    field = fmt_dur(us)
    printed = field.split("us")[0].split()[-1]          # the number exactly as printed
    t = ftracekit.parse(f" 0) {field}x();\n")
    assert t.calls["duration_us"].iloc[0] == float(printed)
    assert math.isclose(t.calls["duration_us"].iloc[0], us, rel_tol=1e-6, abs_tol=0.06)
