"""recording/nlmon.py on this machine, inside a private network namespace (``unshare -n``,
root): stale-device removal on real (dummy) devices, the capture's failure path where nlmon is
missing, and ``doctor``'s line. The capture itself needs nlmon: tests/live (VM)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def in_netns(code: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode().strip()}")
    return subprocess.run(["unshare", "-n", sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_stale_devices_of_dead_recorders_are_removed():
    r = in_netns("""
        import os, socket, subprocess
        from ftracekit.recording.nlmon import remove_stale_devices
        dead = 4_000_000 - 7            # above pid_max: never a live process
        mine = os.getpid()
        for name in (f"ftknl{dead}", f"ftknl{mine}", "ftknlabc", "ftkn1"):
            # ifb: a device type this machine's kernel has (it lacks dummy and nlmon)
            subprocess.run(["ip", "link", "add", name, "type", "ifb"], check=True)
        print(remove_stale_devices())
        print(sorted(n for _, n in socket.if_nameindex() if n.startswith("ftkn")))
        print(remove_stale_devices(f"ftknl{mine}"))       # named by a dead recording's lock
        print(sorted(n for _, n in socket.if_nameindex() if n.startswith("ftkn")))
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    dead = 4_000_000 - 7
    assert lines[0] == f"['removed nlmon device ftknl{dead} of a dead ftracekit']"
    assert lines[1].startswith("['ftkn1', 'ftknl") and "ftknlabc" in lines[1]
    assert f"ftknl{dead}" not in lines[1]
    assert lines[2].startswith("['removed nlmon device ftknl")
    assert lines[3] == "['ftkn1', 'ftknlabc']"


def test_capture_without_nlmon_fails_and_leaves_nothing(tmp_path):
    if Path("/sys/module/nlmon").exists():
        pytest.skip("this kernel has nlmon loaded")
    r = in_netns(f"""
        import os, socket
        from ftracekit.errors import RecordError
        from ftracekit.recording.nlmon import NlmonCapture, nlmon_support
        print(nlmon_support()["module"])
        try:
            NlmonCapture("{tmp_path}/n.pcap").start()
        except RecordError as err:
            print("error:", err)
        print(sorted(n for _, n in socket.if_nameindex() if n.startswith("ftknl")))
    """)
    assert r.returncode == 0, r.stderr
    state, error, devices = r.stdout.splitlines()
    if state == "missing":        # this machine's kernel: no nlmon at all
        assert error.startswith("error: cannot load the nlmon module: ")
    else:                         # a module that could load would have worked
        assert error.startswith("error: ")
    assert devices == "[]" and not (tmp_path / "n.pcap").exists()


def test_record_netlink_refuses_without_nlmon(tmp_path):
    from ftracekit.recording.nlmon import nlmon_support

    s = nlmon_support()
    if s["ok"]:
        pytest.skip("nlmon works here: the VM suite covers the refusal without CAP_NET_ADMIN")
    r = subprocess.run([sys.executable, "-m", "ftracekit", "record", "--netlink", "-o",
                        str(tmp_path / "t.txt"), "--", "true"], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 2
    assert r.stderr == f"ftracekit: error: cannot capture netlink: {s['detail']}\n"
    assert list(tmp_path.iterdir()) == []
    d = subprocess.run([sys.executable, "-m", "ftracekit", "doctor"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert f"--netlink unavailable: {s['detail']}" in d.stdout
