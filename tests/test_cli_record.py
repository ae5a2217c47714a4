"""``record`` and ``doctor`` on THIS machine's kernel (no VM), plus argument handling.

The development/CI kernel has tracefs and the function tracer but no function_graph, and it
refuses set_ftrace_filter (EPERM): doctor must say so, record must fail with one line and exit 2,
and tracefs must be left exactly as it was. Recording on a real function_graph kernel is tested
in tests/live (inside a VM, started by tests/test_live_vm.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftracekit.cli import record as cli_record
from ftracekit.recording.tracefs import TraceFS

REPO = Path(__file__).resolve().parents[1]


def ftracekit(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ftracekit", *argv], capture_output=True,
                          text=True, env=env, timeout=timeout)


def host_tracefs() -> TraceFS:
    if os.geteuid() != 0:
        pytest.skip("needs root (tracefs)")
    try:
        return TraceFS()      # mounts it when absent, as record/doctor would
    except Exception as err:  # noqa: BLE001 - any reason: nothing to test against
        pytest.skip(f"no tracefs here: {err}")


def tracefs_state(tfs: TraceFS) -> dict[str, str]:
    """Raw text of every top-level control file a recording may touch (readable ones), all
    options, event enables of the systems we use, and the instance list."""
    names = ["current_tracer", "tracing_on", "set_graph_function", "set_graph_notrace",
             "set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_pid",
             "set_ftrace_notrace_pid", "set_event", "set_event_pid", "max_graph_depth",
             "tracing_thresh", "buffer_size_kb", "trace_clock"]
    names += [f"options/{n}" for n in sorted(os.listdir(tfs.path("options")))]
    for system in ("skb", "net", "tcp"):
        d = tfs.path(f"events/{system}")
        if d.is_dir():
            names += [f"events/{system}/{e}/enable" for e in sorted(os.listdir(d))
                      if (d / e / "enable").exists()]
    state = {}
    for n in names:
        try:
            state[n] = tfs.path(n).read_text()
        except FileNotFoundError:
            continue
        except PermissionError as err:          # EPERM on this machine: still compare that
            state[n] = f"<{err.strerror}>"
    state["<instances>"] = " ".join(tfs.instances())
    return state


def lacks_function_graph(tfs: TraceFS) -> bool:
    return "function_graph" not in tfs.read("available_tracers").split()


# ----------------------------------------------------------------------------- this machine
def test_doctor_on_this_kernel() -> None:
    tfs = host_tracefs()
    before = tracefs_state(tfs)
    r = ftracekit("doctor")
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stdout.splitlines()
    assert any(line.startswith("ok   tracefs") and str(tfs.root) in line for line in lines)
    tracers = tfs.read("available_tracers").split()
    assert any(line.split()[:1] == ["tracers"] and line.split()[1:] == tracers for line in lines)
    if lacks_function_graph(tfs):
        assert r.returncode == 2, r.stdout
        assert any(line.startswith("FAIL function_graph") for line in lines)
        assert lines[-1].startswith("cannot record: this kernel has no function_graph tracer")
    else:
        assert any(line.startswith("ok   function_graph") for line in lines)
    try:
        tfs.path("set_ftrace_filter").read_text()
    except PermissionError:
        assert any(line.startswith("FAIL function filters") and "EPERM" in line
                   and "locked down" in line for line in lines), r.stdout
    assert tracefs_state(tfs) == before


def test_doctor_json() -> None:
    host_tracefs()
    r = ftracekit("doctor", "--json")
    import json

    data = json.loads(r.stdout)
    assert data["ok"] is (r.returncode == 0)
    assert {c["name"] for c in data["checks"]} >= {"root", "tracefs", "tracers", "function_graph"}


def test_record_without_function_graph_fails_cleanly(tmp_path: Path) -> None:
    tfs = host_tracefs()
    if not lacks_function_graph(tfs):
        pytest.skip("this kernel has function_graph")
    before = tracefs_state(tfs)
    out = tmp_path / "t.txt"
    r = ftracekit("record", "rtnetlink_rcv", "-o", str(out), "--event", "skb:kfree_skb",
                  "--", "ip", "link", "show")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("ftracekit: error: this kernel has no function_graph tracer "
                               f"(available tracers: {tfs.read('available_tracers').strip()})")
    assert not out.exists()
    assert tracefs_state(tfs) == before


@pytest.mark.parametrize("argv, message", [
    (["record", "f", "-o", "/nonexistent-ftracekit-dir/t.txt"], "not a directory"),
    (["record", "f", "-p", "4194305"], "no process with pid 4194305"),
    (["record", "f", "--raw", "-o", "t.txt"], "a raw capture is a directory, not a text file"),
    (["record", "f", "--raw", "--no-stream"], "cannot be combined with no streaming"),
])
def test_record_bad_input_one_line(argv, message) -> None:
    r = ftracekit(*argv)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- arguments
def record_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftracekit")
    cli_record.register(parser.add_subparsers(dest="command"))
    return parser


def test_command_after_double_dash() -> None:
    ns = record_parser().parse_args(["record", "rtnetlink_rcv", "netlink_*", "-o", "x.txt",
                                     "--event", "skb:kfree_skb", "--", "ip", "-d", "link",
                                     "show", "--", "-o"])
    assert ns.functions == ["rtnetlink_rcv", "netlink_*"]
    assert ns.command_argv == ["ip", "-d", "link", "show", "--", "-o"]
    assert ns.output == "x.txt" and ns.event == ["skb:kfree_skb"]


def test_defaults_without_command() -> None:
    ns = record_parser().parse_args(["record", "f", "-d", "2.5", "-p", "1", "-p", "2",
                                     "--option", "retval,tail", "--option", "noirqs"])
    assert ns.command_argv == [] and ns.duration == 2.5 and ns.pid == [1, 2]
    assert ns.output is None and ns.raw is False     # the Recorder picks trace.txt / trace.raw
    assert record_parser().parse_args(["record", "f", "--raw"]).raw is True
    assert cli_record._split_commas(ns.option) == ["retval", "tail", "noirqs"]
    assert ns.depth == 0 and ns.thresh == 0 and ns.stream is True and not ns.force


@pytest.mark.parametrize("argv", [["record"], ["record", "f", "--depth", "-1"],
                                  ["record", "f", "-d", "0"], ["record", "f", "--buffer-kb", "x"]])
def test_bad_arguments_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        record_parser().parse_args(argv)
    assert exc.value.code == 2


def test_progress_line_counts_lines_or_raw_bytes(monkeypatch) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for raw, count, shown in ((False, 12345, "12,345 lines"), (True, 368640, "360.0 KiB of pages"),
                              (True, 3 << 20, "3.0 MiB of pages")):
        err = Tty()
        monkeypatch.setattr(sys, "stderr", err)
        progress = cli_record._Progress(raw=raw)
        progress(count, 7)
        assert err.getvalue() == f"\r  {shown}, 7 events lost  (Ctrl-C to stop) "
