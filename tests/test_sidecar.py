"""The recorder's sidecar JSON: only ours is read into ``meta["recording"]`` (issue 10, item 15)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ftracekit
from ftracekit.recording.sidecar import find_sidecar, is_recorder_sidecar, read_sidecar

DATA = Path(__file__).parent / "data"


def test_capture_harness_json_is_not_a_sidecar():
    # tests/data/capture.py writes proc_abstime.json ("name", "writes", "reads" …): not ours
    t = ftracekit.load(DATA / "6.1.0-56-amd64" / "proc_abstime.txt")
    assert "recording" not in t.meta
    assert t.meta["sidecar_ignored"] == ("proc_abstime.json next to the trace ignored: not "
                                         "written by ftracekit's recorder (no ftracekit_version "
                                         "or settings)")
    assert t.summary()["recording_lost_events"] is None


def test_recorder_sidecar_is_read():
    # written by `ftracekit record` in the VM: "ftracekit_version": "0.1.0", "lines": 2953
    t = ftracekit.load(DATA / "live-6.1.0-56" / "netlink_live.txt.xz")
    rec = t.meta["recording"]
    assert rec["ftracekit_version"] == "0.1.0" and rec["lines"] == 2953
    assert rec["kernel"] == "6.1.0-56-amd64" and isinstance(rec["settings"], dict)
    assert "sidecar_ignored" not in t.meta


def test_foreign_and_broken_json(tmp_path):
    src = DATA / "shared" / "rtnl_trace_pipe.txt"
    trace = tmp_path / "t.txt"
    shutil.copy(src, trace)
    assert ftracekit.load(trace).meta.get("sidecar_ignored") is None       # no t.json at all
    side = tmp_path / "t.json"
    cases = {
        "[1, 2]": "not written by ftracekit's recorder (no ftracekit_version or settings)",
        '{"ftracekit_version": "0.1.0"}': "not written by ftracekit's recorder (no settings)",
        '{"ftracekit_version": "0.1.0", "settings": 3}':
            "not written by ftracekit's recorder ('settings' is not an object)",
        "{not json": "not JSON",
    }
    for text, why in cases.items():
        side.write_text(text)
        t = ftracekit.load(trace)
        assert "recording" not in t.meta
        assert t.meta["sidecar_ignored"] == f"t.json next to the trace ignored: {why}"
        assert read_sidecar(trace) is None
    ours = {"ftracekit_version": "0.1.0", "settings": {"functions": ["rtnetlink_rcv"]}}
    side.write_text(json.dumps(ours))
    assert is_recorder_sidecar(ours) and find_sidecar(trace) == (ours, None)
    assert ftracekit.load(trace).meta["recording"] == ours
