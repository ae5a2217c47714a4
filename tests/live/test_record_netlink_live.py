"""Netlink capture on a real kernel (runs inside the VM): ``record --netlink`` with nlmon,
the joins of the captured messages to the traced calls, and the nlmon device's cleanup on every
exit path. Expected figures come from the kernel's side (links in /sys/class/net, tcpdump's
own capture and its ``-r`` count), not from ftracekit's output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ftracekit.recording import Recorder

from .conftest import wait_recording
from .test_record_live import figure

HERE = Path(__file__).resolve().parent
N_LINKS = 200
NL_READER = [sys.executable, str(HERE / "nl_reader.py")]


def nlmon_devices() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith("ftknl"))


def n_links() -> int:
    return len(os.listdir("/sys/class/net"))


@pytest.fixture(scope="module")
def links():
    """200 dummy links (test_record_live.py, which runs first, may have made them already)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    missing = [i for i in range(N_LINKS) if not os.path.exists(f"/sys/class/net/ftkd{i}")]
    if missing:
        batch = "".join(f"link add ftkd{i} type dummy\n" for i in missing)
        subprocess.run(["ip", "-batch", "-"], input=batch, text=True, check=True)
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle", "--timeout=300"], check=False)
    return n_links()


@pytest.fixture(autouse=True)
def no_device_left():
    assert nlmon_devices() == []
    yield
    assert nlmon_devices() == []


def tcpdump_count(pcap: Path) -> int:
    r = subprocess.run(["tcpdump", "-r", str(pcap), "-nn"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return sum(1 for line in r.stdout.splitlines() if line and not line.startswith("\t"))


def wait_device(name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while name not in nlmon_devices():
        assert time.monotonic() < deadline, f"no nlmon device {name} after {timeout} s"
        time.sleep(0.1)


@pytest.mark.heavy
def test_record_netlink_ip_link_show(tfs, links, tmp_path, unchanged, cli) -> None:
    out = tmp_path / "dump.txt"
    r = cli("record", "--netlink", "-o", str(out), "--", "sh", "-c", "ip -d link show > /dev/null",
            timeout=900)
    assert r.returncode == 0, r.stderr
    pcap = tmp_path / "netlink.pcap"
    assert pcap.exists() and "netlink packets, 0 dropped" in r.stderr
    # what the dump must hold: every link, and our own capture device while it existed
    names = set(os.listdir("/sys/class/net")) | {f"ftknl{r.pid}"}

    import ftracekit

    trace = ftracekit.load(out)
    m = trace.netlink
    req = m[(m["type"] == "RTM_GETLINK") & (m["direction"] == "to_kernel")
            & (m["flags"] == "REQUEST|DUMP")]
    assert len(req) == 1
    seq = int(req["seq"].iloc[0])
    dump = m[(m["seq"] == seq) & (m["direction"] == "to_user")]
    newlink = dump[dump["type"] == "RTM_NEWLINK"]
    assert len(newlink) == len(names) >= N_LINKS + 2
    assert set(newlink["ifname"]) == names
    assert (dump["type"] == "NLMSG_DONE").sum() == 1
    # every reply packet joined to one netlink_dump call of the requesting task, one per round
    per_packet = dump.groupby("packet")["call"].first()
    assert (per_packet >= 0).all() and per_packet.is_unique
    c = trace.calls
    assert set(c.loc[per_packet.to_numpy(), "func"].astype(str)) == {"netlink_dump"}
    assert set(c.loc[per_packet.to_numpy(), "pid"]) == {int(m.loc[req.index[0], "pid"])}
    ts = dump.groupby("packet")["ts_s"].first().to_numpy()
    assert (ts >= c.loc[per_packet, "start_s"].to_numpy()).all()
    assert (ts <= c.loc[per_packet, "end_s"].to_numpy()).all()
    # the request → rtnetlink_rcv of the same task; the first round runs inside it
    h = int(m.loc[req.index[0], "call"])
    assert str(c.at[h, "func"]) == "rtnetlink_rcv"
    assert c.at[int(per_packet.iloc[0]), "root"] == h
    d = trace.dumps()
    row = d[d["seq"] == seq].iloc[0]
    rounds = trace.dump_rounds(seq)
    assert row["n_rounds"] == len(per_packet) == len(rounds) >= 2
    assert row["n_messages"] == rounds["n_messages"].sum() == len(names)
    assert row["done"] and row["error"] == 0 and row["slowest_call"] in set(per_packet)
    assert_verdict_follows_its_figures(row)
    figure("netlink_ip_rounds", int(row["n_rounds"]))
    figure("netlink_ip_verdict", row["verdict"])
    figure("netlink_ip_kernel_us", round(float(row["kernel_us"]), 3))
    figure("netlink_ip_user_us", round(float(row["user_us"]), 3))
    # tcpdump reads our file and counts the same packets
    assert tcpdump_count(pcap) == m["packet"].nunique() == trace.meta["recording"]["netlink"][
        "packets"]
    assert trace.meta["recording"]["netlink"]["drops"] == 0
    # realtime − monotonic sampled at the start, while reading packets and at the end
    samples = np.array(trace.meta["recording"]["netlink"]["clock_samples"])
    assert len(samples) >= 3 and (np.diff(samples[:, 0]) > 0).all()
    figure("netlink_ip_clock_slew_us", round(float(np.ptp(samples[:, 1])) * 1e6, 1))
    r = cli("netlink", str(out))
    assert r.returncode == 0, r.stderr
    assert "RTM_NEWLINK" in r.stdout and row["verdict"] in r.stdout


@pytest.mark.heavy
def test_record_raw_netlink_joins_from_the_capture_directory(tfs, links, tmp_path, unchanged,
                                                             cli) -> None:
    """``record --raw --netlink``: netlink.pcap inside the raw capture directory; loading the
    directory decodes the pages and joins the messages like the text path."""
    out = tmp_path / "dump.raw"
    r = cli("record", "--raw", "--netlink", "-o", str(out), "--", "sh", "-c",
            "ip -d link show > /dev/null", timeout=900)
    assert r.returncode == 0, r.stderr
    pcap = out / "netlink.pcap"
    assert pcap.exists() and "netlink packets, 0 dropped" in r.stderr
    assert not (tmp_path / "netlink.pcap").exists()
    names = set(os.listdir("/sys/class/net")) | {f"ftknl{r.pid}"}

    import ftracekit

    trace = ftracekit.load(out)
    m = trace.netlink
    req = m[(m["type"] == "RTM_GETLINK") & (m["flags"] == "REQUEST|DUMP")]
    assert len(req) == 1
    seq = int(req["seq"].iloc[0])
    dump = m[(m["seq"] == seq) & (m["direction"] == "to_user")]
    assert len(dump[dump["type"] == "RTM_NEWLINK"]) == len(names)
    per_packet = dump.groupby("packet")["call"].first()
    assert (per_packet >= 0).all() and per_packet.is_unique
    assert set(trace.calls.loc[per_packet.to_numpy(), "func"].astype(str)) == {"netlink_dump"}
    row = trace.dumps().set_index("seq").loc[seq]
    assert row["n_rounds"] == len(per_packet) and row["n_messages"] == len(names)
    assert row["done"]
    assert_verdict_follows_its_figures(row)
    assert tcpdump_count(pcap) == m["packet"].nunique()
    figure("netlink_raw_rounds", int(row["n_rounds"]))


def assert_verdict_follows_its_figures(row) -> None:
    """`ip`'s verdict is the machine's: kernel-bound or balanced on a quiet VM, reader-bound
    when the emulator is starved (`ip` then spends ms per message in user space). What holds
    everywhere: the verdict is the rule applied to the dump's own figures."""
    from ftracekit.net.netlink import verdict

    assert row["verdict"] != "untraced"
    assert row["verdict"] == verdict(row["kernel_us"] + row["recv_us"], row["user_us"],
                                     int(row["n_rounds"]))


@pytest.mark.heavy
def test_slow_reader_is_reader_bound(tfs, links, tmp_path, unchanged) -> None:
    sleep_s = 0.02
    rec = Recorder(netlink=True, output=tmp_path / "slow.txt",
                   command=NL_READER + ["--sleep", str(sleep_s), "--bufsize", "8192"])
    trace = rec.run()
    d = trace.dumps()
    row = d[d["seq"] == 4242].iloc[0]              # nl_reader's seq
    assert row["verdict"] == "reader-bound", d.to_string()
    rounds = trace.dump_rounds(4242)
    assert row["n_messages"] == n_links() + 1 and row["n_rounds"] >= 5     # + our nlmon device
    # the sleeps are the gaps: the first recv comes right after the request, then one a sleep
    assert (rounds["gap_before_us"].iloc[2:] >= sleep_s * 1e6).all()
    assert (rounds["call"] >= 0).all()
    figure("netlink_slow_rounds", int(row["n_rounds"]))
    figure("netlink_slow_user_us", round(float(row["user_us"]), 3))


@pytest.mark.heavy
def test_tcpdump_capture_reads_as_ours(tfs, links, tmp_path, unchanged) -> None:
    import ftracekit

    subprocess.run(["ip", "link", "add", "ftktd0", "type", "nlmon"], check=True)
    subprocess.run(["ip", "link", "set", "ftktd0", "up"], check=True)
    theirs = tmp_path / "tcpdump.pcap"
    td = subprocess.Popen(["tcpdump", "-i", "ftktd0", "-w", str(theirs), "-U", "-nn"],
                          stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not theirs.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        n_before = n_links()                      # with tcpdump's device
        rec = Recorder(netlink=True, output=tmp_path / "t.txt",
                       command=NL_READER + ["--bufsize", "16384"])
        rec.run()
        time.sleep(1)
    finally:
        td.send_signal(signal.SIGINT)
        td.communicate(timeout=60)
        subprocess.run(["ip", "link", "del", "ftktd0"], check=True)
    ours = ftracekit.netlink.read_pcap(tmp_path / "netlink.pcap")
    all_theirs = ftracekit.netlink.read_pcap(theirs)
    keys = ["family", "direction", "type", "flags", "seq", "portid", "len", "ifindex", "ifname"]
    mine = ours[ours["seq"] == 4242][keys].reset_index(drop=True)
    same = all_theirs[all_theirs["seq"] == 4242][keys].reset_index(drop=True)
    assert len(mine) == n_before + 1 + 2          # the links, ours, request and NLMSG_DONE
    assert mine.astype(str).equals(same.astype(str))


def test_failing_command_leaves_no_device(tfs, tmp_path, unchanged, cli) -> None:
    r = cli("record", "--netlink", "-o", str(tmp_path / "t.txt"), "--", "sh", "-c",
            "ip link show lo > /dev/null; exit 3")
    assert r.returncode == 0, r.stderr
    assert "exited with status 3" in r.stderr
    import ftracekit

    m = ftracekit.load(tmp_path / "t.txt").netlink
    assert (m["type"] == "RTM_GETLINK").any()


def test_sigint_leaves_no_device(tfs, tmp_path, unchanged, cli) -> None:
    out = tmp_path / "t.txt"

    def interrupt(pid: int) -> None:
        wait_recording(out)
        wait_device(f"ftknl{pid}")
        subprocess.run(["ip", "link", "show"], capture_output=True, check=True)
        os.kill(pid, signal.SIGINT)

    r = cli("record", "--netlink", "-o", str(out), during=interrupt)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "netlink.pcap").stat().st_size > 24


def test_sigterm_leaves_no_device(tfs, tmp_path, unchanged, cli) -> None:
    out = tmp_path / "t.txt"

    mark = tmp_path / "ip-done"

    def terminate(pid: int) -> None:
        wait_recording(out)
        wait_device(f"ftknl{pid}")
        deadline = time.monotonic() + 120      # the command's ip ran (slow to start under TCG)
        while not mark.exists():
            assert time.monotonic() < deadline, "the recorded command did not run ip"
            time.sleep(0.1)
        os.kill(pid, signal.SIGTERM)

    r = cli("record", "--netlink", "-o", str(out), "--", "sh", "-c",
            f"ip link show lo > /dev/null; touch {mark}; sleep 120", during=terminate)
    assert r.returncode == 130, r.stderr
    assert (tmp_path / "netlink.pcap").stat().st_size > 24


def test_sigkill_leaves_a_device_the_next_run_removes(tfs, tmp_path, unchanged, cli) -> None:
    out = tmp_path / "t.txt"
    killed = {}

    def kill(pid: int) -> None:
        wait_recording(out)
        wait_device(f"ftknl{pid}")
        killed["pid"] = pid
        os.kill(pid, signal.SIGKILL)

    r = cli("record", "--netlink", "-o", str(out), during=kill)
    assert r.returncode == -signal.SIGKILL
    assert nlmon_devices() == [f"ftknl{killed['pid']}"]
    r = cli("doctor")
    assert f"ftknl{killed['pid']}" in r.stdout
    r = cli("doctor", "--clean")
    assert f"removed nlmon device ftknl{killed['pid']}" in r.stderr
    assert nlmon_devices() == []


@pytest.mark.heavy          # a new interpreter: a minute under emulation
def test_no_cap_net_admin_refuses_before_touching_anything(tfs, tmp_path, unchanged) -> None:
    # a child without CAP_NET_ADMIN (capsh is not everywhere: drop it with prctl)
    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "PR_CAPBSET_DROP, PR_CAP_AMBIENT = 24, 47\n"
        "import struct\n"
        "hdr = struct.pack('II', 0x20080522, 0)\n"
        "data = ctypes.create_string_buffer(24)\n"
        "libc.capget(hdr, data)\n"
        "eff, perm, inh, eff2, perm2, inh2 = struct.unpack('6I', data.raw)\n"
        "eff &= ~(1 << 12)\n"
        "data = ctypes.create_string_buffer(struct.pack('6I', eff, perm, inh, eff2, perm2, inh2))\n"
        "assert libc.capset(hdr, data) == 0, ctypes.get_errno()\n"
        "from ftracekit.cli import main\n"
        f"sys.exit(main(['record', '--netlink', '-o', '{tmp_path}/t.txt', '--', 'true']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(HERE.parents[1])))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().endswith("creating an nlmon device needs CAP_NET_ADMIN (run as root)")
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "t.txt").exists() and not (tmp_path / "netlink.pcap").exists()
