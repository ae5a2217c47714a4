"""The binary ring-buffer decoder against the kernel's own text for the same events.

tests/data/raw-6.17/rtnl_capture holds per_cpu/cpuN/trace_pipe_raw pages read on a Debian
6.17 kernel right after `cat trace` saved rtnl_capture.trace.txt (tracing stopped, so both
hold the same events): rtnetlink_rcv graphs around `ip -d link show` / `ip addr show` with
20 dummy links, plus skb:kfree_skb events. kallsyms is pruned to the symbols the capture uses.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import ftracekit
from ftracekit.read.rawtrace import Symbols, decode_cpu, is_capture, load_capture, parse_format

DATA = Path(__file__).parent / "data" / "raw-6.17"
CAP = DATA / "rtnl_capture"


@pytest.fixture(scope="module")
def both():
    return ftracekit.load(CAP), ftracekit.load(DATA / "rtnl_capture.trace.txt")


def test_capture_is_recognised():
    assert is_capture(CAP)
    assert not is_capture(DATA)


def test_same_calls_as_the_kernels_text(both):
    raw, text = both
    a, b = raw.calls, text.calls
    assert len(a) == len(b) == 5054
    assert (a["status"] == "complete").all() and (b["status"] == "complete").all()
    for col in ("func", "depth", "pid", "cpu", "exit_cpu", "parent", "root", "n_children"):
        assert list(a[col].astype(str) if col == "func" else a[col]) == \
            list(b[col].astype(str) if col == "func" else b[col]), col
    # The text prints durations in ns with 3 decimals (fewer above 10 ms); the raw data is exact.
    assert np.allclose(a["duration_us"], b["duration_us"], rtol=1e-6, atol=5e-4)
    # The text truncates timestamps to µs.
    assert np.all(np.abs(a["start_s"].to_numpy() - b["start_s"].to_numpy()) < 1.5e-6)


def test_events_rendered_like_the_kernel(both):
    raw, text = both
    assert list(raw.events["event"].astype(str)) == list(text.events["event"].astype(str))
    assert len(raw.events) == 9
    last = raw.events["text"].iloc[-1]
    # The kernel prints "location=__udp4_lib_rcv+0x23b/0xd70 reason: NO_SOCKET" (and hashes %p).
    assert "location=__udp4_lib_rcv+0x23b" in last and last.endswith("reason: NO_SOCKET")
    assert list(raw.events["pid"]) == list(text.events["pid"])


def test_comm_from_saved_cmdlines(both):
    raw, _ = both
    # Full comm from the kernel's cmdline cache (the text has it cut to 7 characters).
    assert "(udev-worker)" in set(raw.calls["comm"].astype(str))


def test_parse_format():
    f = parse_format((CAP / "formats/ftrace/funcgraph_exit/format").read_text(), "ftrace")
    assert (f.name, f.id) == ("funcgraph_exit", 10)
    assert f.fields["calltime"].offset == 24 and f.fields["calltime"].size == 8
    assert f.fields["depth"].type == "unsigned int"


def _page(events: list[bytes], ts: int, flags: int = 0, missed: int | None = None) -> bytes:
    data = b"".join(events)
    commit = len(data) | flags
    page = struct.pack("<QQ", ts, commit) + data
    if missed is not None:
        page += struct.pack("<q", missed)
    return page + b"\0" * (4096 - len(page))


def _ev(payload: bytes, delta: int) -> bytes:
    assert len(payload) % 4 == 0
    n = len(payload) // 4
    if n <= 28:
        return struct.pack("<I", n | (delta << 5)) + payload
    return struct.pack("<II", 0 | (delta << 5), len(payload) + 4) + payload


def test_decode_handcrafted_pages():
    p1 = _page([_ev(b"A" * 8, 5),
                struct.pack("<II", 30 | (3 << 5), 2),          # time extend: +(2<<27)+3
                _ev(b"B" * 120, 7),                             # > 112 bytes: length word
                struct.pack("<II", 29 | (4 << 5), 12) + b"\0" * 8,   # discarded event (padding)
                _ev(b"C" * 8, 1)], ts=1000)
    p2 = _page([_ev(b"D" * 12, 2), struct.pack("<II", 29, 0)], ts=5000,
               flags=(1 << 31) | (1 << 30), missed=17)
    ev = decode_cpu(p1 + p2, cpu=3)
    assert list(ev.length) == [8, 120, 8, 12]
    assert list(ev.ts) == [1005, 1005 + (2 << 27) + 3 + 7, 1005 + (2 << 27) + 3 + 7 + 4 + 1, 5002]
    assert ev.data[ev.offset[1]:ev.offset[1] + 3].tobytes() == b"BBB"
    assert ev.lost == [(3, 17)]


def test_empty_and_garbage_raw_do_not_crash():
    assert len(decode_cpu(b"", 0).offset) == 0
    rng = np.random.default_rng(1)
    for _ in range(20):
        blob = rng.integers(0, 256, 4096 * 3, dtype=np.uint8).tobytes()
        ev = decode_cpu(blob, 0)
        assert (ev.offset + ev.length <= len(blob)).all()


KALLSYMS_LINES = """\
ffffffff81000000 T _stext
ffffffff81001000 t do_one_initcall
ffffffff81002000 D some_data
ffffffff81003000 W weak_func.isra.0
0000000000000000 T hidden_without_root
ffffffffc0201000 t dummy_xmit\t[dummy]
ffffffffc0202000 T dummy_init_one\t[dummy]
ffffffffc0203000 t ftrace_trampoline\t[__builtin__ftrace]
"""


@pytest.mark.parametrize("text, fast", [
    (KALLSYMS_LINES, True), (KALLSYMS_LINES.encode(), True),
    (KALLSYMS_LINES.replace("\n", " \n"), False), (KALLSYMS_LINES.replace("\n", "\r\n"), False),
    (KALLSYMS_LINES.replace("T _stext", "T  _stext"), False),
])
def test_kallsyms_symbols(text, fast):
    sym = Symbols.from_kallsyms(text)
    assert (type(sym) is not Symbols) == fast     # the numpy parser, or the line-by-line one
    addrs = np.array([0xffffffff81000000, 0xffffffff81001010, 0xffffffff81002008,
                      0xffffffff81003000, 0xffffffffc0201004, 0xffffffffc0202000,
                      0xffffffffc0203100, 0x1000], dtype=np.uint64)
    names, mods, off = sym.lookup(addrs)
    assert names == ["_stext", "do_one_initcall", "do_one_initcall", "weak_func.isra.0",
                     "dummy_xmit", "dummy_init_one", "ftrace_trampoline", "0x1000"]
    assert mods == [None, None, None, None, "dummy", "dummy", "__builtin__ftrace", None]
    assert list(off[:7]) == [0, 0x10, 0x1008, 0, 4, 0, 0x100]
    assert len(sym.addrs) == 6          # data symbols and address 0 are not kept


def test_kallsyms_of_the_real_capture_names_every_call():
    import gzip

    text = gzip.decompress((CAP / "kallsyms.gz").read_bytes())
    fast, slow = Symbols.from_kallsyms(text), Symbols.from_kallsyms(b"junk\n" + text)
    assert type(fast) is not type(slow)           # numpy parser vs the line-by-line fallback
    assert (fast.addrs == slow.addrs).all() and len(fast.addrs) == 798
    probe = np.concatenate([fast.addrs, fast.addrs + np.uint64(3)])
    assert fast.lookup(probe)[:2] == slow.lookup(probe)[:2]


def test_vectorised_walk_equals_its_sequential_definition():
    from ftracekit.read._pages import walk_pages, walk_pages_sequential

    def same(words):
        a, b = walk_pages(words, 4096), walk_pages_sequential(words, 4096)
        return (np.array_equal(a.word, b.word) and np.array_equal(a.length, b.length)
                and np.array_equal(a.ts, b.ts) and a.lost == b.lost)

    for f in sorted(CAP.glob("cpu*.raw")):
        assert same(np.frombuffer(f.read_bytes(), np.uint32))
    rng = np.random.default_rng(3)
    for i in range(200):
        w = rng.integers(0, 256, 4096 * 3, dtype=np.uint8).view(np.uint32)
        if i % 2:   # plausible pages: sizes, loss flags, every kind of header
            w.reshape(3, 1024)[:, 2] = rng.integers(0, 4081, 3) | (
                rng.integers(0, 4, 3).astype(np.uint32) << 30)
            w[4::7] = (w[4::7] & ~np.uint32(31)) | rng.choice(
                [1, 2, 5, 10, 0, 29, 30, 31], len(w[4::7])).astype(np.uint32)
        assert same(w), i


def test_garbage_pages_with_graph_event_ids_do_not_crash():
    from ftracekit.read import rawtrace

    formats = rawtrace._read_formats(CAP)
    ids = [f.id for f in formats.values() if f.name in ("funcgraph_entry", "funcgraph_exit")]
    rng = np.random.default_rng(5)
    for _ in range(50):
        blob = rng.integers(0, 256, 4096 * int(rng.integers(1, 5)), dtype=np.uint8)
        w = blob.view(np.uint32)
        sel = rng.integers(0, len(w), 200)
        w[sel] = (w[sel] & np.uint32(0xFFFF0000)) | rng.choice(ids, 200).astype(np.uint32)
        rawtrace.decode_records("g", [(0, blob.tobytes()), (1, blob[::-1].tobytes())],
                                page_size=4096, formats=formats,
                                symbols=rawtrace._read_symbols(CAP), cmdlines={})


def test_retval_field_is_decoded_as_before(tmp_path, monkeypatch):
    """With funcgraph-retval on, the exits' retval field goes into the records (here a
    declared ``retval`` overlaying ``rettime``, as the capture has none): without joining
    entry/exit pairs into leaves, the digests of all record columns are those of the decoder
    before issue 13's rewrite of the block step; joined leaves carry their exit's value."""
    import hashlib
    import json
    import shutil

    from ftracekit.calltree import build_tables
    from ftracekit.read import K_EXIT, K_LEAF
    from ftracekit.read import _decode as dec_mod

    cap = tmp_path / "cap"
    shutil.copytree(CAP, cap)
    fmt = cap / "formats" / "ftrace" / "funcgraph_exit" / "format"
    rettime = "\tfield:unsigned long long rettime;\toffset:32;\tsize:8;\tsigned:0;\n"
    fmt.write_text(fmt.read_text().replace(
        rettime, rettime + "\tfield:long retval;\toffset:32;\tsize:8;\tsigned:1;\n"))
    info = json.loads((cap / "capture.json").read_text())
    info["options"] = {"funcgraph-retval": True}
    (cap / "capture.json").write_text(json.dumps(info))
    joined, _ = load_capture(cap)
    with monkeypatch.context() as m:
        m.setattr(dec_mod, "join_mask", lambda order, kind, *a: np.zeros(len(kind), np.uint8))
        recs, _ = load_capture(cap)
    got = {k: hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()[:10]
           for k, v in recs.cols.items() if k in ("retval", "has_ret", "dur", "kind", "func")}
    assert got == {"retval": "997a397155", "has_ret": "9194562b29", "dur": "722db39378",
                   "kind": "0da3c7c8b9", "func": "62f6841568"}
    exits = recs.cols["kind"] == K_EXIT
    assert (recs.cols["retval"][~exits] == 0).all() and recs.cols["retval"][exits].any()
    ret = np.isin(joined.cols["kind"], [K_EXIT, K_LEAF])
    assert np.array_equal(joined.cols["has_ret"], ret)
    assert (joined.cols["retval"][~ret] == 0).all() and joined.cols["retval"][ret].any()
    a, b = build_tables(joined)[0], build_tables(recs)[0]
    assert a["retval"].equals(b["retval"]) and a["retval"].notna().any()
