"""The report/tree/top commands and their handling of bad input (one line, exit code 2)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftracekit.cli.main import main

DATA = Path(__file__).parent / "data" / "shared"
PIPE = str(DATA / "rtnl_trace_pipe.txt")
REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_roots(capsys):
    code, out, err = run(capsys, "report", PIPE)
    assert code == 0, err
    assert "3,715 calls (3,715 complete, 0 without exit, 0 without entry)" in out
    assert "4,454 lines; columns: cpu proc duration" in out
    assert "slowest root calls" in out
    # The slowest root is the 5404.684 us rtnetlink_rcv on line 199 (call 141).
    assert "critical path of call 141 (rtnetlink_rcv, 5,404.684 µs)" in out
    assert "top 20 functions by self time" in out


def test_report_func(capsys):
    code, out, _ = run(capsys, "report", PIPE, "--func", "netlink_dump", "--top", "5")
    assert code == 0
    assert "slowest netlink_dump calls (of 3)" in out
    assert "top 5 functions by self time" in out


def test_tree_slowest(capsys):
    code, out, _ = run(capsys, "tree", PIPE, "--func", "rtnetlink_rcv", "--slowest", "--max-depth", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "rtnetlink_rcv: the slowest of 4 calls (--nth K for another)"
    assert lines[1].startswith("call 141: rtnetlink_rcv")
    assert "5,404.684" in lines[3] and lines[3].rstrip().endswith("rtnetlink_rcv")
    assert lines[4].rstrip().endswith("  netlink_rcv_skb")


def test_tree_nth(capsys):
    code, out, _ = run(capsys, "tree", PIPE, "-f", "rtnetlink_rcv", "--nth", "3", "--min-us", "100")
    assert code == 0
    assert out.splitlines()[1].startswith("call 2805: rtnetlink_rcv")
    assert "folded (each shorter than min_us=100.000)" in out


def test_top_csv(capsys):
    code, out, _ = run(capsys, "top", PIPE, "--by", "count", "-n", "3", "--csv")
    assert code == 0
    rows = out.strip().splitlines()
    assert rows[0] == "func,count,total_us,self_us,mean_us,p50_us,p90_us,p99_us,max_us"
    assert rows[1].startswith("skb_put,672,")
    assert len(rows) == 4


@pytest.mark.parametrize("case,expect", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("binary", "binary data"),
    ("empty", "empty file"),
    ("notatrace", "no function_graph lines"),
    ("header_only", "holds no function calls"),
    ("dat", "malformed trace.dat header"),
    ("other_tracer", "'function' tracer"),
])
def test_bad_input_one_line_exit_2(case, expect, tmp_path, capsys):
    p = tmp_path / "t.txt"
    if case == "directory":
        p = tmp_path
    elif case == "binary":
        p.write_bytes(bytes(range(256)) * 10)
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "notatrace":
        p.write_text("hello\nworld\n")
    elif case == "header_only":
        p.write_text("# tracer: function_graph\n#\n# CPU  DURATION   FUNCTION CALLS\n# |  |   |  |\n")
    elif case == "dat":
        p.write_bytes(b"\x17\x08\x44tracing6\x00" + b"\x00" * 100)
    elif case == "other_tracer":
        p.write_text("# tracer: function\n#\n    bash-1 [000] ..... 1.000: foo <-bar\n")
    for cmd in (["report", str(p)], ["top", str(p)], ["tree", str(p), "--func", "x"]):
        code, out, err = run(capsys, *cmd)
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1 and expect in err, err
        assert "Traceback" not in err


def test_unknown_function_suggests(capsys):
    code, _, err = run(capsys, "report", PIPE, "--func", "rtnetlink_rvc")
    assert code == 2
    assert err.strip() == ("ftracekit: error: no function 'rtnetlink_rvc' in this trace; "
                           "did you mean 'rtnetlink_rcv' or 'rtnetlink_rcv_msg' or 'netlink_ack'?")


def test_tree_nth_out_of_range(capsys):
    code, _, err = run(capsys, "tree", PIPE, "--func", "rtnetlink_rcv", "--nth", "9")
    assert code == 2
    assert "--nth 9 is out of range: rtnetlink_rcv has 4 calls (0..3)" in err


def test_truncated_last_line_warns_but_reports(tmp_path, capsys):
    p = tmp_path / "cut.txt"
    p.write_bytes((DATA / "rtnl_depth3_markers.txt").read_bytes() + b" 0)     ip-407     | ! 11")
    code, out, _ = run(capsys, "report", str(p))
    assert code == 0
    assert "the last line is truncated (no newline) and was skipped" in out


def test_compressed_and_stdin_via_subprocess(tmp_path):
    gz = tmp_path / "t.txt.gz"
    gz.write_bytes(gzip.compress((DATA / "rtnl_depth3_markers.txt").read_bytes()))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "ftracekit", "report", str(gz)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "9 calls (9 complete" in r.stdout
    with open(DATA / "rtnl_depth3_markers.txt", "rb") as fh:
        r = subprocess.run([sys.executable, "-m", "ftracekit", "top", "-", "-n", "2"], stdin=fh,
                           capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:4] == ["func", "count", "total", "µs"]


def test_missing_file_subprocess_has_no_traceback():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "ftracekit", "report", "/nonexistent/trace.txt"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr == "ftracekit: error: /nonexistent/trace.txt: no such file\n"


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("ftracekit 0.")


def test_console_script_and_module_agree():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "ftracekit", "--help"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0
    for cmd in ("report", "tree", "top"):
        assert cmd in r.stdout
