"""trace-cmd trace.dat (v6 and zstd-compressed v7) against trace-cmd's own report text."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

import ftracekit
from ftracekit.read import K_ENTRY, K_EXIT, K_LEAF

DATA = Path(__file__).parent / "data" / "tracecmd-6.17"


def same_calls(a: ftracekit.Trace, b: ftracekit.Trace) -> None:
    ca, cb = a.calls, b.calls
    assert len(ca) == len(cb)
    for col in ("depth", "pid", "cpu", "parent", "root", "n_children"):
        assert list(ca[col]) == list(cb[col]), col
    assert list(ca["func"].astype(str)) == list(cb["func"].astype(str))
    assert list(ca["status"].astype(str)) == list(cb["status"].astype(str))
    # trace-cmd prints durations in ns with 3 decimals and timestamps in µs.
    assert np.allclose(ca["duration_us"], cb["duration_us"], atol=5e-4, equal_nan=True)
    assert np.nanmax(np.abs(ca["start_s"].to_numpy() - cb["start_s"].to_numpy())) < 1e-6


def test_v7_zstd_equals_report():
    pytest.importorskip("zstandard")
    dat = ftracekit.load(DATA / "rtnl_v7_zstd.dat")
    rep = ftracekit.load(DATA / "rtnl_v7_zstd.report.txt.xz")
    assert dat.meta["format"] == "trace-cmd trace.dat v7"
    assert rep.meta["layout"][-1] == "tracecmd"
    assert len(dat.calls) == 1610
    same_calls(dat, rep)
    assert dat.meta["recording"]["uname"].startswith("Linux virtme-ng 6.17.13+deb13-amd64")
    # grep -c "|  rtnetlink_rcv() {" on the report → 2
    assert list(dat.roots()["func"].astype(str)) == ["rtnetlink_rcv"] * 2


def test_v6_compressed_file_equals_report(tmp_path):
    dat = ftracekit.load(DATA / "rtnl_v6_events.dat.xz")        # .xz around a .dat
    rep = ftracekit.load(DATA / "rtnl_v6_events.report.txt.xz")
    assert dat.meta["format"] == "trace-cmd trace.dat v6"
    assert len(dat.calls) == 1633
    same_calls(dat, rep)
    plain = tmp_path / "t.dat"
    plain.write_bytes(lzma.decompress((DATA / "rtnl_v6_events.dat.xz").read_bytes()))
    assert len(ftracekit.load(plain).calls) == 1633


def test_truncated_dat_is_one_clear_error(tmp_path):
    blob = lzma.decompress((DATA / "rtnl_v6_events.dat.xz").read_bytes())
    for cut in (20, 200, 5000):
        p = tmp_path / f"cut{cut}.dat"
        p.write_bytes(blob[:cut])
        with pytest.raises(ftracekit.InputError, match="trace.dat"):
            ftracekit.load(p)


def test_zstd_missing_gives_install_hint(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ftracekit.InputError, match="zstandard"):
        ftracekit.load(DATA / "rtnl_v7_zstd.dat")


# ---------------------------------------------------------------------------------------------
# The decoder rewritten for speed (issue 13) gives the same records and tables as before

def _digest(recs, calls, events) -> tuple[str, str, str]:
    """sha256 prefixes of the record columns and names, the calls table and the events table."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    for k in sorted(recs.cols):
        a = np.ascontiguousarray(np.asarray(recs.cols[k]))
        h.update(k.encode() + str(a.dtype).encode() + a.tobytes())
    for names in (recs.funcs, recs.modules, recs.comms):
        h.update(repr(list(names)).encode())
    h.update(repr(sorted(recs.comments.items())).encode())
    out = [h.hexdigest()[:16]]
    for df in (calls, events):
        t = hashlib.sha256()
        for c in df.columns:
            if c in ("args", "lat_flags"):
                continue     # (columns added by issue 11, NaN here: not part of these digests)
            s = df[c]
            if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
                t.update(c.encode() + repr(s.astype(str).tolist()).encode())
            else:
                t.update(c.encode() + np.ascontiguousarray(s.to_numpy()).tobytes())
        out.append(t.hexdigest()[:16])
    return tuple(out)


def _decode(path: Path, join: bool = True):
    """Records and digests of a capture; ``join=False``: without joining entry/exit event
    pairs into leaf records (the records the decoder gave before that, see read._pairs)."""
    from unittest import mock

    from ftracekit.calltree import build_tables
    from ftracekit.read import _decode as dec_mod
    from ftracekit.read import rawtrace, tracedat

    with mock.patch.object(dec_mod, "join_mask",
                           dec_mod.join_mask if join
                           else (lambda order, kind, *a: np.zeros(len(kind), dtype=np.uint8))):
        if path.is_dir():
            recs, _ = rawtrace.load_capture(path)
        else:
            data = path.read_bytes()
            recs, _ = tracedat.load_tracedat(
                lzma.decompress(data) if path.suffix == ".xz" else data, str(path))
    if not join:
        # (the column joined leaves end with: all NaN here, and not in the records before)
        assert np.isnan(recs.cols["end_ts"]).all()
        ends = recs.cols.pop("end_ts")
        digest = _digest(recs, *build_tables(recs)[:2])
        recs.cols["end_ts"] = ends
        return recs, digest
    digest = _digest(recs, *build_tables(recs)[:2])
    return recs, digest


# Digests of the records and the events table from the decoder before issue 13 (commit
# d922e02), on the same files; the calls tables' digests are those of the linking of issue 10
# (interrupts inside the call whose time holds them), which changed the calls of all four.
BEFORE = {
    "rtnl_v7_zstd.dat": ("2768951aa1911c91", "97fb41b7b1884a3a", "cf9256863065ef6c"),
    "rtnl_v6_events.dat.xz": ("0d77e2901fee1492", "a5f56711131464e4", "cf9256863065ef6c"),
    "rtnl_capture": ("30025510a954d7ed", "5e0ac1203d5925ff", "9ed02816cf2d3b68"),
    "fg_1m.dat": ("cf5666743b24a4ac", "61f4c3a41fe9ff68", "cf9256863065ef6c"),
}
RAW = Path(__file__).parent / "data" / "raw-6.17" / "rtnl_capture"
BENCH_DAT = Path(__file__).parent.parent / "bench" / "data" / "fg_1m.dat"


# Digests of the records with entry/exit pairs joined into leaf records (the calls and events
# tables stay those of BEFORE).
JOINED = {
    "rtnl_v7_zstd.dat": "d22bed2431b4dc9e",
    "rtnl_v6_events.dat.xz": "13f8b64e7d482899",
    "rtnl_capture": "6fa298d2e5a9bb73",
    "fg_1m.dat": "93d733e7d6374b58",
}


@pytest.mark.parametrize("path", [DATA / "rtnl_v7_zstd.dat", DATA / "rtnl_v6_events.dat.xz",
                                  RAW, BENCH_DAT], ids=lambda p: p.name)
def test_same_records_and_tables_as_before(path):
    """Without joining, the records of before; with it, fewer records and the same tables."""
    if path.name == "rtnl_v7_zstd.dat":
        pytest.importorskip("zstandard")
    if not path.exists():
        pytest.skip(f"{path} missing")
    plain, before = _decode(path, join=False)
    assert before == BEFORE[path.name]
    recs, joined = _decode(path)
    assert joined == (JOINED[path.name],) + BEFORE[path.name][1:]
    # one record fewer per joined pair: its exit event's; the other lines keep their numbers
    n_leaf = int((recs["kind"] == K_LEAF).sum())
    assert n_leaf > 0 and len(recs) == len(plain) - n_leaf
    assert not (plain["kind"] == K_LEAF).any()
    dropped = ~np.isin(plain["line"], recs["line"])
    assert int(dropped.sum()) == n_leaf and (plain["kind"][dropped] == K_EXIT).all()


def test_joined_leaves_end_at_their_exit_event():
    """A leaf record joined from two events keeps the exit event's time, duration and CPU."""
    pytest.importorskip("zstandard")
    path = DATA / "rtnl_v7_zstd.dat"
    plain, _ = _decode(path, join=False)
    recs, _ = _decode(path)
    leaf = recs["kind"] == K_LEAF
    assert np.isnan(recs["end_ts"][~leaf]).all() and not np.isnan(recs["end_ts"][leaf]).any()
    at = {ln: i for i, ln in enumerate(plain["line"].tolist())}
    entries = np.array([at[ln] for ln in recs["line"][leaf].tolist()])
    exits = entries + 1           # (in this capture the exit event is the next one in time)
    assert (plain["kind"][entries] == K_ENTRY).all() and (plain["kind"][exits] == K_EXIT).all()
    assert np.array_equal(recs["end_ts"][leaf], plain["ts"][exits])
    assert np.array_equal(recs["dur"][leaf], plain["dur"][exits])
    assert np.array_equal(recs["ts"][leaf], plain["ts"][entries])
    assert np.array_equal(recs["depth"][leaf], plain["depth"][entries])
    assert np.array_equal(recs["func"][leaf], plain["func"][exits])
    assert (recs["end_ts"][leaf] >= recs["ts"][leaf]).all()


def test_small_blocks_give_the_same_records(monkeypatch):
    """Blocks of 3 pages (times, function codes and lost counts across block boundaries)."""
    pytest.importorskip("zstandard")
    from ftracekit.read import _decode as dec_mod
    from ftracekit.read import tracedat

    monkeypatch.setattr(dec_mod, "BLOCK_BYTES", 3 * 4096)
    monkeypatch.setattr(tracedat, "BLOCK_BYTES", 3 * 4096)
    for path in (DATA / "rtnl_v7_zstd.dat", DATA / "rtnl_v6_events.dat.xz", RAW):
        assert _decode(path)[1] == (JOINED[path.name],) + BEFORE[path.name][1:], path.name


def test_raw_capture_of_the_dat_pages_decodes_alike(tmp_path):
    """A trace.dat stores trace_pipe_raw pages unchanged: written out as a raw capture
    directory (as bench/bench_binary.py does for the benchmark), they give the same records."""
    import gzip
    import json

    pytest.importorskip("zstandard")
    from ftracekit.read.tracedat import read_tracedat

    path = DATA / "rtnl_v7_zstd.dat"
    dat = read_tracedat(path.read_bytes(), str(path))
    for cpu, pages in dat.cpus:
        with open(tmp_path / f"cpu{cpu}.raw", "wb") as f:
            for buf in ([pages] if isinstance(pages, (bytes, memoryview)) else pages):
                f.write(buf)
    for ev_id in dat.formats:
        text, system = dat.formats.text(ev_id)
        if system == "ftrace":
            d = tmp_path / "formats" / system / dat.formats[ev_id].name
            d.mkdir(parents=True)
            (d / "format").write_text(text)
    (tmp_path / "kallsyms.gz").write_bytes(gzip.compress(dat.kallsyms))
    (tmp_path / "saved_cmdlines").write_text(dat.cmdlines)
    (tmp_path / "capture.json").write_text(json.dumps({"page_size": dat.page_size}))
    assert _decode(tmp_path)[1][:2] == (JOINED[path.name], BEFORE[path.name][1])


def test_progress_line(capsys):
    ftracekit.load(DATA / "rtnl_v6_events.dat.xz", progress=True)
    assert "decoding" in capsys.readouterr().err


def test_truncated_compressed_data_is_one_clear_error(tmp_path):
    pytest.importorskip("zstandard")
    blob = (DATA / "rtnl_v7_zstd.dat").read_bytes()
    p = tmp_path / "cut.dat"
    p.write_bytes(blob[: int(len(blob) * 0.9)])
    with pytest.raises(ftracekit.InputError, match="trace.dat"):
        ftracekit.load(p)


@pytest.mark.skipif(not BENCH_DAT.exists() or shutil.which("trace-cmd") is None,
                    reason="needs bench/data/fg_1m.dat and trace-cmd")
def test_fg_1m_dat_equals_trace_cmd_report_parsed_as_text(tmp_path):
    """1.8 M events: the .dat decode and trace-cmd's own report text (text path) give the same
    calls (the report prints an entry and its exit as one leaf line), but for the known
    differences below."""
    import subprocess

    report = tmp_path / "report.txt"
    with open(report, "wb") as f:
        subprocess.run(["trace-cmd", "report", "-i", str(BENCH_DAT)], stdout=f, check=True,
                       stderr=subprocess.DEVNULL)
    dat = ftracekit.load(BENCH_DAT)
    rep = ftracekit.load(report)
    assert len(dat.calls) == 912_673
    ca, cb = dat.calls, rep.calls
    for col in ("depth", "pid", "cpu", "root", "func", "status"):
        assert (ca[col].astype(str).to_numpy() == cb[col].astype(str).to_numpy()).all(), col
    assert np.allclose(ca["duration_us"], cb["duration_us"], atol=5e-4, equal_nan=True)
    # Since issue 10 the entry/exit events and the report's leaf lines link alike (interrupts
    # go inside the call whose measured time holds them): the same trees, start times too.
    late = np.abs(ca["start_s"].to_numpy() - cb["start_s"].to_numpy()) >= 1e-6
    other_parent = ca["parent"].to_numpy() != cb["parent"].to_numpy()
    assert (int(late.sum()), int(other_parent.sum())) == (0, 0)
    assert not (late & other_parent).any()
