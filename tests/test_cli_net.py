"""The packets/journey/callers commands on real captures, and their bad input (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

from ftracekit.cli.main import main

DATA = Path(__file__).parent / "data"
RAW = str(DATA / "6.18-events" / "udp_tbf_raw.txt")
HASHED = str(DATA / "6.18-events" / "udp_tbf_hashed.txt")
ARGS = str(DATA / "6.17.13+deb13-amd64" / "funcgraph_args_retval_proc.txt")
KFREE = str(DATA / "6.17.13+deb13-amd64" / "kfree_skb_events.txt")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_packets_lists_generations(capsys):
    code, out, err = run(capsys, "packets", RAW)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "17 packets, 3 dropped"
    assert lines[1].split() == ["skb", "gen", "first", "s", "span", "µs", "n_steps", "first",
                                "last", "devs", "cpus", "dropped", "reason", "max_gap", "µs",
                                "gap_after", "gap_before"]
    # first seen: the kworker's consume_skb of 0xffff888104d1d500 at 855.067747 (line 13)
    assert lines[2].split()[:5] == ["0xffff888104d1d500", "0", "855.067747", "0.000", "1"]


def test_packets_filters_and_sort(capsys):
    code, out, _ = run(capsys, "packets", RAW, "--dropped", "--sort", "gap", "-n", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "3 packets, 3 dropped (showing 2)"
    assert lines[2].split()[0] == "0xffff88818ae97000" and "184,871.000" in lines[2]
    assert "NO_SOCKET" in lines[2]
    code, out, _ = run(capsys, "packets", RAW, "--dev", "eth0")
    assert out.splitlines() == ["0 packets, 0 dropped"]


def test_journey_prints_steps_and_gap(capsys):
    code, out, err = run(capsys, "journey", RAW, "ffff888104d1d200")
    assert code == 0, err
    assert "skb ffff888104d1d200: 5 steps in 1 generation(s)" in out
    assert "largest gap 113,854.000 µs before net_dev_start_xmit" in out
    code, out, _ = run(capsys, "journey", HASHED, "000000003f864397", "--gen", "0")
    assert code == 0 and "net_dev_queue" in out


def test_journey_unknown_skb_exit_2_with_closest(capsys):
    code, out, err = run(capsys, "journey", RAW, "0xffff888104d1d201")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("ftracekit: error: no skb '0xffff888104d1d201' in this trace; "
                          "closest: 0xffff888104d1d200")


def test_packets_without_skbs_exit_2(capsys):
    code, _, err = run(capsys, "packets", str(DATA / "6.17.13+deb13-amd64" / "default_trace.txt"))
    assert code == 2 and err.count("\n") == 1 and "record --packets" in err


def test_callers_func_and_event(capsys):
    code, out, _ = run(capsys, "callers", ARGS, "kfree_skbmem")
    assert code == 0
    assert out.splitlines()[0] == "1 call chains led to kfree_skbmem (3 times)"
    assert "__udp4_lib_rcv > sk_skb_reason_drop > kfree_skbmem" in out and "4.895" in out
    code, out, _ = run(capsys, "callers", KFREE, "--event", "kfree_skb")
    assert "__udp4_lib_rcv > sk_skb_reason_drop > kfree_skb" in out


def test_callers_bad_input(capsys):
    code, _, err = run(capsys, "callers", ARGS, "kfree_skbmen")
    assert code == 2 and "did you mean 'kfree_skbmem'" in err
    code, _, err = run(capsys, "callers", ARGS)
    assert code == 2 and "one of them" in err
    code, _, err = run(capsys, "callers", KFREE, "--event", "kfree_skbb")
    assert code == 2 and "did you mean 'kfree_skb'" in err
