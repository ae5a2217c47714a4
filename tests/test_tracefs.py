"""tracefs.py on a fake directory tree: discovery, value handling, errno → error mapping,
snapshot/restore. The real kernel is exercised by tests/live (in a VM)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ftracekit.errors import (
    NotTraceableError, PermissionDeniedError, TracefsError, TracefsNotFoundError,
    TracerBusyError, TracerUnavailableError, UnknownFunctionError,
)
from ftracekit.recording.tracefs import TraceFS, find_tracefs

STATS = """entries: 12
overrun: 345
commit overrun: 0
bytes: 6789
oldest event ts:   101.123456
now ts:   105.654321
dropped events: 7
read events: 89
"""


def make_tree(root: Path, **files: str) -> TraceFS:
    """A minimal tracing directory. Keyword names use '__' for '/'."""
    defaults = {
        "available_tracers": "function_graph function nop\n",
        "current_tracer": "nop\n",
        "tracing_on": "1\n",
        "set_graph_function": "#### all functions enabled ####\n",
        "set_graph_notrace": "",
        "set_ftrace_filter": "#### all functions enabled ####\n",
        "set_ftrace_notrace": "",
        "set_ftrace_pid": "no pid\n",
        "max_graph_depth": "0\n",
        "tracing_thresh": "0\n",
        "buffer_size_kb": "7 (expanded: 1408)\n",
        "trace_clock": "[local] global counter uptime perf mono\n",
        "available_filter_functions": "rtnetlink_rcv\nrtnetlink_rcv_msg\nnetlink_dump\n"
                                      "tcp_v4_rcv\ndummy_xmit [dummy]\n",
        "options__funcgraph-proc": "0\n",
        "options__funcgraph-abstime": "0\n",
        "options__funcgraph-irqs": "1\n",
        "options__function-fork": "0\n",
        "events__skb__kfree_skb__enable": "0\n",
        "events__skb__consume_skb__enable": "0\n",
        "events__net__netif_rx__enable": "0\n",
        "per_cpu__cpu0__stats": STATS,
        "per_cpu__cpu1__stats": STATS.replace("overrun: 345", "overrun: 0"),
        "trace": "",
        "trace_pipe": "",
    }
    defaults.update(files)
    for name, text in defaults.items():
        if text is None:
            continue
        p = root / name.replace("__", "/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "instances").mkdir(exist_ok=True)
    return TraceFS(root)


@pytest.fixture
def tfs(tmp_path: Path) -> TraceFS:
    return make_tree(tmp_path / "tracing")


# ---------------------------------------------------------------------------- discovery
def test_find_tracefs_prefers_tracefs_mount(tmp_path: Path) -> None:
    (tmp_path / "my tracing").mkdir()
    (tmp_path / "dbg" / "tracing").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"debugfs {tmp_path}/dbg debugfs rw 0 0\n"
                      f"nodev {str(tmp_path).replace(' ', chr(92) + '040')}/my\\040tracing "
                      "tracefs rw 0 0\n")
    path, how = find_tracefs(mounts_file=str(mounts))
    assert (path, how) == (tmp_path / "my tracing", "tracefs")


def test_find_tracefs_falls_back_to_debugfs(tmp_path: Path) -> None:
    (tmp_path / "dbg" / "tracing").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"sysfs /sys sysfs rw 0 0\ndebugfs {tmp_path}/dbg debugfs rw 0 0\n")
    assert find_tracefs(mounts_file=str(mounts)) == (tmp_path / "dbg" / "tracing", "debugfs")


def test_find_tracefs_unmounted_without_mounting_is_a_clear_error(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("sysfs /sys sysfs rw 0 0\n")
    with pytest.raises(TracefsNotFoundError, match="tracefs"):
        find_tracefs(mount=False, mounts_file=str(mounts))


def test_find_tracefs_unmounted_and_not_root(tmp_path: Path, monkeypatch) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    if not os.path.isdir("/sys/kernel/tracing"):
        pytest.skip("no /sys/kernel/tracing on this kernel")
    with pytest.raises(TracefsNotFoundError, match="only root can mount"):
        find_tracefs(mount=True, mounts_file=str(mounts))


def test_root_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TracefsNotFoundError):
        TraceFS(tmp_path / "missing")


# ---------------------------------------------------------------------------- values
def test_read_value_normalises(tfs: TraceFS) -> None:
    assert tfs.read_value("trace_clock") == "local"
    assert tfs.read_value("buffer_size_kb") == "1408"
    assert tfs.read_value("tracing_on") == "1"


def test_read_list_drops_comments_and_converts_modules(tfs: TraceFS) -> None:
    assert tfs.read_list("set_graph_function") == []
    assert tfs.read_list("set_ftrace_pid") == []
    tfs.path("set_ftrace_filter").write_text("tcp_v4_rcv\ndummy_xmit [dummy]\n")
    assert tfs.read_list("set_ftrace_filter") == ["tcp_v4_rcv", "dummy_xmit:mod:dummy"]


def test_write_and_ensure(tfs: TraceFS) -> None:
    assert tfs.ensure("tracing_on", "1") is False          # same value: no write
    assert tfs.ensure("tracing_on", 0) is True
    assert tfs.read("tracing_on") == "0\n"
    assert tfs.ensure("set_graph_function", ["a", "b"]) is True
    assert tfs.read("set_graph_function") == "a\nb\n"
    assert tfs.ensure("set_graph_function", ["b", "a"]) is False   # order does not matter
    assert tfs.ensure("buffer_size_kb", 1408) is False             # "7 (expanded: 1408)"


def test_options_and_set_option(tfs: TraceFS) -> None:
    assert tfs.options() == {"funcgraph-abstime": False, "funcgraph-irqs": True,
                             "funcgraph-proc": False, "function-fork": False}
    tfs.set_option("funcgraph-proc", True)
    assert tfs.options()["funcgraph-proc"] is True
    with pytest.raises(TracerUnavailableError, match="funcgraph-retval"):
        tfs.set_option("funcgraph-retval", True)


def test_set_tracer_unknown_lists_available(tfs: TraceFS) -> None:
    with pytest.raises(TracerUnavailableError, match="available tracers: function_graph function nop"):
        tfs.set_tracer("wakeup")
    tfs.set_tracer("function_graph")
    assert tfs.current_tracer() == "function_graph"


def test_available_functions_drop_module(tfs: TraceFS) -> None:
    assert tfs.available_functions()[-1] == "dummy_xmit"


def test_event_files(tfs: TraceFS) -> None:
    assert tfs.event_files("skb:kfree_skb") == ["events/skb/kfree_skb/enable"]
    assert tfs.event_files("skb:*") == ["events/skb/consume_skb/enable",
                                        "events/skb/kfree_skb/enable"]
    assert tfs.event_files("net") == ["events/net/netif_rx/enable"]
    with pytest.raises(TracerUnavailableError, match="did you mean 'skb:kfree_skb'"):
        tfs.event_files("skb:kfree_skbb")
    with pytest.raises(TracerUnavailableError, match="did you mean 'skb'"):
        tfs.event_files("skbb:kfree_skb")


def test_cpu_stats(tfs: TraceFS) -> None:
    stats = tfs.cpu_stats()
    assert sorted(stats) == [0, 1]
    assert stats[0]["overrun"] == 345 and stats[0]["dropped_events"] == 7
    assert stats[0]["read_events"] == 89 and stats[0]["oldest_event_ts"] == pytest.approx(101.123456)
    assert stats[1]["overrun"] == 0


def test_header_keeps_only_comment_lines(tfs: TraceFS) -> None:
    tfs.path("trace").write_text("# tracer: function_graph\n#\n 0)  1.0 us  |  f();\n")
    assert tfs.header() == "# tracer: function_graph\n#\n"


def test_instances(tfs: TraceFS) -> None:
    inst = tfs.make_instance("ftk")
    assert inst.is_instance and inst.top is tfs and inst.name == "ftk"
    assert tfs.instances() == ["ftk"]
    tfs.remove_instance("ftk")
    tfs.remove_instance("ftk")     # already gone: fine
    assert tfs.instances() == []


# ---------------------------------------------------------------------------- errno mapping
def test_eperm_as_root_says_locked_down(tfs: TraceFS, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    err = tfs._error(OSError(errno.EPERM, "Operation not permitted"), "set_ftrace_filter", "reading")
    assert isinstance(err, PermissionDeniedError)
    assert "locked down" in str(err) and "set_ftrace_filter" in str(err)


def test_eacces_as_user_says_needs_root(tfs: TraceFS, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    err = tfs._error(OSError(errno.EACCES, "Permission denied"), "current_tracer", "reading")
    assert isinstance(err, PermissionDeniedError) and "needs root" in str(err)


def test_einval_on_filter_suggests_close_matches(tfs: TraceFS) -> None:
    err = tfs._error(OSError(errno.EINVAL, "Invalid argument"), "set_graph_function", "writing",
                     "rtnetlink_rvc")
    assert isinstance(err, NotTraceableError) and isinstance(err, UnknownFunctionError)
    assert err.suggestions[0] == "rtnetlink_rcv"
    assert "did you mean 'rtnetlink_rcv'" in str(err)


def test_einval_on_filter_with_unreadable_function_list(tfs: TraceFS) -> None:
    tfs.path("available_filter_functions").unlink()
    tfs.path("available_filter_functions").mkdir()      # reading it fails (EISDIR)
    err = tfs._error(OSError(errno.EINVAL, "Invalid argument"), "set_graph_function", "writing",
                     "rtnetlink_rvc")
    assert isinstance(err, NotTraceableError)
    assert err.suggestions == [] and "no suggestions" in str(err)


def test_einval_on_current_tracer_lists_tracers(tfs: TraceFS) -> None:
    err = tfs._error(OSError(errno.EINVAL, "Invalid argument"), "current_tracer", "writing",
                     "function_graph")
    assert isinstance(err, TracerUnavailableError) and "function_graph function nop" in str(err)


def test_ebusy_and_enoent(tfs: TraceFS) -> None:
    assert isinstance(tfs._error(OSError(errno.EBUSY, "busy"), "instances/x", "removing"),
                      TracerBusyError)
    err = tfs._error(OSError(errno.ENOENT, "No such file"), "set_graph_function", "reading")
    assert isinstance(err, TracerUnavailableError) and "does not support" in str(err)


def test_read_missing_file_raises_library_error(tfs: TraceFS) -> None:
    with pytest.raises(TracerUnavailableError):
        tfs.read("max_graph_depthx")
    with pytest.raises(TracefsError):
        tfs.write("no_such_dir/file", "1")


# ---------------------------------------------------------------------------- snapshot/restore
def test_snapshot_restore_round_trip(tfs: TraceFS) -> None:
    files = ["current_tracer", "set_graph_function", "set_ftrace_pid", "trace_clock",
             "buffer_size_kb", "options/funcgraph-proc", "events/skb/kfree_skb/enable",
             "does_not_exist"]
    tfs.path("set_graph_function").write_text("old_a\nold_b\n")
    snap = tfs.snapshot(files)
    assert "does_not_exist" not in snap
    before = {n: tfs.read(n) for n in snap}

    tfs.write("current_tracer", "function_graph")
    tfs.write_list("set_graph_function", ["new"])
    tfs.write_list("set_ftrace_pid", ["42"])
    tfs.write("trace_clock", "global")
    tfs.write("options/funcgraph-proc", "1")
    tfs.write("events/skb/kfree_skb/enable", "1")
    assert set(tfs.differences(snap)) == {"current_tracer", "set_graph_function", "set_ftrace_pid",
                                          "trace_clock", "options/funcgraph-proc",
                                          "events/skb/kfree_skb/enable"}
    assert tfs.restore(snap) == []
    assert tfs.differences(snap) == []
    after = {n: tfs.read(n) for n in snap}
    # A fake file cannot reproduce the kernel's rendering ("[local] global ..."), so compare
    # what the kernel would be given back.
    assert after["set_graph_function"] == "old_a\nold_b\n"
    assert after["current_tracer"] == before["current_tracer"]
    assert after["trace_clock"] == "local\n"
    assert after["set_ftrace_pid"] == ""
    assert after["buffer_size_kb"] == before["buffer_size_kb"]     # unchanged: not rewritten


def test_snapshot_per_cpu_buffer_sizes_when_they_differ(tfs: TraceFS) -> None:
    tfs.path("buffer_size_kb").write_text("X\n")
    for cpu, size in ((0, "100"), (1, "200")):
        tfs.path(f"per_cpu/cpu{cpu}/buffer_size_kb").write_text(size + "\n")
    snap = tfs.snapshot(["buffer_size_kb"])
    assert list(snap) == ["buffer_size_kb", "per_cpu/cpu0/buffer_size_kb",
                          "per_cpu/cpu1/buffer_size_kb"]
    tfs.write("buffer_size_kb", "4096")
    tfs.write("per_cpu/cpu0/buffer_size_kb", "4096")
    tfs.write("per_cpu/cpu1/buffer_size_kb", "4096")
    assert tfs.restore(snap) == []
    assert tfs.read("per_cpu/cpu0/buffer_size_kb") == "100\n"
    assert tfs.read("per_cpu/cpu1/buffer_size_kb") == "200\n"


def test_restore_reports_failures_and_continues(tfs: TraceFS) -> None:
    snap = tfs.snapshot(["current_tracer", "tracing_on"])
    tfs.write("current_tracer", "function")
    tfs.write("tracing_on", "0")
    tfs.path("current_tracer").unlink()
    tfs.path("current_tracer").mkdir()          # cannot be written back any more
    failures = tfs.restore(snap)
    assert len(failures) == 1 and failures[0].startswith("current_tracer")
    assert tfs.read("tracing_on") == "1\n"
