"""trace-cmd trace.dat (v6 and zstd-compressed v7) against trace-cmd's own report text."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

import ftracekit

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
