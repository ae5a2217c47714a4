"""The vectorised fast path (:mod:`ftracekit._fastparse`) and the vectorised linking must give
exactly what the exact per-line parser (:class:`ftracekit.lineparse.LineParser`) and the
sequential stack algorithm (:func:`ftracekit.calltree._link_sequential`) give.

* every real trace we have (``/work/shared/samples``, ``tests/data``, ``bench/data``): records
  column by column (dtype and every value, NaN included), side tables, meta, and the calls /
  events DataFrames — also with tiny blocks and both thread settings;
* generated lines in every layout (hypothesis): random depths, names, modules, durations of
  every width and mark, comm forms, pid 0, return values, comments, other line kinds, and
  mangled / truncated lines — fast == exact, nothing raises;
* ``link_records`` vectorised == sequential on real traces and random record sequences, and the
  O(n) nearest-smaller-depth searches == pointer jumping.
"""

from __future__ import annotations

import lzma
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftracekit.read import _templates as _fastparse   # (the hash tables behind the fast path)
from ftracekit.calltree import _vectorised as ct
from ftracekit.calltree.link import link_records
from ftracekit.calltree.tables import build_tables, fill_tasks, task_keys
from ftracekit.read.text import parse_source, parse_text
from ftracekit.read.records import COLUMNS, K_COMMENT

from ftracekit.read import text as parse_mod

REPO = Path(__file__).resolve().parents[1]
ROOTS = [Path("/work/shared/samples"), REPO / "tests" / "data", REPO / "bench" / "data"]
MAX_EXACT_BYTES = 12 << 20       # the exact parser is slow: bigger real traces are cut


def _real_traces() -> list[Path]:
    out = []
    for root in ROOTS:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and (p.suffix == ".txt" or p.name.endswith((".txt.xz", ".txt.gz"))):
                    out.append(p)
    return out


REAL = _real_traces()


def _text_of(path: Path) -> bytes:
    if path.name.endswith(".xz"):
        data = lzma.open(path).read(MAX_EXACT_BYTES)
    elif path.name.endswith(".gz"):
        import gzip
        data = gzip.open(path).read(MAX_EXACT_BYTES)
    else:
        with open(path, "rb") as f:
            data = f.read(MAX_EXACT_BYTES)
    if len(data) == MAX_EXACT_BYTES:
        data = data[: data.rfind(b"\n") + 1]
    return data


# ---------------------------------------------------------------------------------------------
# Comparison helpers

SIDE = ("funcs", "modules", "comms", "comments", "switches", "lost", "overruns", "args", "retaddr")


def assert_same_records(a, b) -> None:
    assert set(a.cols) == set(b.cols) == set(COLUMNS)
    for name in COLUMNS:
        x, y = a.cols[name], b.cols[name]
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        if x.dtype.kind == "f":
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            # Bit-for-bit: the same float64, not just close.
            same &= np.isnan(x) | (x.view(np.int64) == y.view(np.int64))
        else:
            same = x == y
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            pytest.fail(f"column {name}: first difference at record {i} (line "
                        f"{int(b.cols['line'][i])}): fast {x[i]!r} exact {y[i]!r}")
    for name in SIDE:
        assert getattr(a, name) == getattr(b, name), name


def assert_same_meta(ma: dict, mb: dict) -> None:
    ma = {k: v for k, v in ma.items() if k != "fast_path_lines"}
    mb = {k: v for k, v in mb.items() if k != "fast_path_lines"}
    assert ma == mb


def assert_same_tables(ra, rb) -> None:
    ca, ea, sa = build_tables(ra)
    cb, eb, sb = build_tables(rb)
    pd.testing.assert_frame_equal(ca, cb)
    pd.testing.assert_frame_equal(ea, eb)
    assert sa == sb


def fast_vs_exact_text(text: str) -> None:
    try:
        rb, mb = parse_text(text, fast=False)
    except Exception as err:          # the exact parser's verdict (e.g. NotATraceError) …
        with pytest.raises(type(err)):
            parse_text(text, fast=True)   # … must be the fast path's too
        return
    ra, ma = parse_text(text, fast=True)
    assert_same_records(ra, rb)
    assert_same_meta(ma, mb)
    assert_same_tables(ra, rb)


# ---------------------------------------------------------------------------------------------
# Real traces

@pytest.mark.skipif(not REAL, reason="no real traces found")
@pytest.mark.parametrize("path", REAL, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_real_trace_fast_equals_exact(path, tmp_path):
    data = _text_of(path)
    src = tmp_path / "t.txt"
    src.write_bytes(data)
    rb, mb = parse_source(src, fast=False)
    ra, ma = parse_source(src, fast=True)
    assert_same_records(ra, rb)
    assert_same_meta(ma, mb)
    assert_same_tables(ra, rb)
    # The fast path must really carry the load on big real traces.
    if mb["lines"] > 2000:
        calls = sum(mb["line_kinds"].get(k, 0) for k in ("entry", "leaf", "exit"))
        assert ma["fast_path_lines"] >= 0.9 * calls


@pytest.mark.skipif(not REAL, reason="no real traces found")
@pytest.mark.parametrize("workers", [1, 2])
def test_real_traces_tiny_blocks_and_threads(monkeypatch, tmp_path, workers):
    """Blocks of a few KB (many block boundaries, templates re-derived per block) on one or two
    scanning threads; real traces concatenated (layout changes mid-file)."""
    monkeypatch.setattr(parse_mod, "_SCAN_BYTES", 3000)
    monkeypatch.setattr(parse_mod, "_READ_BYTES", 5000)
    monkeypatch.setattr(parse_mod, "_WORKERS", workers)
    data = b"".join(_text_of(p)[: 1 << 20] for p in REAL[:12])
    src = tmp_path / "all.txt"
    src.write_bytes(data)
    rb, mb = parse_source(src, fast=False)
    ra, ma = parse_source(src, fast=True)
    assert_same_records(ra, rb)
    assert_same_meta(ma, mb)
    assert_same_tables(ra, rb)


def test_threaded_pipeline_is_deterministic(tmp_path):
    """Several MB through two scanning threads (1 MB blocks): same result as the exact path."""
    sample = REPO / "tests" / "data" / "shared" / "rtnl_trace_pipe.txt"
    data = sample.read_bytes() * 40          # ~12 MB, ~180k lines
    src = tmp_path / "big.txt"
    src.write_bytes(data)
    rb, mb = parse_source(src, fast=False)
    for _ in range(2):
        ra, ma = parse_source(src, fast=True)
        assert_same_records(ra, rb)
        assert_same_meta(ma, mb)
        assert ma["fast_path_lines"] > 0.99 * mb["lines"]


@pytest.mark.skipif(not REAL, reason="no real traces found")
@pytest.mark.parametrize("path", REAL[:20], ids=lambda p: p.name)
def test_real_trace_linking_vectorised_equals_sequential(path, tmp_path):
    src = tmp_path / "t.txt"
    src.write_bytes(_text_of(path)[: 3 << 20])
    recs, _ = parse_source(src)
    pid, _ = fill_tasks(recs)
    task = task_keys(pid, recs["cpu"])
    args = (recs["kind"], recs["depth"], recs["func"], recs["module"], task)
    a = link_records(*args)
    b = link_records(*args, force_sequential=True)
    for k in ("is_start", "exit_of", "parent", "owner", "n_tasks"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    ca, ea, _ = build_tables(recs)
    cb, eb, _ = build_tables(recs, force_sequential=True)
    pd.testing.assert_frame_equal(ca, cb)
    pd.testing.assert_frame_equal(ea, eb)


# ---------------------------------------------------------------------------------------------
# Generated lines in every layout

NAMES = ["do_sys_open", "getname", "kmem_cache_alloc", "finish_task_switch.isra.0",
         "foo.constprop.0", "bar.part.0", "baz.cold", "a", "b_c", "__x64_sys_sendmsg",
         "x" * 29, "y" * 31, "very_long_function_name_" * 3, "z" * 100, "q" * 140,
         "f$weird:chars", "fünc", "tab\tname", "ns::op", "a.b.c.d"]
MODULES = ["virtio_ring", "9pnet", "nf_tables", "kvm", "m", "x" * 20]
COMMS = ["ip", "bash", "kworker", "(udev-w", "<...>", "<idle>", "a b", "x-y", "sh", "a-1-2",
         "", "longcommname"]
MARKS = [(1e9, "$"), (1e8, "@"), (1e7, "*"), (1e6, "#"), (1e5, "!"), (1e4, "+")]
LATS = ["d..1", "...1.", "dNh2.", "d.s.", "X"]


def kernel_duration(ns: int) -> str:
    """The duration column exactly as trace_print_graph_duration prints it (mark included)."""
    usecs, nsecs = divmod(ns, 1000)
    s = str(usecs)
    if len(s) < 7:
        s += "." + f"{nsecs:03d}"[: 7 - len(s)]
    mark = " "
    for limit, m in MARKS:
        if ns > limit:
            mark = m
            break
    body = f"{mark} {s} us "
    return body + " " * max(0, 14 - len(body)) + "|  "


def proc_col(comm: str, pid: int) -> str:
    s = f"{comm[:7]}-{pid}"
    pad = max(0, 14 - len(s))
    return " " * (pad // 2) + s + " " * (pad - pad // 2) + " | "


def header_for(lay: dict) -> str:
    parts = []
    if lay["abstime"]:
        parts.append("    TIME     ")
    if lay["reltime"]:
        parts.append("  REL TIME  ")
    if lay["cpu"]:
        parts.append("CPU")
    if lay["proc"]:
        parts.append("TASK/PID      ")
    if lay["lat"]:
        parts.append("||||")
    if lay["duration"]:
        parts.append("DURATION       ")
    return "# tracer: function_graph\n#\n# " + " ".join(parts) + "   FUNCTION CALLS\n#\n"


@st.composite
def bodies(draw):
    name = draw(st.sampled_from(NAMES))
    mod = draw(st.sampled_from([None, None, None] + MODULES))
    full = name + (f" [{mod}]" if mod else "")
    kind = draw(st.sampled_from(["entry", "leaf", "exit", "tail", "exit_ret", "leaf_ret",
                                 "comment", "args", "retaddr", "oldtail", "tcdepth", "junk",
                                 "args_leaf", "args_struct", "args_odd"]))
    ret = draw(st.sampled_from(["0x0", "-22", "0xffffffffffffffea", "0x7f", "1", "-4095"]))
    new = draw(st.booleans())
    return {
        "entry": f"{full}() {{",
        "leaf": f"{full}();",
        "exit": "}",
        "tail": f"}} /* {full} */",
        "exit_ret": (f"}} /* {full} ret={ret} */" if new else f"}} /* {full} = {ret} */"),
        "leaf_ret": (f"{full}(); /* ret={ret} */" if new else f"{full}(); /* = {ret} */"),
        "comment": draw(st.one_of(
            st.just(f"/* kfree_skb: skbaddr={ret} reason: NOT_SPECIFIED */"),
            # every shape of the exact parser's ``/\* ?(.*?)(?: ?\*/)?$``: empty, no closing,
            # a closing that overlaps the opening, spaces around it, text after it, long
            st.sampled_from(["/**/", "/* */", "/*  */", "/*/", "/*", "/* x*/", "/*x */",
                             "/* a */ b", "/* ü ( ) */", "/* net_dev_queue: dev=lo */  ",
                             "/* " + "skbaddr=ff17 " * 14 + "*/"]),
            st.text(alphabet=" */(){}ab\tü", max_size=16).map(lambda t: "/*" + t))),
        "args": f"{name}(skb=0xffff, len={ret}) {{",
        # funcgraph-args (6.15+): leaves with return values, structs, more than 6 words, and
        # shapes the exact parser rejects or reads greedily (parens inside, unbalanced)
        "args_leaf": (f"{full}(skb=0xff3c863e829a2800, reason={ret}); /* ret={ret} */" if new
                      else f"{full}(sk=0x0, skb=0xff3c863e829a2b00, reason=3);"),
        "args_struct": f"{name}(ts=(STRUCT)[0x1:0x2], dif=1, x=?0x9, ...) {{",
        "args_odd": draw(st.sampled_from([f"{name}(a=(b) {{", f"{name}(a=1)) {{", f"{name}(a) ;",
                                          f"{name}((x);", f"{name}(a=1); /* (x) */",
                                          f"{name}(a=1) {{ /* <-f+0x1/0x2 */"])),
        "retaddr": f"{full}() {{ /* <-caller+0x6c/0xb0 */",
        "oldtail": f"}} ({name})",
        "tcdepth": f"{full}(); (3)",
        "junk": draw(st.text(alphabet=" (){};/*[]#|.-abc01\t", min_size=1, max_size=12)),
    }[kind]


@st.composite
def prefixes(draw, lay: dict, sec_digits: int, cpu_width: int):
    s = ""
    if lay["abstime"]:
        sec = draw(st.integers(0, 10 ** sec_digits - 1))
        s += f"{sec:5d}.{draw(st.integers(0, 999999)):06d} |  "
    if lay["reltime"]:
        s += f"{draw(st.integers(0, 10**10)):9d} us |  "
    if lay["cpu"]:
        s += f" {draw(st.integers(0, 10 ** cpu_width - 1)):>{cpu_width}d}) "
    if lay["proc"]:
        pid = draw(st.sampled_from([0, 1, 42, 398, 4194304, 99999999, 123]))
        s += proc_col(draw(st.sampled_from(COMMS)), pid)
    if lay["lat"]:
        s += f" {draw(st.sampled_from(LATS))} | "
    if lay["duration"]:
        if draw(st.integers(0, 3)) == 0:
            s += " " * 14 + "|  "
        else:
            ns = draw(st.one_of(st.integers(0, 99999), st.integers(0, 10**8),
                                st.integers(0, 2 * 10**11), st.sampled_from(
                                    [1, 999, 1000, 9999999, 10000000, 99999999999, 100000001000,
                                     1560141, 33998590, 119760200, 3594274000])))
            s += kernel_duration(ns)
    return s


MANGLE = ["cut", "char", "insert", "cr", "dup", "swapdigit", "tabs", "nul", "utf8"]


def mangle(line: str, op: str, k: int) -> list[str]:
    if not line:
        return [line]
    i = k % len(line)
    if op == "cut":
        return [line[:i]]
    if op == "char":
        return [line[:i] + " |.#\t(x9é)"[k % 10] + line[i + 1:]]
    if op == "insert":
        return [line[:i] + "| .0"[k % 4] + line[i:]]
    if op == "cr":
        return [line + "\r"]
    if op == "dup":
        return [line, line]
    if op == "swapdigit":
        return [line.replace("0", "o", 1)]
    if op == "tabs":
        return [line.replace("  ", "\t", 1)]
    if op == "nul":
        return [line[:i] + "\x00" + line[i:]]
    return [line[:i] + "ü" + line[i:]]


OTHER = [" " + "-" * 42, "", " 1)    sh-1    =>    ip-407   ", "CPU:1 [LOST 12 EVENTS]",
         "CPU:0 [LOST EVENTS]", " (Overruns: 3)", " 0)   ==========> |", " 0)   <========== |",
         "#### CPU 1 buffer started ####", "# a comment line", "garbage line"]


@st.composite
def traces(draw):
    lay = {k: draw(st.booleans()) for k in ("abstime", "reltime", "cpu", "proc", "lat",
                                             "duration")}
    sec_digits = draw(st.sampled_from([1, 5, 6, 7]))
    cpu_width = draw(st.sampled_from([1, 1, 2, 3]))
    lines = []
    depth = 0
    for _ in range(draw(st.integers(1, 40))):
        r = draw(st.integers(0, 19))
        if r == 0:
            lines.append(draw(st.sampled_from(OTHER)))
            continue
        depth = max(0, depth + draw(st.sampled_from([-2, -1, -1, 0, 0, 1, 1, 1, 3])))
        line = (draw(prefixes(lay, sec_digits, cpu_width)) + "  " * depth
                + draw(st.sampled_from(["", "", "", " "])) + draw(bodies()))
        if draw(st.integers(0, 6)) == 0:
            lines.extend(mangle(line, draw(st.sampled_from(MANGLE)), draw(st.integers(0, 999))))
        else:
            lines.append(line)
    header = header_for(lay) if draw(st.booleans()) else ""
    return header + "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(traces())
@example(text="     ip-0      |  d..1 |               |  do_sys_open() {\n"
              "     ip-0      |  d..1 |               |  (")  # a '(' and no ')' in the block
def test_generated_lines_fast_equals_exact(text):
    fast_vs_exact_text(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_regular_traces_in_every_layout(data):
    """Many well-formed lines per layout (the fast path's home ground), all accepted by it."""
    lay = {k: data.draw(st.booleans()) for k in ("abstime", "reltime", "cpu", "proc", "lat",
                                                  "duration")}
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    lines = []
    depth = 0
    for _ in range(200):
        d = max(0, depth + rnd.choice([-1, 0, 1]))
        name = rnd.choice(NAMES[:12])
        body = rnd.choice([f"{name}() {{", f"{name}();", "}", f"}} /* {name} */"])
        pre = ""
        if lay["abstime"]:
            pre += f"{rnd.randrange(100000):5d}.{rnd.randrange(10**6):06d} |  "
        if lay["reltime"]:
            pre += f"{rnd.randrange(10**9):9d} us |  "
        if lay["cpu"]:
            pre += f" {rnd.randrange(4)}) "
        if lay["proc"]:
            pre += proc_col(rnd.choice(COMMS[:8]), rnd.choice([0, 12, 398, 4021]))
        if lay["lat"]:
            pre += " d..1 | "
        if lay["duration"]:
            pre += (" " * 14 + "|  ") if body.endswith("{") else kernel_duration(
                rnd.choice([rnd.randrange(10**4), rnd.randrange(10**7), rnd.randrange(10**10)]))
        lines.append(pre + "  " * d + body)
        depth = d
    text = header_for(lay) + "\n".join(lines) + "\n"
    fast_vs_exact_text(text)
    _, meta = parse_text(text, fast=True)
    if any(lay.values()):
        assert meta["fast_path_lines"] >= 190


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 * 10**11))
def test_duration_values_are_bit_exact(ns):
    """Every duration width the kernel prints parses to float(text) exactly on the fast path."""
    field = kernel_duration(ns)
    text = "".join(f" 0) {field}  leaf{i}();\n" for i in range(3))
    recs, meta = parse_text(text, fast=True)
    printed = field[2:].split(" us")[0]
    if meta["fast_path_lines"]:
        assert recs["dur"][0] == float(printed)
        assert recs["dur"].view(np.int64)[0] == np.float64(float(printed)).view(np.int64)
    fast_vs_exact_text(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**8 - 1), st.integers(0, 999999))
def test_abstime_values_are_bit_exact(sec, usec):
    text = f"{sec:5d}.{usec:06d} |   0)   1.000 us    |  a();\n" * 2
    recs, meta = parse_text(text, fast=True)
    assert meta["fast_path_lines"] == 2
    assert recs["ts"][0] == float(f"{sec}.{usec:06d}")
    fast_vs_exact_text(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_fast_equals_exact(data):
    fast_vs_exact_text(data.decode("utf-8", "surrogateescape"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" |(){};/*!+#$@-0123456789.abcus[]x=>\n\r\t")),
               max_size=500))
def test_random_trace_like_text_fast_equals_exact(text):
    fast_vs_exact_text(text)


def test_numbers_of_every_shape_in_the_duration_column():
    """Shapes the kernel never prints but the regex accepts (or rejects): fast == exact."""
    numbers = ["0", "1.", "12.", "1.5", "123.4567", "99999999", "123456789", ".5", "1..2",
               "1.2.3", "00.001", "12345678", "1234567.", "0.0000001"]
    lines = []
    for num in numbers:
        for mark in " +!#*@$%":
            body = f"{mark} {num} us "
            col = body + " " * max(0, 14 - len(body)) + "|  "
            lines.append(f" 0) {col}leaf();")
            lines.append(f" 0) {mark} {num} us |  leaf();")
    fast_vs_exact_text("\n".join(lines) + "\n")


def test_fast_path_handles_the_common_lines():
    text = (" 1)   <...>-398    |               |  rtnetlink_rcv() {\n"
            " 1)   <...>-398    |   4.667 us    |    irq_enter_rcu [mod]();\n"
            " 1)     ip-398     | ! 118.427 us  |    } /* rtnetlink_rcv */\n"
            " 1)     ip-398     | $ 3594274 us  |  }\n")
    recs, meta = parse_text(text)
    assert meta["fast_path_lines"] == 4
    assert list(recs["dur"][1:]) == [4.667, 118.427, 3594274.0]
    fast_vs_exact_text(text)


def test_table_collisions_are_resolved_by_bytes(monkeypatch):
    """A hash that puts everything in one slot: distinct bodies must still not be mixed up."""
    monkeypatch.setattr(_fastparse, "_MULTS", [np.uint64(0)] * 8)
    monkeypatch.setattr(_fastparse._Table, "_slots",
                        staticmethod(lambda h, bits: np.zeros(len(h), dtype=np.intp)))
    text = "".join(f" 0)   1.000 us    |  f{i % 7}_{'x' * (i % 40)}();\n" for i in range(300))
    fast_vs_exact_text(text)


# ---------------------------------------------------------------------------------------------
# Linking: vectorised == sequential

@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 2, 3]), st.integers(0, 12),
                          st.integers(0, 6), st.integers(-1, 4), st.integers(-1, 2)),
                max_size=120),
       st.booleans())
def test_linking_random_records_with_jumps_tasks_modules(recs, bigjumps):
    if not recs:
        return
    kind = np.array([r[0] for r in recs], dtype=np.int8)
    depth = np.array([(r[1] * (7 if bigjumps and r[1] % 5 == 0 else 1)) if r[0] != 3 else -1
                      for r in recs], dtype=np.int16)
    task = np.array([r[2] - 3 for r in recs], dtype=np.int64)     # negative keys too
    func = np.array([r[3] for r in recs], dtype=np.int32)
    module = np.array([r[4] for r in recs], dtype=np.int32)
    a = link_records(kind, depth, func, module, task)
    b = link_records(kind, depth, func, module, task, force_sequential=True)
    for k in ("is_start", "exit_of", "parent", "owner", "n_tasks"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=1, max_size=80), st.integers(1, 4),
       st.integers(0, 10**6))
def test_nearest_smaller_searches_equal_pointer_jumping(steps, n_tasks, seed):
    rng = np.random.default_rng(seed)
    D = np.maximum(np.cumsum(steps), 0).astype(np.int32)
    m = len(D)
    T = np.sort(rng.integers(0, n_tasks, size=m))
    first = np.ones(m, dtype=bool)
    first[1:] = T[1:] != T[:-1]
    last = np.ones(m, dtype=bool)
    last[:-1] = first[1:]
    at = np.flatnonzero(rng.random(m) < 0.6)
    assert np.array_equal(ct._prev_smaller(D, first), ct._prev_smaller_jump(D, first))
    assert np.array_equal(ct._prev_smaller(D, first, at), ct._prev_smaller_jump(D, first)[at])
    for strict in (True, False):
        full = ct._next_smaller_jump(D, last, strict)
        assert np.array_equal(ct._next_smaller(D, last, strict), full)
        assert np.array_equal(ct._next_smaller(D, last, strict, at), full[at])


def test_nearest_smaller_huge_jumps_fall_back():
    D = np.array([0, 60000, 0, 60000, 1] * 50, dtype=np.int32)
    first = np.zeros(len(D), dtype=bool)
    first[0] = True
    last = np.zeros(len(D), dtype=bool)
    last[-1] = True
    assert np.array_equal(ct._prev_smaller(D, first), ct._prev_smaller_jump(D, first))
    assert np.array_equal(ct._next_smaller(D, last, True), ct._next_smaller_jump(D, last, True))


def test_stable_argsort_of_task_keys():
    rng = np.random.default_rng(0)
    for hi in (3, 500, 5_000_000, 2**40):
        keys = rng.integers(-20, hi, size=5000)
        assert np.array_equal(ct._stable_argsort(keys), np.argsort(keys, kind="stable"))


# ---------------------------------------------------------------------------------------------
# Bugs found on the way

def test_hash_mark_first_column_is_a_call_not_a_header():
    """funcgraph-cpu/-proc/-abstime off: a 1-10 ms call's line starts with its "#" overhead mark
    (found by the generated-lines test: the exact parser used to drop these as header lines)."""
    text = ("# tracer: function_graph\n#\n# DURATION                  FUNCTION CALLS\n"
            "# |   |                     |   |   |   |\n"
            "               |  a() {\n"
            "# 1560.141 us  |    b();\n"
            "  3.204 us     |    c();\n"
            "# 1589.976 us  |  }\n")
    import ftracekit
    c = ftracekit.parse(text).calls
    assert list(c["func"]) == ["a", "b", "c"]
    assert list(c["duration_us"]) == [1589.976, 1560.141, 3.204]
    assert list(c["parent"]) == [-1, 0, 0]
    assert (c["status"] == "complete").all()
    fast_vs_exact_text(text)


def test_template_from_a_wider_proc_column_does_not_shift_the_duration():
    """Found by the generated-lines test: a line whose comm-pid is one column narrower than the
    template's must not be read with a space of its duration column in the proc window."""
    sep = " " + "-" * 42 + "\n"
    text = ("        0 us |        ip-0      |               |  a() {\n" + sep + "\n"
            + "        0 us |       ip-0      |               |  b() {\n" * 2 + sep * 3
            + "        0 us |       ip-0      |    0.000 us    |    c(); /* = 1 */")
    fast_vs_exact_text(text)
    fast_vs_exact_text(text + "\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 10**6), st.booleans()),
                max_size=200))
def test_roots_and_interrupts_by_depth_equal_pointer_jumping(spec):
    """Roots / interrupt context computed in one pass down the depths == pointer jumping ==
    the compiled chain walk (``ftracekit/_cext.c``, when built). A parent is shallower than its
    child and may come before or after it (a call whose entry was lost starts at its exit)."""
    from ftracekit import _native

    n = len(spec)
    depth = np.array([d for d, _, _ in spec], dtype=np.int16)
    flag = np.array([f for _, _, f in spec], dtype=bool)
    parent = np.full(n, -1, dtype=np.int64)
    for i, (d, r, _) in enumerate(spec):
        cands = np.flatnonzero(depth < d)
        if len(cands) and r % 3:
            parent[i] = cands[r % len(cands)]
    compiled = _native.ENABLED
    try:
        _native.ENABLED = False
        a = ct._roots_and_interrupts(parent, depth, flag)
        b = ct._roots_and_interrupts(parent, np.zeros_like(depth), flag)   # forces the fallback
    finally:
        _native.ENABLED = compiled
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    if compiled:
        c = ct._roots_and_interrupts(parent, depth, flag)
        assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
        assert (a[0].dtype, a[1].dtype) == (c[0].dtype, c[1].dtype)


def test_task_before_the_first_switch_gets_its_comm():
    """Without funcgraph-proc, calls before a CPU's first switch block belong to the task it
    switched away from: its pid was filled in but its comm was left empty when that name was
    never printed as a switch target (found while reviewing fill_tasks)."""
    import ftracekit
    text = (" 0)               |  a() {\n"
            " 0)   1.000 us    |  }\n"
            " ------------------------------------------\n"
            " 0)    sh-249     =>     ip-407    \n"
            " ------------------------------------------\n"
            "\n"
            " 0)               |  b() {\n"
            " 0)   2.000 us    |  }\n")
    c = ftracekit.parse(text).calls
    assert list(c["pid"]) == [249, 407]
    assert list(c["comm"]) == ["sh", "ip"]
    fast_vs_exact_text(text)


# ---------------------------------------------------------------------------------------------
# Trace-event lines (events-only text, trace-cmd report): the column-wise event scanner

EVENT_NAMES = ["net_dev_queue", "kfree_skb", "consume_skb", "sched_switch", "print",
               "funcgraph_entry", "funcgraph_exit", "napi_gro_receive_entry", "a:b", "x"]
EVENT_REST = ["dev=lo skbaddr=ffff888104d1d500 len=1042", "skbaddr=00000000dcbed83e "
              "rx_sk=0000000000000000 protocol=2048 location=udp_queue_rcv_one_skb+0x3c/0x4a0 "
              "reason: NO_SOCKET", "", "   |  rtnetlink_rcv() {", "x: y", "tab\there", "ü=1 "]


@st.composite
def event_lines(draw):
    comm = draw(st.sampled_from(COMMS + ["python3", "a_very_long_command_name_xx", "[k]w"]))
    pid = draw(st.sampled_from([0, 7, 20357, 1234567, 12345678]))
    cpu = draw(st.sampled_from(["000", "1", "012", "0001"]))
    tgid = draw(st.sampled_from(["", "", "(  123) ", "(-------) "]))
    flags = draw(st.sampled_from(["b.... ", "..s1. ", "d.h2. ", "", "", "d..1 "]))
    sec = draw(st.integers(0, 99999999))
    frac = draw(st.sampled_from(["{:06d}", "{:03d}", "{:09d}", "{:01d}"])).format(
        draw(st.integers(0, 999)))
    name = draw(st.sampled_from(EVENT_NAMES))
    rest = draw(st.sampled_from(EVENT_REST))
    sep = draw(st.sampled_from([": ", ": ", ":", ":  ", ": \t"]))
    tail = draw(st.sampled_from(["", "", " ", "   ", "\r"]))
    line = (f"{comm:>16}-{pid:<7} {tgid}[{cpu}] {flags}{sec:>6}.{frac}{sep}{name}: {rest}{tail}")
    if draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, max(len(line) - 1, 0)))
        line = line[:i] + draw(st.sampled_from(["", " ", "]", ":", "#", "\x00"])) + line[i + 1:]
    return line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_lines(), min_size=1, max_size=40), st.booleans())
def test_generated_event_lines_fast_equals_exact(lines, header):
    head = "# tracer: nop\n#\n" if header else ""
    fast_vs_exact_text(head + "\n".join(lines) + "\n")


def test_event_lines_take_the_fast_path():
    lines = [f"         python3-20357   [00{i % 2}] b....   855.{226629 + i:06d}: net_dev_queue: "
             f"dev=lo skbaddr=ffff888104d1d{i:03x} len=1042" for i in range(300)]
    text = "# tracer: nop\n#\n" + "\n".join(lines) + "\n"
    recs, meta = parse_text(text, fast=True)
    assert meta["fast_path_lines"] == 300
    assert recs.comments[3] == "net_dev_queue: dev=lo skbaddr=ffff888104d1d000 len=1042"
    assert recs.flags[3] == "b...."
    assert recs["ts"][1] == 855.226630 and recs["cpu"][1] == 1 and recs["pid"][1] == 20357
    fast_vs_exact_text(text)


def test_inline_events_of_a_graph_trace_take_the_fast_path():
    """``/* event: fields */`` lines (``record --packets``: millions of them) are read column-wise,
    their texts as the exact parser takes them."""
    lines = []
    for i in range(300):
        lines.append(f"  236.{882316 + 2 * i:06d} |   1)   python-217   |               |  "
                     f"/* net_dev_queue: dev=lo skbaddr=ff1790bc8336{i:04x} len=1042 */")
        lines.append(f"  236.{882317 + 2 * i:06d} |   1)   python-217   |   0.250 us    |  "
                     "kfree_skb(skb=0xff1790bc83360200);")
    text = "\n".join(lines) + "\n"
    recs, meta = parse_text(text, fast=True)
    assert meta["fast_path_lines"] == 600
    assert recs.comments[3] == "net_dev_queue: dev=lo skbaddr=ff1790bc83360001 len=1042"
    assert recs["kind"][2] == K_COMMENT and recs["depth"][2] == -1 and recs["pid"][2] == 217
    assert recs["ts"][2] == 236.882318 and np.isnan(recs["dur"][2])
    fast_vs_exact_text(text)
