"""Datasets (issue 14): streaming conversion equals load, DuckDB and Dask analyses equal
Trace's, and the reliability rules (refuse/append, versions, interrupted conversions).

All on the real captures in tests/data; windows of a few dozen lines force many cuts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ftracekit
from ftracekit.cli import main
from ftracekit.dataset.stream import StreamStats, stream_tables
from ftracekit.errors import FtracekitError, InputError

pytest.importorskip("pyarrow")
pytest.importorskip("duckdb")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.txt*")
                  if p.suffix in (".txt", ".xz") and "netlink" not in p.name)
DEFAULT = DATA / "6.1.0-56-amd64" / "default_trace.txt"
PIPE = DATA / "shared" / "rtnl_trace_pipe.txt"
NEW = DATA / "6.17.13+deb13-amd64" / "default_trace.txt"
SWITCHES = DATA / "6.1.0-56-amd64" / "switch_noproc.txt"


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals (each window has its own) and strings as objects."""
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, (pd.CategoricalDtype, pd.StringDtype)):
            df[c] = df[c].astype(object)
    return df


def _loads(path: Path) -> ftracekit.Trace | None:
    try:
        return ftracekit.load(path)
    except FtracekitError:
        return None


@pytest.mark.parametrize("name", CAPTURES)
def test_streaming_gives_exactly_the_tables_of_load(name):
    path = DATA / name
    trace = _loads(path)
    if trace is None:
        pytest.skip("not a loadable text capture")
    st = StreamStats()
    pieces = list(stream_tables(path, window_lines=37, max_window_lines=10**7, stats=st))
    assert st.forced_cuts == 0
    assert st.calls == len(trace.calls) and st.events == len(trace.events)
    if trace.meta["lines"] > 400:
        assert st.windows > 3                # really cut, and carried over
    calls = pd.concat([_plain(p[0]) for p in pieces]) if pieces else _plain(trace.calls[:0])
    events = pd.concat([_plain(p[1]) for p in pieces]) if pieces else _plain(trace.events[:0])
    pd.testing.assert_frame_equal(calls, _plain(trace.calls), check_index_type=False)
    pd.testing.assert_frame_equal(events.reset_index(drop=True), _plain(trace.events),
                                  check_index_type=False)


def test_a_window_too_small_for_a_call_grows_then_is_forced_and_counted():
    # rtnl_trace_pipe's netlink dump stays open for ~1,600 lines
    st = StreamStats()
    n = sum(len(c) for c, _ in stream_tables(PIPE, window_lines=64, stats=st))
    assert st.forced_cuts > 0 and st.max_window_lines <= 8 * 64 + 64
    grown = StreamStats()
    list(stream_tables(PIPE, window_lines=64, max_window_lines=10**7, stats=grown))
    assert grown.forced_cuts == 0 and grown.max_window_lines > 1000 and n >= grown.calls


def test_stream_rejects_a_tiny_window_and_an_empty_file(tmp_path):
    with pytest.raises(InputError, match="at least 16"):
        list(stream_tables(DEFAULT, window_lines=3))
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        list(stream_tables(tmp_path / "empty.txt"))


# -- binary captures: trace.dat and record --raw directories ---------------------------------

DAT_ZSTD = DATA / "tracecmd-6.17" / "rtnl_v7_zstd.dat"
DAT_XZ = DATA / "tracecmd-6.17" / "rtnl_v6_events.dat.xz"
RAW = DATA / "raw-6.17" / "rtnl_capture"
BINARY = [DAT_ZSTD, DAT_XZ, RAW]


@pytest.fixture
def small_blocks(monkeypatch):
    """Pages decoded 2 at a time (8 KB blocks): many blocks per CPU, merged as they come."""
    import ftracekit.read._decode as dec
    import ftracekit.read.tracedat as td
    monkeypatch.setattr(dec, "BLOCK_BYTES", 8192)
    monkeypatch.setattr(td, "BLOCK_BYTES", 8192)


@pytest.mark.parametrize("path", BINARY, ids=lambda p: p.name)
def test_binary_pages_merge_into_the_records_load_decodes(path, small_blocks, monkeypatch):
    """The merged pages are the records of a whole load before its leaves are joined
    (an entry and its exit in one record, see read._pairs); the tables are compared in
    the next test."""
    import ftracekit.read._decode as dec
    from ftracekit.dataset.binsource import open_pages
    from ftracekit.dataset.pagemerge import MergeStats, merged_records
    from ftracekit.read import load_capture, load_tracedat, open_source

    monkeypatch.setattr(dec, "join_mask", lambda order, kind, *a: np.zeros(len(kind), np.uint8))
    if path.is_dir():
        recs, _ = load_capture(path)
    else:
        src = open_source(path)
        recs, _ = load_tracedat(src.stream.read(), src.name)
        src.close()
    ps = open_pages(path)
    st = MergeStats()
    try:
        chunks = list(merged_records(ps, chunk_events=500, stats=st))
    finally:
        ps.close()
    assert st.blocks > 2 and len(chunks) > 2 and st.late_events == 0
    names = {"func": "funcs", "module": "modules", "comm": "comms"}
    for col, want in recs.cols.items():
        if col == "end_ts":                 # (the exit times of joined leaves: none here)
            assert np.isnan(want).all()
            continue
        got = pd.concat([pd.Series(c.cols[col]) for c in chunks], ignore_index=True)
        want = pd.Series(want)
        if col in names:
            got = pd.concat([pd.Series(c.cols[col]).map(dict(enumerate(getattr(c, names[col]))))
                             for c in chunks], ignore_index=True)
            want = want.map(dict(enumerate(getattr(recs, names[col]))))
        pd.testing.assert_series_equal(got, want, check_names=False, obj=col)
    assert {k: v for c in chunks for k, v in c.comments.items()} == recs.comments


@pytest.mark.parametrize("path", BINARY, ids=lambda p: p.name)
def test_streaming_a_binary_capture_gives_exactly_the_tables_of_load(path, small_blocks):
    trace = ftracekit.load(path)
    st = StreamStats()
    pieces = list(stream_tables(path, window_lines=100, max_window_lines=10**7, stats=st))
    assert st.forced_cuts == 0 and st.windows > 3
    assert st.lines == trace.meta["lines"]
    calls = pd.concat([_plain(p[0]) for p in pieces])
    pd.testing.assert_frame_equal(calls, _plain(trace.calls), check_index_type=False)
    if len(trace.events):
        events = pd.concat([_plain(p[1]) for p in pieces])
        pd.testing.assert_frame_equal(events.reset_index(drop=True), _plain(trace.events),
                                      check_index_type=False)


def test_convert_a_dat_and_a_raw_capture_holds_the_calls_of_load(tmp_path):
    root = tmp_path / "bin"
    ftracekit.convert([DAT_ZSTD, DAT_XZ, RAW], root, tags={"host": "vm"}, window_lines=300,
                      max_window_lines=10**7)
    assert not list(root.rglob(".ftracekit-unpacked-*"))       # (the .xz's scratch copy)
    ds = ftracekit.open_dataset(root)
    assert list(ds.inputs["trace"]) == ["rtnl_v7_zstd.dat", "rtnl_v6_events.dat.xz",
                                        "rtnl_capture"]
    keys = ds.tag_keys
    for path in BINARY:
        trace = ftracekit.load(path)
        got = ds.sql("SELECT * FROM calls WHERE trace = ? ORDER BY call", [path.name])
        got = got.drop(columns=keys).set_index("call")
        want = _plain(trace.calls)
        want["status"] = want["status"].astype(str)
        pd.testing.assert_frame_equal(_plain(got), want, check_index_type=False,
                                      check_dtype=False)
        sub = ds.select(trace=path.name)
        pd.testing.assert_frame_equal(sub.top(None), trace.top(None))
        ev = ds.sql("SELECT count(*) AS n FROM events WHERE trace = ?", [path.name])
        assert int(ev["n"].iloc[0]) == len(trace.events)


def test_cli_converts_a_raw_capture_and_refuses_a_plain_directory(tmp_path, capsys):
    root = str(tmp_path / "ds")
    assert main(["convert", str(RAW), "-o", root]) == 0
    n = len(ftracekit.load(RAW).calls)
    assert f"{n:,} calls" in capsys.readouterr().out
    assert main(["convert", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not a raw capture" in err and len(err.strip().splitlines()) == 1


def test_a_truncated_dat_is_a_clear_error_and_leaves_nothing(tmp_path):
    import lzma

    blob = DAT_ZSTD.read_bytes()
    (tmp_path / "cut.dat.xz").write_bytes(lzma.compress(blob[:len(blob) // 2]))
    (tmp_path / "cut.dat").write_bytes(blob[:len(blob) - 5000])
    for name in ("cut.dat.xz", "cut.dat"):
        with pytest.raises(InputError, match="truncated trace.dat") as err:
            ftracekit.convert(tmp_path / name, tmp_path / "ds")
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.dat", "cut.dat.xz"]


# -- packets on a dataset ------------------------------------------------------------------

PACKET_CAPTURES = [DATA / "6.18-events" / "udp_tbf_raw.txt",
                   DATA / "6.17.13+deb13-amd64" / "packets_udp_tbf.txt",
                   DATA / "6.17.13+deb13-amd64" / "kfree_skb_events.txt",
                   DATA / "6.17.13+deb13-amd64" / "funcgraph_args_retval_proc.txt",
                   DATA / "6.17.13+deb13-amd64" / "tcp_reset_events.txt"]


@pytest.fixture(scope="module")
def packet_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("pk") / "ds"
    ftracekit.convert(PACKET_CAPTURES, root, tags={"host": "vm"}, window_lines=40,
                      max_window_lines=10**7)
    ftracekit.convert(DEFAULT, root, tags={"host": "nopk"}, append=True)
    return root


def test_dataset_packets_equal_trace_packets(packet_ds):
    ds = ftracekit.open_dataset(packet_ds)
    whole = ds.packets()
    assert list(whole.columns[-2:]) == ["host", "trace"]
    n = 0
    for path in PACKET_CAPTURES:
        trace = ftracekit.load(path)
        part = ds.select(trace=path.name)
        for kw in ({}, {"dropped": True}, {"dev": "lo"}):
            want = trace.packets(**kw)
            got = part.packets(**kw).drop(columns=["host", "trace"])
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
        n += len(trace.packets())
    assert len(whole) == n >= 40
    assert (whole["trace"] == "udp_tbf_raw.txt").sum() == 17


def test_dataset_packets_and_dumps_say_what_is_missing(packet_ds):
    from ftracekit.net.packets import NoPacketsError

    ds = ftracekit.open_dataset(packet_ds)
    with pytest.raises(NoPacketsError, match="skbaddr"):
        ds.select(host="nopk").packets()
    with pytest.raises(FtracekitError, match="not netlink messages"):
        ds.dumps()


# -- a fleet: three inputs, two hosts --------------------------------------------------------

@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet") / "ds"
    ftracekit.convert([DEFAULT, PIPE], root, tags={"host": "a", "kernel": "6.1"},
                      window_lines=50, max_window_lines=10**7)
    ftracekit.convert(NEW, root, tags={"host": "b", "kernel": "6.17"}, append=True,
                      window_lines=50, max_window_lines=10**7)
    return root


def test_the_dataset_lists_its_inputs_with_tags(fleet):
    ds = ftracekit.open_dataset(fleet)
    inp = ds.inputs
    assert list(inp["host"]) == ["a", "a", "b"]
    assert list(inp["trace"]) == ["default_trace.txt", "rtnl_trace_pipe.txt", "default_trace.txt"]
    assert list(inp["calls"]) == [304, 3715, len(ftracekit.load(NEW).calls)]
    assert ds.sql("SELECT host, count(*) AS n FROM calls GROUP BY host ORDER BY host"
                  )["n"].tolist() == [304 + 3715, inp["calls"].iloc[2]]
    assert (fleet / "calls" / "host=a" / "kernel=6.1" / "trace=default_trace.txt").is_dir()


@pytest.mark.parametrize("path,tags", [(DEFAULT, {"host": "a", "trace": "default_trace.txt"}),
                                       (PIPE, {"trace": "rtnl_trace_pipe.txt"}),
                                       (NEW, {"host": "b"})])
def test_duckdb_analyses_equal_the_in_memory_ones(fleet, path, tags):
    trace = ftracekit.load(path)
    ds = ftracekit.open_dataset(fleet).select(**tags)
    keys = ds.tag_keys
    pd.testing.assert_frame_equal(ds.top(None), trace.top(None))
    for by in ("total", "count", "max"):
        pd.testing.assert_frame_equal(ds.top(7, by=by), trace.top(7, by=by))
    for func in ("rtnetlink_rcv", "rtnl_fill_ifinfo*", "__rcu_read_lock"):
        pd.testing.assert_series_equal(ds.stats(func), trace.stats(func), check_names=False)
        pd.testing.assert_frame_equal(ds.slowest(func, 5).drop(columns=keys),
                                      trace.slowest(func, 5), check_categorical=False)
        pd.testing.assert_frame_equal(ds.calls_of(func).drop(columns=keys),
                                      trace.calls_of(func), check_categorical=False)
    pd.testing.assert_frame_equal(ds.roots().drop(columns=keys), trace.roots(),
                                  check_categorical=False)
    pd.testing.assert_frame_equal(ds.slowest(n=3).drop(columns=keys), trace.slowest(n=3),
                                  check_categorical=False)


def test_top_figures_of_a_real_capture(fleet):
    ds = ftracekit.open_dataset(fleet).select(trace="default_trace.txt", host="a")
    row = ds.top(1).iloc[0]
    assert ds.top(1).index[0] == "rtnetlink_rcv"
    assert (row["count"], row["total_us"], row["self_us"], row["max_us"]) == \
        (2, 3498.683, 1094.88, 2034.27)
    st = ds.stats("rtnetlink_rcv")
    assert (st["p50_us"], st["p90_us"], st["std_us"], st["roots"]) == \
        (1749.341, 1977.284, 402.95, 2)     # (Series.quantile: top says 1749.342)


def test_compare_between_tags_equals_trace_compare(fleet):
    ds = ftracekit.open_dataset(fleet)
    a, b = ftracekit.load(DEFAULT), ftracekit.load(NEW)
    for by in ("total", "self", "count", "p99"):
        got = ds.compare({"host": "a", "trace": "default_trace.txt"}, {"host": "b"}, by=by)
        pd.testing.assert_frame_equal(got, a.compare(b, by=by))
    with pytest.raises(InputError, match="no input tagged"):
        ds.compare({"host": "a"}, {"host": "zz"})


def test_trace_pulls_a_subtree_or_a_window_back_into_memory(fleet):
    trace = ftracekit.load(PIPE)
    ds = ftracekit.open_dataset(fleet)
    whole = ds.trace(trace="rtnl_trace_pipe.txt")
    pd.testing.assert_frame_equal(whole.calls, trace.calls, check_categorical=False)
    call = int(trace.slowest("rtnl_fill_ifinfo", 1).index[0])
    sub = ds.trace(call=call, trace="rtnl_trace_pipe.txt")
    pd.testing.assert_frame_equal(sub.calls, trace.subtree(call), check_categorical=False)
    assert str(sub.tree(call)) == str(trace.tree(call))
    with pytest.raises(InputError, match="start_s must be a number"):
        ds.select(start_s=float("nan"))
    with pytest.raises(InputError, match="3 inputs match"):
        ds.trace()
    with pytest.raises(FtracekitError, match="no call 99999"):
        ds.trace(call=99999, host="b")


def test_a_time_window_reads_only_the_files_that_can_hold_it(tmp_path):
    path = DATA / "6.1.0-56-amd64" / "proc_abstime.txt"
    trace = ftracekit.load(path)
    ftracekit.convert(path, tmp_path / "ds", window_lines=40, rows_per_file=50,
                      max_window_lines=10**7)
    ds = ftracekit.open_dataset(tmp_path / "ds")
    n = len(ds.files())
    assert n >= 2                                    # 228 calls, a new file past 50
    t0, t1 = trace.calls["start_s"].quantile([0.1, 0.3]).tolist()
    part = ds.select(start_s=t0, end_s=t1)
    assert 1 <= len(part.files()) < n
    want = trace.calls[(trace.calls["start_s"] >= t0) & (trace.calls["start_s"] < t1)]
    pd.testing.assert_frame_equal(part.trace().calls, want, check_categorical=False)
    pd.testing.assert_frame_equal(part.top(None), ftracekit.Trace(want, trace.events).top(None))


def test_selection_reads_only_the_files_it_needs(fleet):
    ds = ftracekit.open_dataset(fleet)
    assert len(ds.files()) == 3
    assert len(ds.select(host="b").files()) == 1
    late = ds.select(start_s=1e12)
    assert late.files() == [] and len(late.top()) == 0
    with pytest.raises(InputError, match="no tag colour"):
        ds.select(colour="red")
    with pytest.raises(FtracekitError, match="sql: "):
        ds.sql("SELECT nosuchcolumn FROM calls")


# -- reliability ------------------------------------------------------------------------------

def test_existing_dataset_is_refused_unless_append(tmp_path):
    root = tmp_path / "ds"
    ftracekit.convert(DEFAULT, root, tags={"run": "1"})
    with pytest.raises(InputError, match="already exists; add to it with --append"):
        ftracekit.convert(DEFAULT, root, tags={"run": "2"})
    with pytest.raises(InputError, match="tagged run; give the same tags"):
        ftracekit.convert(DEFAULT, root, tags={"host": "x"}, append=True)
    ftracekit.convert(DEFAULT, root, tags={"run": "1"}, append=True)
    ds = ftracekit.open_dataset(root)
    assert list(ds.inputs["trace"]) == ["default_trace.txt", "default_trace.txt-2"]


def test_interrupted_conversion_leaves_nothing_that_reads_as_a_dataset(tmp_path):
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\x00\x01\x02binary" * 100)
    root = tmp_path / "ds"
    with pytest.raises(InputError, match="binary"):
        ftracekit.convert([DEFAULT, bad], root)
    assert not root.exists() and list(tmp_path.iterdir()) == [bad]
    # an interrupted append leaves the dataset as it was (its files are not listed)
    ftracekit.convert(DEFAULT, root)
    before = (root / "ftracekit-dataset.json").read_text()
    with pytest.raises(InputError):
        ftracekit.convert([PIPE, bad], root, append=True)
    assert (root / "ftracekit-dataset.json").read_text() == before
    assert ftracekit.open_dataset(root).sql("SELECT count(*) AS n FROM calls")["n"][0] == 304


def test_another_format_version_or_no_manifest_is_a_clear_error(tmp_path):
    root = tmp_path / "ds"
    ftracekit.convert(DEFAULT, root)
    man = json.loads((root / "ftracekit-dataset.json").read_text())
    man["format_version"] = 99
    man["ftracekit_version"] = "9.9"
    (root / "ftracekit-dataset.json").write_text(json.dumps(man))
    with pytest.raises(InputError, match=r"written by ftracekit 9.9 in dataset format 99; .*"
                                         r"convert the traces again"):
        ftracekit.open_dataset(root)
    with pytest.raises(InputError, match="not an ftracekit dataset"):
        ftracekit.open_dataset(tmp_path)
    with pytest.raises(InputError, match="no such dataset"):
        ftracekit.open_dataset(tmp_path / "nope")


@pytest.mark.parametrize("tags,msg", [({"bad key": "x"}, "a tag name is a word"),
                                      ({"func": "x"}, "not a column name"),
                                      ({"trace": "x"}, "not a column name"),
                                      ({"host": "a/b"}, "without '/'"),
                                      ({"host": ""}, "non-empty")])
def test_bad_tags_are_refused(tmp_path, tags, msg):
    with pytest.raises(InputError, match=msg):
        ftracekit.convert(DEFAULT, tmp_path / "ds", tags=tags)
    assert not (tmp_path / "ds").exists()


# -- CLI --------------------------------------------------------------------------------------

def test_cli_convert_then_top_report_tree_on_the_dataset(tmp_path, capsys):
    root = str(tmp_path / "ds")
    assert main(["convert", str(PIPE), "-o", root, "--tag", "host=a"]) == 0
    assert "3,715 calls" in capsys.readouterr().out
    assert main(["top", root, "--csv", "-n", "10"]) == 0
    from_ds = capsys.readouterr().out
    assert main(["top", str(PIPE), "--csv", "-n", "10"]) == 0
    assert from_ds == capsys.readouterr().out
    assert main(["report", root, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 input: 4,454 lines, 3,715 calls" in out and "rtnl_fill_ifinfo" in out
    assert main(["tree", root, "-f", "rtnl_fill_ifinfo", "--all"]) == 0
    tree = capsys.readouterr().out
    assert main(["tree", str(PIPE), "-f", "rtnl_fill_ifinfo", "--all"]) == 0
    assert tree.splitlines()[1:] == capsys.readouterr().out.splitlines()[1:]
    for argv, msg in [(["convert", str(PIPE), "-o", root], "already exists"),
                      (["convert", str(PIPE), "-o", root, "--tag", "host"], "give key=value"),
                      (["top", root, "--pid", "3"], "--pid: not for a dataset"),
                      (["top", root, "--tag", "host=zz"], None)]:
        code = main(argv)
        err = capsys.readouterr().err
        if msg:
            assert code == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_the_library_imports_and_names_the_extra_without_duckdb(tmp_path):
    code = ("import sys; sys.modules['duckdb'] = None; sys.modules['pyarrow'] = None\n"
            "import ftracekit\n"
            "t = ftracekit.load(sys.argv[1]); assert len(t.calls) == 304\n"
            "for f in (lambda: ftracekit.open_dataset(sys.argv[2]),\n"
            "          lambda: ftracekit.convert(sys.argv[1], sys.argv[2] + '/x')):\n"
            "    try:\n        f()\n    except ftracekit.InputError as e:\n"
            "        print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(DEFAULT), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("pip install 'ftracekit[scale]'") == 2


# -- Dask -------------------------------------------------------------------------------------

def test_dask_on_a_local_cluster_equals_trace(fleet):
    distributed = pytest.importorskip("dask.distributed")
    import ftracekit.dask as fd

    a, b = ftracekit.load(DEFAULT), ftracekit.load(NEW)
    pipe = ftracekit.load(PIPE)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pd.testing.assert_frame_equal(fd.top(fleet, None, client=client,
                                             trace="rtnl_trace_pipe.txt"), pipe.top(None))
        pd.testing.assert_frame_equal(fd.top(fleet, 10, by="total", client=client),
                                      ftracekit.open_dataset(fleet).top(10, by="total"))
        pd.testing.assert_series_equal(fd.stats(fleet, "rtnl_fill_ifinfo", client=client,
                                                host="a", trace="rtnl_trace_pipe.txt"),
                                       pipe.stats("rtnl_fill_ifinfo"))
        pd.testing.assert_frame_equal(
            fd.compare(fleet, {"host": "a", "trace": "default_trace.txt"}, {"host": "b"},
                       client=client), a.compare(b))
        ds = ftracekit.open_dataset(fleet)
        keys = ds.tag_keys
        for func, n in ((None, 5), ("rtnl_fill_ifinfo*", 7), ("__rcu_read_lock", 3),
                        ("rtnetlink_rcv", 0)):
            got = fd.slowest(fleet, func, n, client=client)
            pd.testing.assert_frame_equal(got, ds.slowest(func, n), check_categorical=False)
        pd.testing.assert_frame_equal(
            fd.slowest(fleet, "rtnl_fill_ifinfo", 4, client=client, host="a",
                       trace="rtnl_trace_pipe.txt").drop(columns=keys),
            pipe.slowest("rtnl_fill_ifinfo", 4), check_categorical=False)
        with pytest.raises(InputError, match="non-negative"):
            fd.slowest(fleet, None, -1, client=client)


BENCH = ROOT / "bench" / "data"


@pytest.mark.skipif(not (BENCH / "fg_1m.dat").exists(), reason="needs bench/data")
def test_the_1m_line_benchmark_traces_convert_to_exactly_the_calls_of_load(tmp_path):
    """The real 10^6-line recordings (text: 10^5-line windows; trace.dat: the default
    windows) hold every call and event of ``load``, column for column. (The 10^7-line
    recording takes 30-60 min to make under emulation: bench/check_dataset_equals_load.py.)"""
    text, dat = BENCH / "fg_1m.txt.xz", BENCH / "fg_1m.dat"
    root = tmp_path / "ds"
    a = ftracekit.convert([text], root, tags={"host": "a"}, window_lines=100_000)["inputs"]
    b = ftracekit.convert([dat], root, tags={"host": "b"}, append=True)["inputs"]
    assert a[0]["windows"] >= 10 and b[0]["windows"] >= 3
    assert a[0]["forced_cuts"] == 0 and b[0]["forced_cuts"] == 0
    ds = ftracekit.open_dataset(root)
    for path in (text, dat):
        trace = ftracekit.load(path)
        assert len(trace.calls) > 890_000
        got = ds.sql("SELECT * FROM calls WHERE trace = ? ORDER BY call", [path.name])
        got = got.drop(columns=ds.tag_keys).set_index("call")
        want = _plain(trace.calls)
        want["status"] = want["status"].astype(str)
        pd.testing.assert_frame_equal(_plain(got), want, check_index_type=False,
                                      check_dtype=False)
        ev = ds.sql("SELECT * FROM events WHERE trace = ? ORDER BY line", [path.name])
        assert len(ev) == len(trace.events)
        assert ev["line"].tolist() == trace.events["line"].tolist()
        assert ev["call"].tolist() == trace.events["call"].tolist()
