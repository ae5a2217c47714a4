"""``ftracekit plot`` and ``ftracekit export``: files written, figures right, bad input → one
line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import ftracekit
from ftracekit.show import export as ex
from ftracekit.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
import fabricate  # noqa: E402

DATA = Path(__file__).parent / "data" / "shared"
PIPE = str(DATA / "rtnl_trace_pipe.txt")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fab_path(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("fab") / "fab.txt"
    p.write_text(fabricate.rtnl_like())
    return str(p)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind,extra", [
    ("hist", ["--func", "rtnetlink_rcv_msg"]),
    ("time", ["--func", "rtnetlink_rcv_msg"]),
    ("timeline", []),
    ("flame", ["--func", "rtnetlink_rcv"]),
    ("flame", ["--func", "rtnetlink_rcv", "--nth", "1", "--max-depth", "4"]),
    ("top", ["-n", "8", "--rank", "total"]),
    ("compare", ["--against", str(DATA / "rtnl_depth3_markers.txt")]),
])
def test_plot_kinds_write_png(capsys, tmp_path, kind, extra):
    out = tmp_path / f"{kind}.png"
    code, _, err = run(capsys, "plot", PIPE, "--kind", kind, "-o", str(out), *extra)
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG
    assert err.strip() == f"wrote {out}"


@pytest.mark.parametrize("ext,magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_plot_svg_pdf(capsys, tmp_path, fab_path, ext, magic):
    out = tmp_path / f"t.{ext}"
    code, _, err = run(capsys, "plot", fab_path, "--kind", "time", "--func", "rtnetlink_rcv",
                       "-o", str(out))
    assert code == 0, err
    assert out.read_bytes()[: len(magic)] == magic


def test_plot_default_output_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "plot", PIPE, "--kind", "top")
    assert code == 0, err
    assert (tmp_path / "rtnl_trace_pipe_top.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("argv,msg", [
    (["--kind", "hist"], "--kind hist needs --func FUNC"),
    (["--kind", "hist", "--func", "rtnetlink_rvc"], "no function 'rtnetlink_rvc' in this trace; did you mean 'rtnetlink_rcv'"),
    (["--kind", "compare"], "--kind compare needs --against OTHER_TRACE"),
    (["--kind", "top", "-o", "x.txt"], "use a .png, .svg or .pdf file name"),
    (["--kind", "top", "-o", "/nonexistent/dir/x.png"], "directory /nonexistent/dir does not exist"),
    (["--kind", "flame", "--func", "rtnetlink_rcv", "--nth", "9"], "--nth 9 is out of range: rtnetlink_rcv has 4 calls (0..3)"),
    (["--kind", "flame", "--call", "99999"], "no call 99999 in this trace"),
])
def test_plot_errors_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, msg):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "plot", PIPE, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ftracekit: error: ")
    assert msg in err
    assert not list(tmp_path.glob("*.png"))


def test_plot_missing_trace_file(capsys, tmp_path):
    code, _, err = run(capsys, "plot", str(tmp_path / "nope.txt"), "--kind", "top")
    assert code == 2 and err.count("\n") == 1


def test_export_folded_stdout_equals_api(capsys):
    code, out, err = run(capsys, "export", PIPE, "--format", "folded")
    assert code == 0 and err == ""
    assert out == ex.to_folded(ftracekit.load(PIPE))
    code, out, _ = run(capsys, "export", PIPE, "-F", "folded", "--unit", "ns", "--tasks")
    lines = out.splitlines()
    assert all(line.split(";")[0] in ("ip-398", "ip-400") for line in lines)
    total = sum(int(line.rsplit(" ", 1)[1]) for line in lines)
    t = ftracekit.load(PIPE)
    assert total == pytest.approx(t.calls["self_us"].clip(lower=0).sum() * 1000, abs=len(lines))


def test_export_chrome(capsys, tmp_path, fab_path):
    out = tmp_path / "t.json"
    code, _, err = run(capsys, "export", fab_path, "-F", "chrome", "-o", str(out))
    assert code == 0
    assert err.strip() == (f"wrote {out}: 435 slices, 5 events, 2 tasks (abstime clock); open it "
                           f"in ui.perfetto.dev or chrome://tracing")
    doc = json.loads(out.read_text())
    assert sum(e["ph"] == "X" for e in doc["traceEvents"]) == 435
    code, _, err = run(capsys, "export", fab_path, "-F", "chrome", "-o", str(out), "--no-events")
    assert sum(e["ph"] == "i" for e in json.loads(out.read_text())["traceEvents"]) == 0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_tables(capsys, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    # a prefix (no extension): PREFIX.calls.EXT and PREFIX.events.EXT
    code, _, err = run(capsys, "export", PIPE, "-F", fmt, "-o", str(tmp_path / "run"))
    assert code == 0, err
    calls = tmp_path / f"run.calls.{fmt}"
    assert err.splitlines() == [f"wrote {calls} (3,715 calls)",
                                f"wrote {tmp_path / f'run.events.{fmt}'} (0 events)"]
    assert len(read(calls)) == 3715


# kfree_skb_events.txt: grep -c '() {$\|();' → 542 calls; grep -c '/\* ' → 3 events
KFREE = str(Path(__file__).parent / "data" / "6.1.0-56-amd64" / "kfree_skb_events.txt")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_names_files_as_asked(capsys, tmp_path, fmt):
    """Issue 10 item 14: ``-o calls.csv`` wrote calls.csv.calls.csv and calls.csv.events.csv."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    out = tmp_path / f"calls.{fmt}"
    code, _, err = run(capsys, "export", KFREE, "-F", fmt, "-o", str(out))
    assert code == 0, err
    assert err.splitlines() == [f"wrote {out} (542 calls)",
                                "(3 events not written: add --events FILE)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"calls.{fmt}"]
    assert len(read(out)) == 542
    ev = tmp_path / f"ev.{fmt}"
    code, _, err = run(capsys, "export", KFREE, "-F", fmt, "-o", str(out), "--events", str(ev))
    assert err.splitlines() == [f"wrote {out} (542 calls)", f"wrote {ev} (3 events)"]
    assert list(read(ev)["event"]) == ["kfree_skb"] * 3
    # DIR/ (created) and an existing directory without the slash
    for d, arg in ((tmp_path / "new", str(tmp_path / "new") + "/"), (tmp_path, str(tmp_path))):
        code, _, err = run(capsys, "export", KFREE, "-F", fmt, "-o", arg)
        assert code == 0 and err.splitlines() == [f"wrote {d / f'calls.{fmt}'} (542 calls)",
                                                  f"wrote {d / f'events.{fmt}'} (3 events)"]


def test_export_csv_holds_the_printed_numbers(capsys, tmp_path):
    out = tmp_path / "calls.csv"
    assert run(capsys, "export", KFREE, "-F", "csv", "-o", str(out))[0] == 0
    text = out.read_text()
    # __udp4_lib_rcv (line 5): 8935.690 − 184.948 − 7728.013 − 786.355 = 236.374 µs of self
    # time, which float subtraction gives as 236.37400000000025
    assert text.splitlines()[1] == ("0,__udp4_lib_rcv,,973,python3,0,0,0,-1,0,330.043642,"
                                    "330.052566,8935.69,236.374,3,complete,False,,5,")   # (args: none)
    df = pd.read_csv(out)
    for col in ("duration_us", "self_us"):
        assert (df[col].dropna().astype(str).str.split(".").str[1].str.len() <= 3).all()
    for col in ("start_s", "end_s"):
        assert (df[col].dropna().astype(str).str.split(".").str[1].str.len() <= 9).all()


@pytest.mark.parametrize("argv,message", [
    (["-F", "csv", "-o", "{tmp}/calls.parquet"], "{tmp}/calls.parquet: a csv export is written to a "
                                                 ".csv file (or to a directory: {tmp}/calls/)"),
    (["-F", "csv", "-o", "{tmp}/c.csv", "--events", "{tmp}/c.csv"],
     "the calls and events tables cannot both go to {tmp}/c.csv"),
    (["-F", "csv", "-o", "{tmp}/c.csv", "--events", "{tmp}/e.txt"],
     "{tmp}/e.txt: a csv export is written to a .csv file"),
    (["-F", "csv", "-o", "{tmp}/nodir/c.csv"],
     "cannot write {tmp}/nodir/c.csv: directory {tmp}/nodir does not exist"),
    (["-F", "chrome", "-o", "{tmp}/t.json", "--events", "{tmp}/e.csv"],
     "--events is for --format csv or parquet, not chrome"),
])
def test_export_bad_paths(capsys, tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, "export", KFREE, *argv)
    assert code == 2 and out == ""
    assert err == f"ftracekit: error: {message.format(tmp=tmp_path)}\n"
    assert list(tmp_path.iterdir()) == []


def test_export_needs_output(capsys):
    code, _, err = run(capsys, "export", PIPE, "-F", "chrome")
    assert code == 2 and "--format chrome needs -o PATH" in err


def test_plot_compare_labels_tell_same_named_files_apart(capsys, tmp_path, monkeypatch):
    """Two proc_abstime.txt from two kernels: the legend names their directories; --labels
    sets them; --rank count orders by the change in calls."""
    import matplotlib.pyplot as plt

    from ftracekit.show import plot as P

    a = str(Path(__file__).parent / "data" / "6.1.0-56-amd64" / "proc_abstime.txt")
    b = str(Path(__file__).parent / "data" / "6.12.117+deb12-amd64" / "proc_abstime.txt")
    seen = {}
    real = P.plot_compare

    def spy(*args, **kw):
        ax = real(*args, **kw)
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["xlabel"] = ax.get_xlabel()
        return ax

    monkeypatch.setattr(P, "plot_compare", spy)
    out = tmp_path / "c.png"
    code, _, err = run(capsys, "plot", a, "--kind", "compare", "--against", b, "-o", str(out))
    assert code == 0, err
    assert seen["legend"] == ["6.1.0-56-amd64", "6.12.117+deb12-amd64"]
    code, _, err = run(capsys, "plot", a, "--kind", "compare", "--against", b, "-o", str(out),
                       "--labels", "6.1", "6.12", "--rank", "count")
    assert code == 0, err
    assert seen["legend"] == ["6.1", "6.12"] and seen["xlabel"] == "calls"
    plt.close("all")
