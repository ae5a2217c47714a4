"""Comparing two traces: ``Trace.compare``, its plot and ``ftracekit compare`` (issue 10, item 8).

Figures from the files (grep/awk): in 6.1.0-56-amd64/proc_abstime.txt, rtnl_fill_ifinfo()
{ (line 166) exits '! 314.512 us' and its direct children sum to 170.962 µs (self 143.550);
in 6.17.13+deb13-amd64/proc_abstime.txt, rtnl_fill_ifinfo.isra.0() { (line 174) exits
'! 432.445 us', children 212.407 µs (self 220.038). rtnetlink_rcv: 281.069 + 537.479 = 818.548
µs in 6.1; skb_put(): 44 calls in 6.1, 50 in 6.17 (grep -c 'skb_put();').
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ftracekit
from ftracekit import FtracekitError
from ftracekit.cli.main import main

DATA = Path(__file__).parent / "data"
A = DATA / "6.1.0-56-amd64" / "proc_abstime.txt"
B = DATA / "6.17.13+deb13-amd64" / "proc_abstime.txt"


@pytest.fixture(scope="module")
def a() -> ftracekit.Trace:
    return ftracekit.load(A)


@pytest.fixture(scope="module")
def b() -> ftracekit.Trace:
    return ftracekit.load(B)


def test_gcc_suffixes_are_one_function(a, b):
    d = a.compare(b)
    assert "rtnl_fill_ifinfo.isra.0" not in d.index
    r = d.loc["rtnl_fill_ifinfo"]
    assert (r["count_a"], r["count_b"], r["count_change"]) == (1, 1, 0)
    assert (r["total_us_a"], r["total_us_b"], r["total_change_us"]) == (314.512, 432.445, 117.933)
    assert (r["self_us_a"], r["self_us_b"], r["self_change_us"]) == (143.550, 220.038, 76.488)
    assert (r["funcs_a"], r["funcs_b"]) == ("rtnl_fill_ifinfo", "rtnl_fill_ifinfo.isra.0")
    assert d.loc["rtnetlink_rcv", "total_us_a"] == 818.548
    assert (d.loc["skb_put", "count_a"], d.loc["skb_put", "count_b"]) == (44, 50)
    # µs rounded to the ns: no float noise left from subtracting
    us = d[[c for c in d.columns if "_us" in c]].to_numpy(dtype=float)
    assert np.array_equal(np.nan_to_num(us), np.nan_to_num(np.round(us, 3)))


def test_sorted_by_the_change_asked_for(a, b):
    by_self = a.compare(b, 3, by="self")
    assert list(by_self.index) == ["rtnl_fill_ifinfo", "rtnl_newlink", "rtnl_dump_ifinfo"]
    assert list(by_self["self_change_us"]) == [76.488, 29.435, 26.367]
    by_count = a.compare(b, by="count")
    assert by_count.index[0] == "skb_put" and by_count["count_change"].iloc[0] == 6
    ch = by_count["count_change"].abs().to_numpy()
    assert (ch[:-1] >= ch[1:]).all()
    for by in ("total", "p50", "p99"):
        col = {"total": "total_change_us", "p50": "p50_change_pct", "p99": "p99_change_pct"}[by]
        v = a.compare(b, by=by)[col].abs().dropna().to_numpy()
        assert (v[:-1] >= v[1:]).all(), by
    with pytest.raises(FtracekitError, match="cannot sort by 'max'; use one of: total, self, "
                                             "count, p50, p99"):
        a.compare(b, by="max")


def test_one_sided_and_same(a, b):
    d = a.compare(b)
    gone = d.loc["__rtnl_newlink"]          # 6.1 only (6.17 inlines it)
    assert gone["count_b"] == 0 and gone["total_us_b"] == 0.0 and gone["funcs_b"] == ""
    assert gone["total_change_pct"] == -100.0 and np.isnan(gone["p50_change_pct"])
    same = a.compare(a)
    assert (same["count_change"] == 0).all() and (same["self_change_us"] == 0).all()
    assert (same["funcs_a"] == same["funcs_b"]).all()


def test_plot_order_is_the_table_order(a, b):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for by in ("self", "total", "count", "p99"):
        ax = a.plot.compare(b, 6, by=by)
        names = [t.get_text() for t in ax.get_yticklabels()]
        assert names == list(a.compare(b, 6, by=by).index), by
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["6.1.0-56-amd64", "6.17.13+deb13-amd64"]     # same file names
        plt.close(ax.figure)
    ax = a.plot.compare(b, 3, labels=("6.1", "6.17"))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["6.1", "6.17"]
    assert ax.texts[0].get_text().strip() == "+53 %  (143.550 µs → 220.038 µs)"
    with pytest.raises(FtracekitError, match="labels: give two names"):
        a.plot.compare(b, labels=("x",))
    with pytest.raises(FtracekitError, match="cannot compare by 'max'"):
        a.plot.compare(b, by="max")
    ax = a.plot.compare(a)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]   # one file
    plt.close("all")


def run(capsys, *argv):
    code = main([str(x) for x in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_compare_text(capsys):
    code, out, err = run(capsys, "compare", A, B, "--by", "self", "-n", "2")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"a = 6.1.0-56-amd64: {A}",
        f"b = 6.17.13+deb13-amd64: {B}",
        "2 of 118 functions by change in self time, largest first (µs; functions matched "
        "without GCC suffixes such as .isra.0)",
        "func              calls a  calls b   self a   self b   change  total a  total b  as printed",
        "rtnl_fill_ifinfo        1        1  143.550  220.038  +76.488  314.512  432.445  "
        "a: rtnl_fill_ifinfo; b: rtnl_fill_ifinfo.isra.0",
        "rtnl_newlink            1        1    7.864   37.299  +29.435   40.385   79.206",
    ]
    code, out, _ = run(capsys, "compare", A, B, "-n", "1")
    assert out.splitlines()[-1].split() == ["rtnl_dumpit", "0", "1", "0.000", "494.210",
                                            "+494.210", "new"]
    code, out, _ = run(capsys, "compare", A, B, "-n", "1", "--labels", "old", "new")
    assert out.startswith(f"a = old: {A}\nb = new: {B}\n")


def test_cli_compare_csv(capsys):
    code, out, _ = run(capsys, "compare", A, B, "--by", "self", "-n", "1", "--csv")
    lines = out.splitlines()
    assert lines[0] == ("func,count_a,count_b,count_change,total_us_a,total_us_b,total_change_us,"
                        "total_change_pct,self_us_a,self_us_b,self_change_us,p50_us_a,p50_us_b,"
                        "p50_change_pct,p99_us_a,p99_us_b,p99_change_pct,funcs_a,funcs_b")
    assert lines[1] == ("rtnl_fill_ifinfo,1,1,0,314.512,432.445,117.933,37.497,143.550,220.038,"
                        "76.488,314.512,432.445,37.497,314.512,432.445,37.497,rtnl_fill_ifinfo,"
                        "rtnl_fill_ifinfo.isra.0")
    code, out, _ = run(capsys, "compare", A, B, "-n", "0", "--csv")
    assert len(out.splitlines()) == 1 + 118


@pytest.mark.parametrize("argv,message", [
    (["compare", A, "/nonexistent.txt"], "/nonexistent.txt: no such file"),
    (["compare", A, DATA / "6.18-events" / "udp_tbf_raw.txt"], "holds no function calls"),
])
def test_cli_compare_bad_input(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("ftracekit: error: ") and message in err and err.count("\n") == 1


def test_cli_compare_bad_by(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(A), str(B), "--by", "max"])
    assert exc.value.code == 2
    assert "invalid choice: 'max'" in capsys.readouterr().err


def test_empty_sides():
    empty = ftracekit.parse("# tracer: function_graph\n#\n")
    thresh = ftracekit.load(DATA / "shared" / "rtnl_thresh50.txt")
    assert empty.compare(empty).shape == (0, 18)
    d = empty.compare(thresh)
    # grep -c 'rtnetlink_rcv \*/' rtnl_thresh50.txt → 4 exits (tracing_thresh: no entries)
    assert d.loc["rtnetlink_rcv", "count_b"] == 4 and d.loc["rtnetlink_rcv", "funcs_a"] == ""
    assert (d["count_a"] == 0).all() and (d["total_us_a"] == 0).all()
    with pytest.raises(FtracekitError, match="no calls in either trace"):
        empty.plot.compare(empty)


def test_cli_compare_filters_apply_to_both(capsys):
    # every call in both files is ip's (ip-344 / ip-314): --comm ip keeps them all
    _, full, _ = run(capsys, "compare", A, B, "-n", "3")
    code, out, err = run(capsys, "compare", A, B, "-n", "3", "--comm", "ip")
    assert code == 0 and out == full
    code, out, err = run(capsys, "compare", A, B, "--pid", "344")      # only in A
    assert code == 2 and out == "" and err.startswith("ftracekit: error: ") and "314" not in err
