"""Hand-written edge cases: one or a few lines of each kind, in each layout, with exact results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import ftracekit
from ftracekit.read.lineparse import parse_retval


def calls(text: str) -> pd.DataFrame:
    return ftracekit.parse(text).calls


def row(df: pd.DataFrame, i: int) -> dict:
    r = df.iloc[i].to_dict()
    return {k: (None if (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v)
            for k, v in r.items()}


# --- layouts ----------------------------------------------------------------------------------

DEFAULT = """\
# tracer: function_graph
#
# CPU  DURATION                  FUNCTION CALLS
# |     |   |                     |   |   |   |
 1)               |  __sys_sendmsg() {
 1)   2.363 us    |    __fget_light();
 1) + 10.936 us   |  }
"""


def test_default_layout_entry_leaf_exit():
    t = ftracekit.parse(DEFAULT)
    c = t.calls
    assert list(c["func"]) == ["__sys_sendmsg", "__fget_light"]
    assert list(c["duration_us"]) == [10.936, 2.363]
    assert list(c["depth"]) == [0, 1]
    assert list(c["parent"]) == [-1, 0]
    assert list(c["root"]) == [0, 0]
    assert list(c["cpu"]) == [1, 1]
    assert list(c["exit_cpu"]) == [1, 1]
    assert list(c["status"]) == ["complete", "complete"]
    assert list(c["line"]) == [5, 6]
    assert c["self_us"].iloc[0] == pytest.approx(10.936 - 2.363)
    assert list(c["n_children"]) == [1, 0]
    assert list(c["pid"]) == [-1, -1]
    assert t.meta["layout"] == ["cpu", "duration"]
    assert t.meta["layout_from"] == "header"
    assert c.index.name == "call"
    opts = t.meta["options"]
    assert opts["funcgraph-proc"] is False and opts["funcgraph-cpu"] is True
    assert opts["funcgraph-tail"] is False and opts["funcgraph-retval"] is False
    assert opts["funcgraph-overhead"] is True


PROC_ABS = """\
# tracer: function_graph
#
#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
#      |          |     |    |           |   |                     |   |   |   |
  160.123456 |   0)     ip-407     |               |  rtnetlink_rcv() {
  160.123460 |   0)     ip-407     | ! 118.427 us  |    rtnetlink_rcv_msg();
  160.123600 |   0)     ip-407     | ! 233.429 us  |  }
"""


def test_abstime_proc_layout():
    t = ftracekit.parse(PROC_ABS)
    c = t.calls
    assert t.meta["layout"] == ["abstime", "cpu", "proc", "duration"]
    assert list(c["pid"]) == [407, 407]
    assert list(c["comm"]) == ["ip", "ip"]
    assert c["start_s"].tolist() == [160.123456, 160.12346]
    assert c["end_s"].iloc[0] == 160.1236          # the exit line's own timestamp
    assert c["end_s"].iloc[1] == pytest.approx(160.12346 + 118.427e-6)
    assert t.has_times


def test_trace_pipe_layout_detected_without_header():
    text = "\n".join(PROC_ABS.splitlines()[4:]) + "\n"
    t = ftracekit.parse(text)
    assert t.meta["layout"] == ["abstime", "cpu", "proc", "duration"]
    assert t.meta["layout_from"] == "lines"
    assert len(t.calls) == 2


LATENCY = """\
# tracer: function_graph
#
#                       _-----=> irqs-off
#                      / _----=> need-resched
#                     | / _---=> hardirq/softirq
#                     || / _--=> preempt-depth
#                     ||| /
# CPU  TASK/PID       ||||  DURATION                  FUNCTION CALLS
# |     |    |        ||||   |   |                     |   |   |   |
 0)     ip-407     |  ...1. |               |  rtnetlink_rcv() {
 0)     ip-407     |  d..1. |   1.044 us    |    skb_pull();
 0)     ip-407     |  ...1. |   9.000 us    |  }
"""


def test_latency_format_layout():
    t = ftracekit.parse(LATENCY)
    assert t.meta["layout"] == ["cpu", "proc", "lat", "duration"]
    c = t.calls
    assert list(c["func"]) == ["rtnetlink_rcv", "skb_pull"]
    assert list(c["duration_us"]) == [9.0, 1.044]
    assert list(c["pid"]) == [407, 407]


NOCONTEXT = """\
  rtnetlink_rcv() {
    netlink_rcv_skb() {
      skb_pull();
    }
  }
"""


def test_nocontext_info_layout():
    # Without context info there are no columns at all and no durations.
    t = ftracekit.parse(NOCONTEXT)
    c = t.calls
    assert t.meta["layout"] == []
    assert list(c["func"]) == ["rtnetlink_rcv", "netlink_rcv_skb", "skb_pull"]
    assert list(c["depth"]) == [1, 2, 3]
    assert list(c["parent"]) == [-1, 0, 1]
    assert list(c["status"]) == ["complete"] * 3
    assert c["duration_us"].isna().all()


NODURATION = """\
 0)  rtnetlink_rcv() {
 0)    skb_pull();
 0)  }
"""


def test_no_duration_column():
    c = calls(NODURATION)
    assert list(c["func"]) == ["rtnetlink_rcv", "skb_pull"]
    assert list(c["depth"]) == [0, 1]
    assert list(c["parent"]) == [-1, 0]
    assert list(c["status"]) == ["complete", "complete"]
    assert c["duration_us"].isna().all()


RELTIME = """\
# tracer: function_graph
#
#   REL TIME      CPU  DURATION                  FUNCTION CALLS
#      |          |     |   |                     |   |   |   |
        12 us |   0)               |  foo() {
        15 us |   0)   1.000 us    |    bar();
        20 us |   0)   8.000 us    |  }
"""


def test_rel_time_layout():
    t = ftracekit.parse(RELTIME)
    c = t.calls
    assert t.meta["layout"] == ["reltime", "cpu", "duration"]
    assert c["start_s"].tolist() == [12e-6, 15e-6]
    assert c["end_s"].iloc[0] == 20e-6


def test_wide_cpu_column_and_many_cpus():
    text = ("  3)               |  foo() {\n"
            " 63)   1.000 us    |  bar();\n"
            "  3)   5.000 us    |  }\n")
    c = calls(text)
    assert list(c["cpu"]) == [3, 63]
    assert list(c["duration_us"]) == [5.0, 1.0]


# --- durations and marks -------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("  0.313 us    ", 0.313),
    ("+ 61.770 us   ", 61.770),
    ("! 118.427 us  ", 118.427),
    ("# 1560.141 us ", 1560.141),
    ("* 33998.59 us ", 33998.59),
    ("@ 119760.2 us ", 119760.2),
    ("$ 3594274 us  ", 3594274.0),
    ("$ 12345678 us ", 12345678.0),
])
def test_duration_widths_and_marks(field, value):
    c = calls(f" 0) {field}|  leaf();\n")
    assert c["duration_us"].iloc[0] == value


def test_duration_wider_than_the_column():
    # > 10^8 us (100 s) overflows the column by one character; still parsed.
    c = calls(" 0) $ 123456789 us |  sleeper();\n")
    assert c["duration_us"].iloc[0] == 123456789.0


def test_linux_3_10_duration_width():
    # 3.10 padded the duration to 7 characters excluding the dot: the column is one shorter.
    text = (" 0)               |  sys_open() {\n"
            " 0)   1.382 us   |    __might_sleep();\n"
            " 0) + 12.876 us  |  }\n")
    c = calls(text)
    assert list(c["func"]) == ["sys_open", "__might_sleep"]
    assert list(c["duration_us"]) == [12.876, 1.382]
    assert list(c["parent"]) == [-1, 0]


def test_old_kernels_only_plus_and_bang_marks():
    text = (" 0)               |  a() {\n"
            " 0) ! 2000.000 us |    b();\n"
            " 0) ! 2100.000 us |  }\n")
    c = calls(text)
    assert list(c["duration_us"]) == [2100.0, 2000.0]


# --- exits -----------------------------------------------------------------------------------

def test_tail_exit_and_old_style_tail():
    text = (" 0)               |  a() {\n"
            " 0)   5.000 us    |  } /* a */\n"
            " 0)               |  b() {\n"
            " 0)   6.000 us    |  } (b)\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert list(c["func"]) == ["a", "b"]
    assert list(c["status"]) == ["complete", "complete"]
    assert list(c["duration_us"]) == [5.0, 6.0]
    assert t.meta["kernel_hints"]["kernel_at_most"] == "3.x"


def test_orphan_exits_are_calls_with_names_and_nest():
    # Wrapped buffer: the trace starts inside calls.
    text = (" 0)   1.000 us    |      leaf1();\n"
            " 0)   3.000 us    |    } /* inner */\n"
            " 0)   9.000 us    |  } /* outer */\n"
            " 0)   2.000 us    |  after();\n")
    c = calls(text)
    assert list(c["func"]) == ["leaf1", "inner", "outer", "after"]
    assert list(c["status"]) == ["complete", "no-entry", "no-entry", "complete"]
    # The backward pass nests the leaf in inner and inner in outer.
    assert list(c["parent"]) == [1, 2, -1, -1]
    assert list(c["root"]) == [2, 2, 2, 3]
    assert c["self_us"].tolist() == [1.0, 2.0, 6.0, 2.0]
    assert c["start_s"].isna().all()


def test_bare_orphan_exit_has_no_name():
    c = calls(" 0)   3.000 us    |  }\n 0)   1.000 us    |  x();\n")
    assert c["func"].isna().tolist() == [True, False]
    assert list(c["status"]) == ["no-entry", "complete"]


def test_missing_exit_at_end_and_mismatched_tail():
    text = (" 0)               |  a() {\n"
            " 0)               |    b() {\n"
            " 0)   4.000 us    |    } /* c */\n"   # not b's exit: b lost its exit, c its entry
            " 0)   1.000 us    |    d();\n")
    c = calls(text)
    assert list(c["func"]) == ["a", "b", "c", "d"]
    assert list(c["status"]) == ["no-exit", "no-exit", "no-entry", "complete"]
    assert list(c["parent"]) == [-1, 0, 0, 0]
    assert math.isnan(c["duration_us"].iloc[0])
    assert math.isnan(c["self_us"].iloc[0])


def test_thresh_only_exits_form_a_tree():
    text = (" 0) + 55.172 us   |        } /* netlink_net_capable */\n"
            " 0) ! 196.113 us  |      } /* rtnetlink_rcv_msg */\n"
            " 0) + 64.456 us   |      } /* netlink_ack */\n"
            " 0) ! 277.124 us  |    } /* netlink_rcv_skb */\n"
            " 0) ! 286.228 us  |  } /* rtnetlink_rcv */\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert list(c["status"]) == ["no-entry"] * 5
    assert list(c["depth"]) == [3, 2, 2, 1, 0]
    assert list(c["parent"]) == [1, 3, 3, 4, -1]
    assert c["self_us"].iloc[3] == pytest.approx(277.124 - 196.113 - 64.456)
    assert c["start_s"].isna().all()


# --- retval / retaddr / args / modules / suffixes ---------------------------------------------------

def test_retval_6_5_format():
    text = (" 0)               |  do_sys_openat2() {\n"
            " 0)   1.000 us    |    getname(); /* = 0xffff888003e6c000 */\n"
            " 0)   2.000 us    |    do_filp_open(); /* = -2 */\n"
            " 0)   9.000 us    |  } /* do_sys_openat2 = -2 */\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert c["retval"].tolist() == [-2, 0xffff888003e6c000 - (1 << 64), -2]
    assert str(c["retval"].dtype) == "Int64"
    assert t.meta["kernel_hints"]["kernel_at_least"] == "6.5"
    assert t.meta["kernel_hints"]["kernel_at_most"] == "6.12"
    assert list(c["status"]) == ["complete"] * 3


def test_retval_6_13_format_and_hex():
    text = (" 0)               |  f() {\n"
            " 0)   1.000 us    |    g(); /* ret=0x0 */\n"
            " 0)   2.000 us    |    h(); /* ret=0xffffffffffffffea */\n"
            " 0)   9.000 us    |  } /* f ret=-22 */\n")
    c = calls(text)
    assert c["retval"].tolist() == [-22, 0, -22]


def test_retval_absent_is_na():
    c = calls(DEFAULT)
    assert c["retval"].isna().all()


def test_retaddr_on_entries_and_leaves():
    text = (" 0)               |  f() { /* <-caller+0x6c/0xb0 */\n"
            " 0)   1.000 us    |    g(); /* <-f+0x10/0x20 ret=0x1 */\n"
            " 0)   9.000 us    |  } /* f ret=0x0 */\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert list(c["func"]) == ["f", "g"]
    assert c["retval"].tolist() == [0, 1]
    assert t.meta["options"]["funcgraph-retaddr"] is True
    assert t.meta["options"]["funcgraph-retval"] is True
    assert t.meta["kernel_hints"]["kernel_at_least"] == "6.13"


def test_args_6_16():
    text = (" 0)               |  tcp_sendmsg(sk=0xffff8881, msg=0xffffc900, size=42) {\n"
            " 0)   1.000 us    |    lock_sock_nested(sk=0xffff8881, subclass=0);\n"
            " 0)   9.000 us    |  }\n")
    t = ftracekit.parse(text)
    assert list(t.calls["func"]) == ["tcp_sendmsg", "lock_sock_nested"]
    assert t.meta["options"]["funcgraph-args"] is True
    assert t.meta["kernel_hints"]["kernel_at_least"] == "6.16"


def test_module_suffix_and_gcc_suffixes():
    text = (" 0)               |  nft_do_chain [nf_tables]() {\n"
            " 0)   1.000 us    |    nft_immediate_eval [nf_tables]();\n"
            " 0)   0.500 us    |    finish_task_switch.isra.0();\n"
            " 0)   0.700 us    |    foo.constprop.0();\n"
            " 0)   9.000 us    |  } /* nft_do_chain [nf_tables] */\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert list(c["func"]) == ["nft_do_chain", "nft_immediate_eval", "finish_task_switch.isra.0",
                               "foo.constprop.0"]
    assert c["module"].tolist()[:2] == ["nf_tables", "nf_tables"]
    assert c["module"].isna().tolist()[2:] == [True, True]
    assert list(c["status"]) == ["complete"] * 4
    # Name without the GCC suffix finds the clone.
    assert len(t.calls_of("finish_task_switch")) == 1


# --- tasks, comm, switches, irqs ---------------------------------------------------------------------

@pytest.mark.parametrize("proc,comm,pid", [
    ("    ip-407    ", "ip", 407),
    ("  <idle>-0    ", "<idle>", 0),
    ("  <...>-1234  ", "<...>", 1234),
    ("kworke-12     ", "kworke", 12),
    ("(udev-w-173   ", "(udev-w", 173),
    (" a-b c-9999   ", "a-b c", 9999),
    ("kworker-4194304", "kworker", 4194304),
])
def test_comm_and_pid_forms(proc, comm, pid):
    c = calls(f" 0) {proc} |   1.000 us    |  f();\n 0) {proc} |   1.000 us    |  g();\n")
    assert c["comm"].iloc[0] == comm
    assert c["pid"].iloc[0] == pid


SWITCH_NOPROC = """\
 0)               |  schedule() {
 ------------------------------------------
 0)    sh-100     =>    ip-200
 ------------------------------------------

 0)   1.000 us    |  other();
 1)   2.000 us    |  on_cpu1();
 ------------------------------------------
 1)    ip-200     =>    sh-100
 ------------------------------------------

 1) ! 500.000 us  |  }
"""


def test_switch_blocks_give_tasks_and_migrated_call_closes():
    t = ftracekit.parse(SWITCH_NOPROC)
    c = t.calls
    # schedule() by sh-100 (known from the first switch's "from") on CPU0, resumed on CPU1.
    assert list(c["func"]) == ["schedule", "other", "on_cpu1"]
    assert list(c["pid"]) == [100, 200, 200]
    assert list(c["comm"]) == ["sh", "ip", "ip"]
    assert c["status"].iloc[0] == "complete"
    assert c["cpu"].iloc[0] == 0
    assert c["exit_cpu"].iloc[0] == 1
    assert c["duration_us"].iloc[0] == 500.0
    assert t.meta["line_kinds"]["switch"] == 2


def test_idle_tasks_are_per_cpu():
    text = (" 0)  <idle>-0    |               |  do_idle() {\n"
            " 1)  <idle>-0    |               |  do_idle() {\n"
            " 0)  <idle>-0    |   5.000 us    |  }\n"
            " 1)  <idle>-0    |   7.000 us    |  }\n")
    c = calls(text)
    assert list(c["duration_us"]) == [5.0, 7.0]
    assert list(c["exit_cpu"]) == [0, 1]


def test_irq_arrows_mark_calls_in_irq():
    text = (" 0)               |  f() {\n"
            " 0)   ==========> |\n"
            " 0)               |    do_IRQ() {\n"
            " 0)   1.000 us    |      handle();\n"
            " 0)   3.000 us    |    }\n"
            " 0)   <========== |\n"
            " 0)   1.000 us    |    g();\n"
            " 0)   9.000 us    |  }\n")
    t = ftracekit.parse(text)
    c = t.calls
    assert list(c["func"]) == ["f", "do_IRQ", "handle", "g"]
    assert list(c["in_irq"]) == [False, True, True, False]
    assert list(c["parent"]) == [-1, 0, 1, 0]
    assert t.meta["line_kinds"]["irq_enter"] == 1


# --- comments, events, lost events, overruns ----------------------------------------------------------

EVENTS = """\
 0)    nc-300     |               |  tcp_v4_rcv() {
 0)    nc-300     |               |    tcp_v4_send_reset() {
 0)    nc-300     |               |      /* tcp_send_reset: skbaddr=00000000 skaddr=00000000 src=127.0.0.1:9 */
 0)    nc-300     |   9.000 us    |    }
 0)    nc-300     |               |    /* kfree_skb: skbaddr=0000 protocol=2048 location=tcp_v4_rcv+0x1 reason: NO_SOCKET */
 0)    nc-300     | + 20.000 us   |  }
 0)    nc-300     |               |  /* my marker text */
 1)    sh-400     |               |  /* hello: from printk */
"""


def test_events_attach_to_innermost_open_call():
    t = ftracekit.parse(EVENTS)
    e = t.events
    assert list(e["event"]) == ["tcp_send_reset", "kfree_skb", "marker", "hello"]
    assert list(e["call"]) == [1, 0, -1, -1]
    assert list(e["pid"]) == [300, 300, 300, 400]
    assert list(e["line"]) == [3, 5, 7, 8]
    assert e["text"].iloc[1].endswith("reason: NO_SOCKET")
    assert e["text"].iloc[2] == "my marker text"
    assert len(t.calls) == 2


def test_lost_events_lines_and_overruns():
    text = (" 0)               |  a() {\n"
            "CPU:0 [LOST 1234 EVENTS]\n"
            " 0)   1.000 us    |    b();\n"
            " 0)   9.000 us    |  }\n"
            " (Overruns: 3)\n"
            "CPU:1 [LOST EVENTS]\n"
            " 1)   1.000 us    |  c();\n")
    t = ftracekit.parse(text)
    lost = t.meta["lost_events"]
    assert lost["per_cpu"] == {0: 1234}
    assert lost["total"] == 1234
    assert lost["lines_without_count"] == 1
    assert t.meta["overruns"] == 3
    assert len(t.calls) == 3


def test_unparseable_lines_are_counted_not_fatal():
    text = DEFAULT + "garbage here\n 1) what is this\n" + " 1)   2.000 us    |  again();\n"
    t = ftracekit.parse(text)
    assert len(t.calls) == 3
    assert t.meta["skipped"]["count"] == 2
    assert t.meta["skipped"]["examples"][0] == (8, "garbage here")


# --- trace-cmd report -----------------------------------------------------------------------------------

TRACECMD = """\
cpus=2
          <idle>-0     [000] 157412.933969: funcgraph_entry:                   |  do_IRQ() {
          <idle>-0     [000] 157412.933971: funcgraph_entry:        0.698 us   |    irq_enter();
          <idle>-0     [000] 157412.933975: kfree_skb:            skbaddr=0xffff protocol=0 location=0x0 reason: NOT_SPECIFIED
          <idle>-0     [000] 157412.934004: funcgraph_exit:       + 36.358 us  |  }
              ip-407   [001] 157412.935000: funcgraph_entry:      ! 118.427 us |  rtnetlink_rcv();
"""


def test_trace_cmd_report_text():
    t = ftracekit.parse(TRACECMD)
    c = t.calls
    assert t.meta["layout"] == ["abstime", "cpu", "proc", "duration", "tracecmd"]
    assert list(c["func"]) == ["do_IRQ", "irq_enter", "rtnetlink_rcv"]
    assert list(c["duration_us"]) == [36.358, 0.698, 118.427]
    assert list(c["pid"]) == [0, 0, 407]
    assert list(c["comm"]) == ["<idle>", "<idle>", "ip"]
    assert list(c["cpu"]) == [0, 0, 1]
    assert list(c["parent"]) == [-1, 0, -1]
    assert c["start_s"].iloc[0] == 157412.933969
    assert c["end_s"].iloc[0] == 157412.934004
    e = t.events
    assert list(e["event"]) == ["kfree_skb"]
    assert list(e["call"]) == [0]


def test_trace_cmd_depth_and_tail_options():
    text = ("  ip-407 [001] 100.000001: funcgraph_entry:                   |  a() { (0)\n"
            "  ip-407 [001] 100.000002: funcgraph_entry:        1.000 us   |    b(); (1)\n"
            "  ip-407 [001] 100.000009: funcgraph_exit:         8.000 us   |  } /* a */ (0)\n")
    c = calls(text)
    assert list(c["func"]) == ["a", "b"]
    assert list(c["depth"]) == [0, 1]
    assert list(c["status"]) == ["complete", "complete"]


# --- misc ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("0x0", 0), ("-22", -22), ("0xffffffffffffffea", -22),
                                        ("0x7fffffffffffffff", (1 << 63) - 1), ("0xffff", 65535)])
def test_parse_retval(text, value):
    assert parse_retval(text) == value


def test_crlf_line_endings():
    c = calls(DEFAULT.replace("\n", "\r\n"))
    assert list(c["func"]) == ["__sys_sendmsg", "__fget_light"]


def test_header_only_trace_is_empty_not_an_error():
    t = ftracekit.parse("\n".join(DEFAULT.splitlines()[:4]) + "\n")
    assert len(t.calls) == 0
    assert t.meta["tracer"] == "function_graph"


def test_other_tracer_is_rejected():
    with pytest.raises(ftracekit.NotATraceError, match="'function' tracer"):
        ftracekit.parse("# tracer: function\n#\n  bash-1 [000] 1.0: foo <-bar\n")


def test_plain_text_is_rejected():
    with pytest.raises(ftracekit.NotATraceError, match="no function_graph lines"):
        ftracekit.parse("hello world\nthis is not a trace\n")


def test_no_final_newline_is_parsed():
    c = calls(DEFAULT.rstrip("\n"))
    assert list(c["status"]) == ["complete", "complete"]


def test_truncated_last_line_is_reported():
    t = ftracekit.parse(DEFAULT + " 1)   2.3")
    assert len(t.calls) == 2
    assert t.meta["truncated_last_line"] == " 1)   2.3"


def test_calls_and_dtypes():
    c = calls(PROC_ABS)
    assert list(c.columns) == ["func", "module", "pid", "comm", "cpu", "exit_cpu", "depth", "parent",
                               "root", "start_s", "end_s", "duration_us", "self_us", "n_children",
                               "status", "in_irq", "retval", "line", "args"]
    assert isinstance(c["func"].dtype, pd.CategoricalDtype)
    assert c["parent"].dtype == np.int64
    assert c["in_irq"].dtype == bool


def test_trace_cmd_depth_suffix_is_not_an_old_style_name():
    # "} (5)" is trace-cmd's fgraph:depth, not the ~3.1 "} (func)" tail (names never start
    # with a digit).
    text = ("  ip-1 [001] 1.000001: funcgraph_entry:                   |  a() { (0)\n"
            "  ip-1 [001] 1.000002: funcgraph_exit:         8.000 us   |  } (0)\n")
    c = calls(text)
    assert list(c["status"]) == ["complete"]
    assert list(c["func"]) == ["a"]
