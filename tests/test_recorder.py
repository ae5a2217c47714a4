"""Recorder plumbing on a fake tracing tree (no kernel): settings → control files, the lock,
stale-state recovery, restore on every exit path, the sidecar. A regular file stands in for
``trace_pipe`` so the whole record → text → load path runs. The real kernel is exercised by
tests/live (in a VM)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ftracekit.errors import RecordError, TracefsError, TracerBusyError, TracerUnavailableError
from ftracekit.recording.recorder import (
    INSTANCE_PREFIX, LostEventsWarning, Recorder, StaleStateWarning, _Lock, _lost, recover_stale,
)
from ftracekit.recording.sidecar import read_sidecar
from ftracekit.recording.tracefs import LIST_FILES, TraceFS

from test_tracefs import STATS, make_tree

PIPE_TEXT = """\
 0)   ip-398    |               |  rtnetlink_rcv() {
 0)   ip-398    |               |    netlink_rcv_skb() {
 0)   ip-398    |   1.250 us    |      rtnetlink_rcv_msg();
 0)   ip-398    |   4.000 us    |    }
 0)   ip-398    |   9.500 us    |  }
"""

UNTOUCHABLE = ("trace", "trace_pipe")


def tree_state(tfs: TraceFS) -> dict[str, object]:
    """Every file of the fake tree (except the buffer stand-ins) and the instances present.

    Values as the kernel would hold them: a plain file cannot render "[local] global" or
    "#### all functions enabled ####" the way tracefs does after a write.
    """
    state: dict[str, object] = {}
    for p in sorted(tfs.root.rglob("*")):
        rel = str(p.relative_to(tfs.root))
        if p.is_file() and rel not in UNTOUCHABLE:
            base = rel.rsplit("/", 1)[-1]
            state[rel] = (sorted(tfs.read_list(rel)) if base in LIST_FILES
                          else tfs.read_value(rel))
        elif p.is_dir():
            state[rel] = "<dir>"
    return state


@pytest.fixture
def tfs(tmp_path: Path) -> TraceFS:
    t = make_tree(tmp_path / "tracing", trace_pipe=PIPE_TEXT)
    return t


def rec(tfs: TraceFS, tmp_path: Path, functions=("rtnetlink_rcv",), **kw) -> Recorder:
    if "output" not in kw:
        (tmp_path / "out").mkdir(exist_ok=True)
        kw["output"] = tmp_path / "out" / "t.txt"
    kw.setdefault("duration_s", 0.2)
    return Recorder(list(functions), tracefs=tfs, lock_dir=tmp_path, **kw)


def lock_text(tfs: TraceFS, tmp_path: Path) -> str:
    p = _Lock(tfs, tmp_path).path
    return p.read_text() if p.exists() else ""


# ------------------------------------------------------------------------- full runs
def test_run_writes_text_sidecar_and_restores(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    r = rec(tfs, tmp_path, notrace=["schedule"], max_depth=5, thresh_us=3, buffer_kb=2048,
            options=["noirqs"], events=["skb:kfree_skb"], clock="global")
    trace = r.run()
    assert tree_state(tfs) == before
    assert lock_text(tfs, tmp_path) == ""
    assert trace.calls["func"].tolist() == ["rtnetlink_rcv", "netlink_rcv_skb", "rtnetlink_rcv_msg"]
    text = (tmp_path / "out" / "t.txt").read_text()
    assert text == PIPE_TEXT
    side = read_sidecar(tmp_path / "out" / "t.txt")
    assert side is not None and trace.meta["recording"] == side
    assert side["settings"]["functions"] == ["rtnetlink_rcv"]
    assert side["settings"]["events"] == ["skb:kfree_skb"]
    assert side["mode"] == "top-level" and side["lines"] == 5
    assert side["lost_events"] == {"per_cpu": {"0": {"overrun": 0, "dropped": 0},
                                               "1": {"overrun": 0, "dropped": 0}}, "total": 0}
    assert side["stats_before"]["0"]["overrun"] == 345


def test_settings_reach_the_control_files(tfs: TraceFS, tmp_path: Path) -> None:
    seen = {}

    def look() -> None:
        for name in ("current_tracer", "set_graph_function", "set_graph_notrace",
                     "set_ftrace_filter", "set_ftrace_pid", "max_graph_depth", "tracing_thresh",
                     "buffer_size_kb", "trace_clock", "tracing_on", "options/funcgraph-proc",
                     "options/funcgraph-abstime", "options/function-fork",
                     "events/skb/kfree_skb/enable", "events/skb/consume_skb/enable"):
            seen[name] = tfs.read(name)

    with rec(tfs, tmp_path, functions=["rtnetlink_rcv", "netlink_dump"], notrace=["schedule"],
             filter=["rtnetlink_*"], pids=[os.getpid()], follow=True, max_depth=5,
             thresh_us=3, buffer_kb=2048, events=["skb:*"], clock="global"):
        look()
    assert seen == {
        "current_tracer": "function_graph\n", "set_graph_function": "rtnetlink_rcv\nnetlink_dump\n",
        "set_graph_notrace": "schedule\n", "set_ftrace_filter": "rtnetlink_*\n",
        "set_ftrace_pid": f"{os.getpid()}\n", "max_graph_depth": "5\n", "tracing_thresh": "3\n",
        "buffer_size_kb": "2048\n", "trace_clock": "global\n", "tracing_on": "1\n",
        "options/funcgraph-proc": "1\n", "options/funcgraph-abstime": "1\n",
        "options/function-fork": "1\n", "events/skb/kfree_skb/enable": "1\n",
        "events/skb/consume_skb/enable": "1\n",
    }


def test_lost_events_go_to_metadata_and_a_warning(tfs: TraceFS, tmp_path: Path) -> None:
    r = rec(tfs, tmp_path)
    with pytest.warns(LostEventsWarning, match="1000 events were lost"):
        with r:
            tfs.path("per_cpu/cpu1/stats").write_text(
                STATS.replace("overrun: 345", "overrun: 990").replace("dropped events: 7",
                                                                      "dropped events: 17"))
    assert r.meta["lost_events"]["per_cpu"][1] == {"overrun": 990, "dropped": 10}
    assert r.meta["lost_events"]["total"] == 1000
    assert read_sidecar(r.output)["lost_events"]["total"] == 1000


def test_no_stream_reads_trace_once(tfs: TraceFS, tmp_path: Path) -> None:
    r = rec(tfs, tmp_path, stream=False)
    with r:
        tfs.path("trace").write_text("# tracer: function_graph\n#\n" + PIPE_TEXT)
    assert r.output.read_text() == PIPE_TEXT
    assert r.trace is not None and len(r.trace.calls) == 3


# ------------------------------------------------------------------------- every exit path
def test_exception_inside_with_restores_and_keeps_text(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    r = rec(tfs, tmp_path)
    with pytest.raises(ZeroDivisionError):
        with r:
            1 / 0
    assert tree_state(tfs) == before
    assert r.trace is None
    assert r.output.read_text() == PIPE_TEXT
    assert read_sidecar(r.output)["lines"] == 5


def test_failing_command_restores_and_returns_trace(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    r = rec(tfs, tmp_path, duration_s=None, command=["false"])
    trace = r.run()
    assert r.returncode == 1 and trace.meta["recording"]["command_returncode"] == 1
    assert tree_state(tfs) == before


def test_missing_command_is_a_record_error(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    with pytest.raises(RecordError, match="cannot run 'no-such-command-xyz'"):
        rec(tfs, tmp_path, duration_s=None, command=["no-such-command-xyz"]).run()
    assert tree_state(tfs) == before


def test_sigterm_stops_cleanly(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    r = rec(tfs, tmp_path, duration_s=30)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    trace = r.run()
    assert time.monotonic() - t0 < 10
    assert r.interrupted and trace.meta["recording"]["interrupted"] is True
    assert tree_state(tfs) == before
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_nothing_recorded_is_an_error(tfs: TraceFS, tmp_path: Path) -> None:
    tfs.path("trace_pipe").write_text("")
    before = tree_state(tfs)
    with pytest.raises(RecordError, match="nothing was recorded: rtnetlink_rcv was not called"):
        rec(tfs, tmp_path).run()
    assert tree_state(tfs) == before


# ------------------------------------------------------------------------- refusals
def test_no_function_graph(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing", available_tracers="blk function nop\n")
    before = tree_state(tfs)
    with pytest.raises(TracerUnavailableError, match=r"no function_graph tracer \(available "
                                                     r"tracers: blk function nop\)"):
        rec(tfs, tmp_path).run()
    assert tree_state(tfs) == before


def test_busy_tracer_refused_then_forced(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing", current_tracer="function\n", trace_pipe=PIPE_TEXT)
    before = tree_state(tfs)
    with pytest.raises(TracerBusyError, match="'function' is active.*--force"):
        rec(tfs, tmp_path).run()
    assert tree_state(tfs) == before
    rec(tfs, tmp_path, force=True).run()
    assert tree_state(tfs) == before          # their tracer is back


def test_live_lock_refused(tfs: TraceFS, tmp_path: Path) -> None:
    other = _Lock(tfs, tmp_path)
    assert other.acquire()
    other.write({"pid": 4242, "snapshot": {}})
    before = tree_state(tfs)
    try:
        with pytest.raises(TracerBusyError, match="another ftracekit \\(pid 4242\\)"):
            rec(tfs, tmp_path).run()
        assert tree_state(tfs) == before
    finally:
        other.release()


@pytest.mark.parametrize("kw, message", [
    ({"events": ["skb:kfree_skbb"]}, "did you mean 'skb:kfree_skb'"),
    ({"clock": "tsc"}, "no trace clock 'tsc'"),
    ({"options": ["retval"]}, "no trace option 'retval'.*abstime irqs proc"),
])
def test_bad_settings_change_nothing(tfs: TraceFS, tmp_path: Path, kw, message) -> None:
    before = tree_state(tfs)
    with pytest.raises(TracerUnavailableError, match=message):
        rec(tfs, tmp_path, **kw).run()
    assert tree_state(tfs) == before
    assert lock_text(tfs, tmp_path) == ""


@pytest.mark.parametrize("kw, message", [
    ({"functions": []}, "at least one function"),
    ({"pids": [2**22 + 1]}, "no process with pid"),
    ({"duration_s": -1}, "duration must be positive"),
    ({"output": "/nonexistent-ftracekit-dir/t.txt"}, "not a directory"),
])
def test_invalid_settings(tfs: TraceFS, tmp_path: Path, kw, message) -> None:
    with pytest.raises(RecordError, match=message):
        rec(tfs, tmp_path, **kw)


# ------------------------------------------------------------------------- stale state
def _simulate_killed_recording(tfs: TraceFS, tmp_path: Path) -> tuple[dict, str]:
    """What a SIGKILLed recording leaves: modified files, its instance, a lock with content."""
    before = tree_state(tfs)
    snapshot = tfs.snapshot(["current_tracer", "set_graph_function", "options/funcgraph-proc",
                             "tracing_on"])
    name = f"{INSTANCE_PREFIX}999999-1"
    tfs.make_instance(name)
    lock = _Lock(tfs, tmp_path)
    assert lock.acquire()
    lock.write({"pid": 999999, "instance": name, "snapshot": snapshot})
    os.close(lock.fd)          # the process died: the flock is gone, the content stays
    tfs.write("current_tracer", "function_graph")
    tfs.write_list("set_graph_function", ["rtnetlink_rcv"])
    tfs.write("options/funcgraph-proc", "1")
    tfs.write("tracing_on", "0")
    return before, name


def test_recover_stale(tfs: TraceFS, tmp_path: Path) -> None:
    before, name = _simulate_killed_recording(tfs, tmp_path)
    assert tree_state(tfs) != before
    done = recover_stale(tfs, lock_dir=tmp_path)
    assert any("pid 999999" in d for d in done) and any(name in d for d in done)
    assert tree_state(tfs) == before
    assert lock_text(tfs, tmp_path) == ""
    assert recover_stale(tfs, lock_dir=tmp_path) == []


def test_next_recording_cleans_stale_state(tfs: TraceFS, tmp_path: Path) -> None:
    before, _ = _simulate_killed_recording(tfs, tmp_path)
    with pytest.warns(StaleStateWarning, match="pid 999999"):
        rec(tfs, tmp_path).run()
    assert tree_state(tfs) == before


def test_instances_of_live_owners_are_left_alone(tfs: TraceFS, tmp_path: Path) -> None:
    from ftracekit.recording._lock import _proc_starttime
    mine = f"{INSTANCE_PREFIX}{os.getpid()}-{_proc_starttime(os.getpid())}"
    tfs.make_instance(mine)
    tfs.make_instance("someone-else")
    tfs.make_instance(f"{INSTANCE_PREFIX}{os.getpid()}-1")     # pid reused by us: dead owner
    recover_stale(tfs, lock_dir=tmp_path)
    assert tfs.instances() == [mine, "someone-else"]


# ------------------------------------------------------------------------- small pieces
def test_option_words() -> None:
    r = Recorder(["f"], options=["retval", "noirqs", "tail"], output="/tmp/x.txt")
    assert r.options == {"retval": True, "irqs": False, "tail": True}
    assert Recorder(["f"], options={"proc": False}, output="/tmp/x.txt").options == {"proc": False}


def test_lost_arithmetic() -> None:
    before = {0: {"overrun": 5, "dropped_events": 1}, 1: {"overrun": 0}}
    after = {0: {"overrun": 15, "dropped_events": 4}, 1: {"overrun": 2, "dropped_events": 0}}
    assert _lost(before, after) == {"per_cpu": {0: {"overrun": 10, "dropped": 3},
                                                1: {"overrun": 2, "dropped": 0}}, "total": 15}


def test_settings_are_json(tmp_path: Path) -> None:
    r = Recorder("f", output=tmp_path / "t.txt", events="skb:kfree_skb", pids=os.getpid())
    s = json.loads(json.dumps(r.settings))
    assert s["functions"] == ["f"] and s["events"] == ["skb:kfree_skb"] and s["pids"] == [os.getpid()]


def test_unwritable_output_is_a_record_error(tfs: TraceFS, tmp_path: Path) -> None:
    before = tree_state(tfs)
    with pytest.raises(RecordError, match="cannot write the trace to /proc/ftracekit-t.txt"):
        rec(tfs, tmp_path, output="/proc/ftracekit-t.txt").run()
    assert tree_state(tfs) == before
    assert lock_text(tfs, tmp_path) == ""


def test_failed_start_leaves_no_empty_output(tfs: TraceFS, tmp_path: Path) -> None:
    tfs.path("set_graph_notrace").unlink()
    tfs.path("set_graph_notrace").mkdir()              # writing it fails after the file opened
    r = rec(tfs, tmp_path, notrace=["schedule"])
    with pytest.raises(TracefsError, match="set_graph_notrace"):
        r.run()
    assert not r.output.exists()


# ------------------------------------------------------------------------- raw capture
#: A real capture (Debian 6.17, two CPUs): its cpuN.raw are real trace_pipe_raw pages.
RAW_CAP = Path(__file__).parent / "data" / "raw-6.17" / "rtnl_capture"


@pytest.fixture
def raw_tfs(tfs: TraceFS, tmp_path: Path, monkeypatch) -> TraceFS:
    """The fake tree serving the real capture: per_cpu/cpuN/trace_pipe_raw hold its pages,
    events/ its formats, saved_cmdlines its cmdlines; /proc/kallsyms is its symbol list
    (the host's own symbols would name the 6.17 addresses wrongly)."""
    import gzip

    import ftracekit.recording.rawcapture

    for cpu in (0, 1):
        tfs.path(f"per_cpu/cpu{cpu}/trace_pipe_raw").write_bytes(
            (RAW_CAP / f"cpu{cpu}.raw").read_bytes())
    for fmt in (RAW_CAP / "formats").glob("*/*/format"):
        dest = tfs.path(f"events/{fmt.relative_to(RAW_CAP / 'formats')}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(fmt.read_text())
    tfs.path("events/header_page").write_text((RAW_CAP / "formats/header_page").read_text())
    tfs.path("saved_cmdlines").write_text((RAW_CAP / "saved_cmdlines").read_text())
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_bytes(gzip.decompress((RAW_CAP / "kallsyms.gz").read_bytes()))
    monkeypatch.setattr(ftracekit.recording.rawcapture, "KALLSYMS", str(kallsyms))
    return tfs


def test_raw_capture_loads_like_the_real_capture(raw_tfs: TraceFS, tmp_path: Path) -> None:
    import pandas as pd

    import ftracekit

    before = tree_state(raw_tfs)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "rtnl.raw"
    r = rec(raw_tfs, tmp_path, output=out, raw=True, events=["skb:kfree_skb"], buffer_kb=2048)
    trace = r.run()
    assert tree_state(raw_tfs) == before
    assert lock_text(raw_tfs, tmp_path) == ""
    expected = ftracekit.load(RAW_CAP)
    assert len(trace.calls) == 5054
    pd.testing.assert_frame_equal(trace.calls, expected.calls)
    pd.testing.assert_frame_equal(trace.events, expected.events)
    assert len(trace.events) == 9
    # what the recorder wrote: the pages as read, the formats, no text and no sidecar
    for cpu in (0, 1):
        assert (out / f"cpu{cpu}.raw").read_bytes() == (RAW_CAP / f"cpu{cpu}.raw").read_bytes()
    assert sorted(str(p.relative_to(out / "formats")) for p in (out / "formats").rglob("format")) \
        == ["ftrace/funcgraph_entry/format", "ftrace/funcgraph_exit/format",
            "ftrace/print/format", "skb/kfree_skb/format"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["rtnl.raw"]
    info = json.loads((out / "capture.json").read_text())
    assert trace.meta["recording"] == info
    assert info["capture"] == "raw" and info["settings"]["raw"] is True
    assert info["mode"] == "top-level" and info["page_size"] == 4096
    assert info["bytes"] == 114688 + 253952 and info["pages"] == 90 and info["cpus"] == [0, 1]
    assert info["kallsyms_symbols"] == 798
    assert info["lost_events"] == {"per_cpu": {"0": {"overrun": 0, "dropped": 0},
                                               "1": {"overrun": 0, "dropped": 0}}, "total": 0}
    assert info["stats_before"]["0"]["overrun"] == 345
    assert trace.summary()["recording_lost_events"] == 0
    assert trace.meta["options"] == info["options"] and info["options"]["funcgraph-proc"] is True
    assert r.bytes == info["bytes"] and r.captured == r.bytes and r.lines == 0


def test_raw_default_output_and_previous_capture_replaced(raw_tfs: TraceFS, tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = Recorder(["rtnetlink_rcv"], raw=True, duration_s=0.2, tracefs=raw_tfs,
                     lock_dir=tmp_path)
    assert first.output == Path("trace.raw")
    assert Recorder(["f"], output=None).output == Path("trace.txt")
    n_calls = len(first.run().calls)
    (tmp_path / "trace.raw" / "cpu7.raw").write_bytes(b"\0" * 4096)   # a CPU gone since then
    second = Recorder(["rtnetlink_rcv"], raw=True, duration_s=0.2, tracefs=raw_tfs,
                      lock_dir=tmp_path).run()
    assert len(second.calls) == n_calls
    assert sorted(p.name for p in (tmp_path / "trace.raw").glob("cpu*.raw")) == ["cpu0.raw",
                                                                                 "cpu1.raw"]


def test_raw_lost_events_in_capture_json(raw_tfs: TraceFS, tmp_path: Path) -> None:
    r = rec(raw_tfs, tmp_path, output=tmp_path / "lost.raw", raw=True)
    with pytest.warns(LostEventsWarning, match="1000 events were lost"):
        with r:
            raw_tfs.path("per_cpu/cpu1/stats").write_text(
                STATS.replace("overrun: 345", "overrun: 990").replace("dropped events: 7",
                                                                      "dropped events: 17"))
    assert r.meta["lost_events"]["per_cpu"][1] == {"overrun": 990, "dropped": 10}
    assert r.trace is not None
    assert r.trace.meta["recording"]["lost_events"]["total"] == 1000
    assert r.trace.summary()["recording_lost_events"] == 1000


def test_raw_exception_inside_with_restores_and_keeps_capture(raw_tfs: TraceFS,
                                                              tmp_path: Path) -> None:
    import ftracekit

    before = tree_state(raw_tfs)
    r = rec(raw_tfs, tmp_path, output=tmp_path / "boom.raw", raw=True)
    with pytest.raises(ZeroDivisionError):
        with r:
            1 / 0
    assert tree_state(raw_tfs) == before
    assert r.trace is None
    assert len(ftracekit.load(tmp_path / "boom.raw").calls) == 5054


def test_raw_nothing_recorded_is_an_error(raw_tfs: TraceFS, tmp_path: Path) -> None:
    for cpu in (0, 1):
        raw_tfs.path(f"per_cpu/cpu{cpu}/trace_pipe_raw").write_bytes(b"")
    before = tree_state(raw_tfs)
    with pytest.raises(RecordError, match="nothing was recorded.*holds no ring-buffer pages"):
        rec(raw_tfs, tmp_path, output=tmp_path / "empty.raw", raw=True).run()
    assert tree_state(raw_tfs) == before


def test_raw_failed_start_removes_its_directory(raw_tfs: TraceFS, tmp_path: Path) -> None:
    raw_tfs.path("per_cpu/cpu1/trace_pipe_raw").unlink()      # opening it fails (ENOENT)
    before = tree_state(raw_tfs)
    r = rec(raw_tfs, tmp_path, output=tmp_path / "failed.raw", raw=True)
    with pytest.raises(TracerUnavailableError, match="cpu1/trace_pipe_raw does not exist"):
        r.run()
    assert tree_state(raw_tfs) == before
    assert lock_text(raw_tfs, tmp_path) == ""
    assert not (tmp_path / "failed.raw").exists()


@pytest.mark.parametrize("kw, message", [
    ({"output": "t.txt"}, r"a raw capture is a directory.*\(e.g. t.raw\), not t.txt"),
    ({"stream": False}, "cannot be combined with no streaming"),
    ({"output": "/nonexistent-ftracekit-dir/t.raw"}, "not a directory"),
])
def test_raw_invalid_settings(tfs: TraceFS, tmp_path: Path, kw, message) -> None:
    with pytest.raises(RecordError, match=message):
        rec(tfs, tmp_path, raw=True, **kw)


def test_raw_output_must_be_a_new_or_capture_directory(tfs: TraceFS, tmp_path: Path) -> None:
    (tmp_path / "file.raw").write_text("x")
    with pytest.raises(RecordError, match="file.raw: it exists and is not a directory"):
        rec(tfs, tmp_path, raw=True, output=tmp_path / "file.raw")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("keep me")
    with pytest.raises(RecordError, match=r"holds other files \(notes.md\)"):
        rec(tfs, tmp_path, raw=True, output=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.md").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert rec(tfs, tmp_path, raw=True, output=tmp_path / "empty").output == tmp_path / "empty"
