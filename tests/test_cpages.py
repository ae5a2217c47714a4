"""The compiled helpers (``ftracekit/_cext.c``) against the numpy code they replace.

The page walk: both reduce blocks of ring-buffer pages to the same stream columns; the records
(every column, the rendered non-graph events, the meta) must be identical on real captures, on
random pages with graph event ids, and with field layouts other than the x86-64 one (32-bit
function addresses, fields at other offsets in the exit event, retval on). The joining of
entries with their exits: the same entries on random streams of events. (The roots of the
call tree: ``tests/test_fastparse.py``, beside its two numpy forms.)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftracekit import _native
from ftracekit.read import _pairs, rawtrace
from ftracekit.read.tracedat import load_tracedat

HERE = Path(__file__).parent
CAP = HERE / "data" / "raw-6.17" / "rtnl_capture"
DAT = HERE / "data" / "tracecmd-6.17" / "rtnl_v7_zstd.dat"
BENCH_DAT = HERE.parent / "bench" / "data" / "fg_1m.dat"
FORMATS = rawtrace._read_formats(CAP)
SYMBOLS = rawtrace._read_symbols(CAP)
GRAPH_IDS = [f.id for f in FORMATS.values() if f.name in ("funcgraph_entry", "funcgraph_exit")]


def test_the_compiled_walk_is_built():
    """``./run test`` installs a C compiler, so there the extension must exist (elsewhere the
    numpy walk serves, and the tests below compare nothing)."""
    if not _native.ENABLED and os.environ.get("FTRACEKIT_STRICT") != "1":
        pytest.skip("ftracekit._cext not built (no C compiler at install)")
    assert _native.ENABLED and _native.native is not None


needs_compiled = pytest.mark.skipif(not _native.ENABLED, reason="_cext not built")


def _with(compiled: bool, fn, *args, **kw):
    old = _native.ENABLED
    _native.ENABLED = compiled
    try:
        return fn(*args, **kw)
    finally:
        _native.ENABLED = old


def assert_same(a, b) -> None:
    """Two (records, meta) results are identical."""
    (ra, ma), (rb, mb) = a, b
    assert sorted(ra.cols) == sorted(rb.cols)
    for k in ra.cols:
        x, y = np.asarray(ra.cols[k]), np.asarray(rb.cols[k])
        assert x.dtype == y.dtype, k
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
    assert (ra.funcs, ra.modules, ra.comms) == (rb.funcs, rb.modules, rb.comms)
    assert ra.comments == rb.comments
    assert ma == mb


def both_ways(fn, *args, **kw):
    """``fn`` run with the numpy walk and with the compiled one: the same result, returned."""
    a = _with(False, fn, *args, **kw)
    assert_same(a, _with(True, fn, *args, **kw))
    return a


@needs_compiled
def test_real_captures_decode_alike():
    recs, meta = both_ways(rawtrace.load_capture, CAP)
    assert meta["line_kinds"]["comment"] > 0           # (skb:kfree_skb events: rendered alike)
    pytest.importorskip("zstandard")
    recs, meta = both_ways(lambda: load_tracedat(DAT.read_bytes(), DAT.name))
    assert len(recs.cols["ts"]) > 1000


@needs_compiled
def test_the_benchmark_dat_decodes_alike():
    pytest.importorskip("zstandard")
    if not BENCH_DAT.exists():
        pytest.skip(f"{BENCH_DAT} missing")
    recs, meta = both_ways(lambda: load_tracedat(BENCH_DAT.read_bytes(), BENCH_DAT.name))
    assert meta["events_decoded"] == 1825346 and len(recs.cols["ts"]) == 1094258


def _decode_blobs(blobs, formats=FORMATS, retval=False):
    return rawtrace.decode_records("g", blobs, page_size=4096, formats=formats,
                                   symbols=SYMBOLS, cmdlines={1: "one"}, retval_on=retval)


def _pages(seed: int, n_pages: int, plausible: bool, ids: list[int]) -> bytes:
    """Random pages; ``plausible``: sizes, loss flags, every kind of header, and graph event
    ids in many payloads."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 256, 4096 * n_pages, dtype=np.uint8).view(np.uint32)
    if plausible:
        w.reshape(n_pages, 1024)[:, 2] = rng.integers(0, 4081, n_pages) | (
            rng.integers(0, 4, n_pages).astype(np.uint32) << 30)
        w[4::7] = (w[4::7] & ~np.uint32(31)) | rng.choice(
            [1, 2, 5, 6, 7, 10, 0, 29, 30, 31], len(w[4::7])).astype(np.uint32)
    sel = rng.integers(0, len(w), len(w) // 8)
    w[sel] = (w[sel] & np.uint32(0xFFFF0000)) | rng.choice(ids, len(sel)).astype(np.uint32)
    return w.tobytes()


@needs_compiled
@pytest.mark.parametrize("seed", range(40))
def test_random_pages_decode_alike(seed):
    blob = _pages(seed, 1 + seed % 5, seed % 3 != 0, GRAPH_IDS)
    both_ways(_decode_blobs, [(0, blob), (3, blob[::-1])])


def _layout(func_size: int, exit_shift: int, depth_size: int, retval: bool) -> dict:
    """The capture's formats with another layout of the graph fields: ``func_size`` 4 (a
    32-bit kernel) or 8, the exit's fields moved by ``exit_shift`` bytes, depth of
    ``depth_size`` bytes, a ``retval`` field in the exit."""
    out = dict(FORMATS)
    for i, fmt in FORMATS.items():
        if fmt.name not in ("funcgraph_entry", "funcgraph_exit"):
            continue
        fields = {}
        shift = exit_shift if fmt.name == "funcgraph_exit" else 0
        off = 8 + shift
        for name in ("func", "depth") + (("calltime", "rettime", "overrun") if
                                         fmt.name == "funcgraph_exit" else ()):
            f = fmt.fields[name]
            size = func_size if name == "func" else depth_size if name == "depth" else f.size
            fields[name] = dataclasses.replace(f, offset=off, size=size,
                                               signed=name == "depth")
            off += size
        if retval and fmt.name == "funcgraph_exit":
            fields["retval"] = dataclasses.replace(fmt.fields["func"], name="retval",
                                                   offset=off, size=8, signed=True)
        common = {k: v for k, v in fmt.fields.items() if k.startswith("common_")}
        out[i] = dataclasses.replace(fmt, fields={**common, **fields})
    return out


@needs_compiled
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_pages=st.integers(1, 4),
       plausible=st.booleans(), func_size=st.sampled_from([4, 8]),
       exit_shift=st.sampled_from([0, 1, 4, 6]), depth_size=st.sampled_from([1, 2, 4, 8]),
       retval=st.booleans())
def test_other_field_layouts_decode_alike(seed, n_pages, plausible, func_size, exit_shift,
                                          depth_size, retval):
    formats = _layout(func_size, exit_shift, depth_size, retval)
    blob = _pages(seed, n_pages, plausible, GRAPH_IDS)
    both_ways(_decode_blobs, [(0, blob), (1, blob[: len(blob) // 2])], formats, retval)


@needs_compiled
def test_the_real_capture_with_retval_and_a_32_bit_layout_decodes_alike():
    """The capture's own pages read with other layouts: fields read from other offsets."""
    blobs = [(int(f.stem[3:]), f.read_bytes()) for f in sorted(CAP.glob("cpu*.raw"))]
    for func_size, shift, depth_size, retval in [(8, 0, 4, True), (4, 4, 2, False),
                                                 (8, 6, 8, True)]:
        both_ways(_decode_blobs, blobs, _layout(func_size, shift, depth_size, retval), retval)


@needs_compiled
def test_bad_arguments_are_errors_not_crashes():
    c = _native.native
    kind_of = np.zeros(1 << 16, dtype=np.int8)
    cols = [np.zeros(4, dt) for dt in (np.int64, np.int8, np.int32, np.int16, np.float64)]
    func = np.zeros(4, dtype=np.int32)
    field = (8, 8, False)
    fields = (field, field, (16, 4, True), (16, 4, True), None, None, None)
    page, codes = bytes(4096), c.codes()

    def run(pages=page, need=(20, 20), outs=cols, f=func, table=codes, slot=0):
        return c.decode(pages, 4096, kind_of, need, fields, *outs, None, f, table, slot)

    assert run()[0] == 0
    with pytest.raises(ValueError):          # a field outside the payload its kind needs
        run(need=(12, 20))
    with pytest.raises(ValueError):          # outputs of the wrong item size
        run(f=cols[0])
    with pytest.raises(ValueError):          # a negative CPU slot
        run(slot=-1)
    w = np.zeros(1024, dtype=np.uint32)
    w[2] = 4000
    w[4::3] = 2                               # data events of 8 bytes
    with pytest.raises(ValueError):          # more events than the outputs hold
        run(pages=w.tobytes())
    with pytest.raises(TypeError):
        run(f="func")
    with pytest.raises(ValueError):          # not a table of codes
        run(table=object())
    assert c.codes_keys(codes) == b"" and c.codes_seen(codes, 5) == b""


@needs_compiled
def test_the_table_of_codes_numbers_addresses_as_first_seen():
    """Graph events of two CPUs: each address gets the next code when first seen; each CPU
    slot notes the codes its entries (1) and exits (2) used."""
    c = _native.native
    kind_of = np.full(1 << 16, 3, dtype=np.int8)
    kind_of[7], kind_of[9] = 0, 2                      # entry, exit (K_ENTRY, K_EXIT)
    fields = ((8, 8, False), (8, 8, False), (16, 4, False), (16, 4, False), None, None, None)

    def page(events):
        w = np.zeros(1024, dtype=np.uint32)
        at = 4
        for etype, addr in events:                    # 5 payload words: 20 bytes
            w[at] = 5 | (10 << 5)
            w[at + 1] = etype
            w[at + 2] = 100                           # pid
            w[at + 3], w[at + 4] = addr & 0xFFFFFFFF, addr >> 32
            at += 6
        w[2] = (at - 4) * 4
        return w.tobytes()

    codes = c.codes()
    outs = [np.zeros(64, dt) for dt in (np.int64, np.int8, np.int32, np.int16, np.float64)]
    func = np.zeros(64, dtype=np.int32)
    a, b = 0xFFFFFFFF81000010, 0xFFFFFFFF81000020
    n, others, lost = c.decode(page([(7, a), (9, a), (7, b), (5, 0)]), 4096, kind_of, (20, 20),
                               fields, *outs, None, func, codes, 0)
    assert n == 4 and func[:4].tolist() == [0, 0, 1, -1] and len(others) == 1
    n, _, _ = c.decode(page([(9, b), (7, 0x1234)]), 4096, kind_of, (20, 20), fields, *outs,
                       None, func, codes, 2)
    assert func[:2].tolist() == [1, 2]
    assert np.frombuffer(c.codes_keys(codes), np.uint64).tolist() == [a, b, 0x1234]
    assert list(c.codes_seen(codes, 0)) == [3, 1, 0]
    assert list(c.codes_seen(codes, 1)) == [0, 0, 0]
    assert list(c.codes_seen(codes, 2)) == [0, 2, 1]


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(data=st.data(), n_cpus=st.integers(1, 4), piece=st.sampled_from([1, 2, 3, 7, 1 << 18]),
       negative=st.booleans())
def test_joinable_entries_alike(data, n_cpus, piece, negative):
    """Random streams of entries and exits (few pids, functions and depths: many candidate
    pairs, tasks moving between CPUs, pid 0 per CPU), time order a stable sort of random
    times (in order within each CPU, or not); judged in pieces of ``piece`` events."""
    sizes = [data.draw(st.integers(0, 40)) for _ in range(n_cpus)]
    n = sum(sizes)
    if not n:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    kind = rng.choice(np.array([0, 2, 2, 3], dtype=np.int8), n)
    pid = rng.integers(-2 if negative else 0, 4, n).astype(np.int32)
    depth = rng.integers(0, 2, n).astype(np.int16)
    func = rng.integers(0, 2, n).astype(np.int32)
    span = data.draw(st.sampled_from([3, 30]))          # (3: many ties)
    ts = np.concatenate([rng.integers(0, span, k) for k in sizes])
    if data.draw(st.booleans()):         # (in order within each CPU, as a kernel writes them)
        ts = np.concatenate([np.sort(t) for t in np.split(ts, np.cumsum(sizes)[:-1])])
    order = np.argsort(ts, kind="stable")
    bounds = np.cumsum([0] + sizes)
    segments = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_pairs, "_PIECE", piece)
        got = _with(True, _pairs.joinable_entries, order, kind, pid, depth, func, segments)
        want = _with(False, _pairs.joinable_entries, order, kind, pid, depth, func, segments)
    assert got.tolist() == want.tolist()
    assert got.dtype == want.dtype or not len(got)


@needs_compiled
def test_joinable_bad_arguments_are_errors():
    c = _native.native
    z = np.zeros(4, dtype=np.int64)
    args = (z, np.zeros(4, np.int8), np.zeros(4, np.int32), np.zeros(4, np.int16),
            np.zeros(4, np.int32))
    ok = np.zeros(4, dtype=np.uint8)
    c.joinable(*args, np.array([4]), 8, ok)
    with pytest.raises(ValueError):                   # bounds that do not end at n
        c.joinable(*args, np.array([3]), 8, ok)
    with pytest.raises(ValueError):                   # an order out of range
        c.joinable(np.array([0, 1, 2, 9]), *args[1:], np.array([4]), 8, ok)
    with pytest.raises(ValueError):                   # a pid the kernel never gives
        c.joinable(args[0], args[1], np.array([0, 0, 0, 1 << 23], np.int32), *args[3:],
                   np.array([4]), 8, ok)


@needs_compiled
def test_roots_refuses_cycles_and_bad_parents():
    c = _native.native
    root, flag = np.zeros(3, np.int64), np.zeros(3, np.uint8)
    assert not c.roots(np.array([1, 2, 0]), root, flag)          # a cycle
    assert not c.roots(np.array([-1, 7, 0]), root, flag)         # out of range
    assert c.roots(np.array([-1, 0, 1]), root, np.array([1, 0, 0], np.uint8))
    assert root.tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        c.roots(np.array([-1, 0]), root, flag)


@needs_compiled
def test_merge_order_and_join_bad_arguments():
    c = _native.native
    ts = np.array([1, 5, 2, 3], dtype=np.int64)
    order = np.zeros(4, dtype=np.int64)
    assert c.merge_order(ts, np.array([2, 4]), order) and order.tolist() == [0, 2, 3, 1]
    assert not c.merge_order(ts, np.array([4]), order)          # a CPU's times go back
    for his in ([3], [3, 2, 4], []):                            # not ascending to n
        with pytest.raises(ValueError):
            c.merge_order(ts, np.array(his, dtype=np.int64), order)
    ok, kept = np.zeros(4, np.uint8), np.zeros(4, np.uint8)
    kind, dur = np.zeros(4, np.int8), np.zeros(4)
    with pytest.raises(ValueError):                             # an order out of range
        c.join(ok, kind, dur, None, np.array([0, 1, 2, 4]), kept)
    ok[1] = 1                                                   # 1 joined with 2
    dur[2] = 7.5
    order = np.array([0, 1, 2, 3])
    assert c.join(ok, kind, dur, None, order, kept) == 3
    assert order[:3].tolist() == [0, 1, 3] and kept.tolist() == [1, 1, 0, 1]
    assert kind[1] == 1 and dur[1] == 7.5                       # K_LEAF, the exit's duration
