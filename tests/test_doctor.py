"""doctor on fake tracing trees (each situation the verdict must name). This machine's real
kernel is checked in tests/test_cli_record.py; the VM kernels in tests/live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ftracekit.recording.doctor import diagnose
from ftracekit.recording._lock import INSTANCE_PREFIX, _Lock

from test_tracefs import make_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the verdicts below assume root")


def checks(diag) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in diag.checks}


def test_capable_kernel(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing")
    diag = diagnose(tfs, lock_dir=tmp_path)
    c = checks(diag)
    assert diag.ok and diag.mode == "top-level", diag.format()
    assert c["function_graph"][0] == "ok"
    assert c["functions"] == ("ok", "5 traceable functions")
    assert c["funcgraph options"][1].startswith("abstime irqs proc; missing: retval")
    assert "skb:kfree_skb" in c["events"][1] and "absent: net:netif_receive_skb" in c["events"][1]
    assert c["instances"][0] == "info" and "kernel < 6.11" in c["instances"][1]
    assert c["in use"] == ("ok", "no other tracer is active")
    assert diag.format().splitlines()[-1] == "recording can work (at the top level)"
    assert tfs.instances() == []          # the probe instance is gone


def test_no_function_graph(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing", available_tracers="blk function nop\n",
                    set_graph_function=None)     # None: file absent
    diag = diagnose(tfs, lock_dir=tmp_path)
    assert not diag.ok
    assert diag.reasons[0].startswith("this kernel has no function_graph tracer")
    assert diag.verdict().startswith("cannot record: this kernel has no function_graph tracer")
    assert checks(diag)["tracers"] == ("info", "blk function nop")


def test_someone_elses_tracer(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing", current_tracer="function\n")
    diag = diagnose(tfs, lock_dir=tmp_path)
    assert not diag.ok
    assert "top-level tracer 'function' is in use by someone else" in diag.verdict()
    assert "--force" in diag.verdict()


def test_live_and_stale_ftracekit(tmp_path: Path) -> None:
    tfs = make_tree(tmp_path / "tracing")
    lock = _Lock(tfs, tmp_path)
    assert lock.acquire()
    lock.write({"pid": 4242, "snapshot": {}})
    diag = diagnose(tfs, lock_dir=tmp_path)
    assert not diag.ok and "another ftracekit (pid 4242) is recording now" in diag.verdict()

    os.close(lock.fd)                   # holder died: the content stays
    tfs.make_instance(f"{INSTANCE_PREFIX}999999-1")
    diag = diagnose(tfs, lock_dir=tmp_path)
    status, detail = checks(diag)["ftracekit lock"]
    assert diag.ok and status == "warn"
    assert "pid 4242" in detail and f"{INSTANCE_PREFIX}999999-1" in detail and "--clean" in detail


def test_as_dict(tmp_path: Path) -> None:
    d = diagnose(make_tree(tmp_path / "tracing"), lock_dir=tmp_path).as_dict()
    assert d["ok"] is True and d["mode"] == "top-level"
    assert {"name", "status", "detail"} <= set(d["checks"][0])
