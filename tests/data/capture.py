#!/usr/bin/env python3
"""Record real function_graph traces in a QEMU VM for the parser's tests.

Usage (host, as root, from the repo root)::

    .venv/bin/python tests/data/capture.py                      # all captures, all kernels
    .venv/bin/python tests/data/capture.py default_trace thresh # only these
    .venv/bin/python tests/data/capture.py --kernel 6.1.0-56-amd64 --list

Each capture NAME runs in the guest as its own ``sh`` script (under ``timeout``) that
writes the tracefs control files directly with ``echo`` (no ftracekit code), runs a
workload, and saves the exact bytes of the file it read (``trace``, ``trace_pipe`` or
``per_cpu/cpuN/trace``) as ``NAME.txt``.  Every write to tracefs is logged with its
result, and ``NAME.json`` records: kernel (``uname -r``), the writes, which file was
read, the workload, per-CPU ``stats`` at the end, the options directory listing, and an
``observed`` summary of special line kinds (computed here with a small line scanner, not
with ftracekit).  tracefs is reset to the boot-time defaults before and after each
capture.  All captures of one kernel share one VM boot.

Results go to ``tests/data/<uname -r>/``.  Never hand-edit them.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "live"))
import vm  # noqa: E402

# --------------------------------------------------------------------------- guest side

PREAMBLE = r"""
# sourced by every capture script; $OUT = rwdir, $N = capture name
T=/sys/kernel/tracing
META="$OUT/$N.meta"
# newlines inside a logged value are written as a literal \n (decoded on the host)
_log() { printf '%s' "$*" | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 } END { print "" }' >> "$META"; }
# w FILE VALUE... : echo VALUE > $T/FILE, logged with its result
w() {
  _f=$1; shift
  if echo "$*" > "$T/$_f" 2> "$OUT/.err.$N"; then _st=ok; else _st="FAILED: $(tr '\n' ' ' < "$OUT/.err.$N")"; fi
  printf 'write\t>\t%s\t%s\t%s\t%s\n' "$_f" "$*" "$_st" "$(cut -d' ' -f1 /proc/uptime)" >> "$META"
  [ "$_st" = ok ]
}
# wa FILE VALUE... : echo VALUE >> $T/FILE (append), logged
wa() {
  _f=$1; shift
  if echo "$*" >> "$T/$_f" 2> "$OUT/.err.$N"; then _st=ok; else _st="FAILED: $(tr '\n' ' ' < "$OUT/.err.$N")"; fi
  printf 'write\t>>\t%s\t%s\t%s\t%s\n' "$_f" "$*" "$_st" "$(cut -d' ' -f1 /proc/uptime)" >> "$META"
  [ "$_st" = ok ]
}
opt() { w "options/$1" "$2"; }
# graph F... : append each function to set_graph_function
graph() { for _g in "$@"; do wa set_graph_function "$_g"; done; }
# graph_first F1 F2... : append the first of these names that the kernel accepts
graph_first() { for _g in "$@"; do wa set_graph_function "$_g" && return 0; done; return 1; }
clear_trace() { : > "$T/trace"; _log "clear	trace"; }
start() { w tracing_on 0; w current_tracer function_graph; clear_trace; w tracing_on 1; }
stop() { w tracing_on 0; }
# work CMD : run CMD (sh -c) with a timeout, output discarded, logged
work() {
  _log "workload	$*"
  timeout "${WORK_TIMEOUT:-240}" sh -c "$*" > /dev/null 2>> "$OUT/$N.werr"
  _log "workload_rc	$?"
}
# setup CMD : run an untraced preparation command, logged
setup() { _log "setup	$*"; timeout 300 sh -c "$*" > /dev/null 2>> "$OUT/$N.werr"; }
# save SRC DST : copy $T/SRC byte for byte to $OUT/DST
save() { cat "$T/$1" > "$OUT/$2"; _log "read	$1	$2"; }
note() { _log "note	$*"; }
unavailable() { _log "unavailable	$*"; }
dummies() {  # dummies N : create dummy links d0..d(N-1) (ip -batch)
  _i=0; while [ $_i -lt "$1" ]; do echo "link add d$_i type dummy"; _i=$((_i+1)); done > "$OUT/.batch.$N"
  setup "ip -batch $OUT/.batch.$N  # = ip link add d0..d$(($1-1)) type dummy"
  rm -f "$OUT/.batch.$N"
  # udev workers handle the new links (and call rtnetlink themselves): let them finish first
  setup "udevadm settle --timeout=900"
}
undummies() {
  _i=0; while [ $_i -lt "$1" ]; do echo "link del d$_i"; _i=$((_i+1)); done > "$OUT/.batch.$N"
  timeout 300 ip -batch "$OUT/.batch.$N" > /dev/null 2>&1; rm -f "$OUT/.batch.$N"
  timeout 900 udevadm settle --timeout=900
}
"""

# Runs first in the guest: remember boot-time defaults, provide reset_tracefs.
DRIVER_HEAD = r"""
OUT="$RWDIR"; T=/sys/kernel/tracing; export OUT
uname -r > "$OUT/.uname"
for o in "$T"/options/*; do printf '%s %s\n' "${o##*/}" "$(cat "$o")"; done > "$OUT/.defaults"
BUF0=$(sed 's/ .*//;s/[^0-9]//g' "$T/buffer_size_kb"); case "$BUF0" in 7|'') BUF0=1408;; esac
reset_tracefs() {
  echo 0 > $T/tracing_on
  echo nop > $T/current_tracer
  for f in set_graph_function set_graph_notrace set_ftrace_filter set_ftrace_notrace set_ftrace_pid set_event_pid set_event; do
    [ -e "$T/$f" ] && : > "$T/$f"
  done
  echo 0 > $T/events/enable
  echo 0 > $T/max_graph_depth
  echo 0 > $T/tracing_thresh
  echo local > $T/trace_clock
  echo "$BUF0" > $T/buffer_size_kb
  while read o v; do echo "$v" > "$T/options/$o" 2>/dev/null; done < "$OUT/.defaults"
  : > $T/trace
  echo 1 > $T/tracing_on
}
ip link set lo up
# heartbeat for the host (rwdir/.heartbeat): stacks of the capture shells and of D-state
# tasks. One python process waiting in select() (not nanosleep: do_nanosleep is a graph root
# of some captures), no forks.
python3 -c '
import os, select, glob
out = os.environ["OUT"]
while True:
    select.select([], [], [], 20)
    lines = ["uptime %s load %s" % (open("/proc/uptime").read().split()[0], open("/proc/loadavg").read().strip())]
    for d in glob.glob("/proc/[0-9]*"):
        try:
            st = [l for l in open(d + "/status") if l.startswith("State:")][0].split()[1]
            cmd = open(d + "/cmdline").read().replace("\0", " ")[:150]
            if st == "D" or ".cap." in cmd or "udevadm" in cmd:
                lines.append("== %s %s %s" % (d[6:], st, cmd))
                lines.append(open(d + "/stack").read().rstrip())
        except Exception:
            pass
    open(out + "/.heartbeat.tmp", "w").write("\n".join(lines) + "\n")
    os.replace(out + "/.heartbeat.tmp", out + "/.heartbeat")
' &
HEARTBEAT=$!
"""
DRIVER_TAIL = r"""
kill $HEARTBEAT 2>/dev/null
rm -f "$OUT/.heartbeat" "$OUT/.heartbeat.tmp"
"""

DRIVER_EACH = r"""
reset_tracefs
echo "=== capture {name}"
N={name}; export N OUT
{{
  printf 'uname\t%s\n' "$(uname -r)"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'options_available\t%s\n' "$(ls $T/options | tr '\n' ' ')"
}} > "$OUT/$N.meta"
timeout {timeout} sh -c '. "$OUT/.preamble.sh"; . "$OUT/.cap.$N.sh"'
printf 'script_rc\t%s\n' "$?" >> "$OUT/$N.meta"
printf 'trace_options_at_end\t%s\n' "$(tr '\n' ' ' < $T/trace_options)" >> "$OUT/$N.meta"
printf 'buffer_size_kb_at_end\t%s\n' "$(cat $T/buffer_size_kb)" >> "$OUT/$N.meta"
for c in "$T"/per_cpu/cpu*; do
  printf 'stats\t%s\t%s\n' "${{c##*/}}" "$(tr '\n' '|' < "$c/stats")" >> "$OUT/$N.meta"
done
echo 0 > $T/tracing_on
reset_tracefs
"""

q = shlex.quote

UDP_CLOSED = ("python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "[s.sendto(b\"x\", (\"127.0.0.1\", 9)) for _ in range(3)]'")
TCP_CLOSED = ("python3 -c 'import socket\nfor _ in range(2):\n s=socket.socket()\n try: s.connect((\"127.0.0.1\", 1))\n "
              "except ConnectionRefusedError: pass\n s.close()'")
TCP_LINGER0 = ("python3 -c 'import socket, struct\nl=socket.socket(); l.bind((\"127.0.0.1\", 0)); l.listen()\n"
               "c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
               "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\", 1, 0)); c.close()\n"
               "try: a.recv(10)\nexcept ConnectionResetError: pass\na.close(); l.close()'")
SLEEPERS = ("for j in 1 2 3; do (for i in 1 2 3 4 5; do sleep 0.01; done) & done; "
            "taskset -c 0 sleep 3 & p=$!; sleep 0.5; taskset -p -c 1 $p; "
            "taskset -c 1 sleep 3 & q=$!; sleep 0.5; taskset -p -c 0 $q; wait")
BUSY = ("for c in 0 1; do taskset -c $c sh -c 'while :; do :; done' & echo $! >> $OUT/.busy.$N; done; "
        "note busy loops on CPUs 0 and 1: pids $(tr '\\n' ' ' < $OUT/.busy.$N)")
UNBUSY = "kill $(cat $OUT/.busy.$N); rm -f $OUT/.busy.$N"


@dataclass
class Capture:
    name: str
    body: str  # shell, uses PREAMBLE helpers
    desc: str
    kernels: str = "all"  # "all", or a regex matched against the kernel version
    timeout: int = 240
    outputs: list[str] = field(default_factory=list)  # default [name.txt]
    max_plain: int | None = None  # bigger .txt outputs are stored as .txt.xz (xz -6)


def _simple(name, desc, opts=(), graph="rtnetlink_rcv", workload="ip link show", extra="", **kw):
    lines = [f"graph {graph}"] + [f"opt {o} {v}" for o, v in opts]
    if extra:
        lines.append(extra)
    lines += ["start", f"work {q(workload)}", "stop", f"save trace {name}.txt"]
    return Capture(name, "\n".join(lines), desc, **kw)


CAPTURES: list[Capture] = [
    _simple("default_trace", "graph rtnetlink_rcv around `ip link show`, default options, read from `trace`"),
    _simple("proc_abstime", "as default_trace + funcgraph-proc + funcgraph-abstime",
            [("funcgraph-proc", 1), ("funcgraph-abstime", 1)]),
    _simple("latency_format", "latency-format on, + funcgraph-proc",
            [("latency-format", 1), ("funcgraph-proc", 1)]),
    _simple("nocontext", "context-info off (no CPU/duration/header columns)", [("context-info", 0)]),
    _simple("noduration", "funcgraph-duration off", [("funcgraph-duration", 0)]),
    _simple("nocpu", "funcgraph-cpu off", [("funcgraph-cpu", 0)]),
    _simple("nooverhead", "funcgraph-overhead off", [("funcgraph-overhead", 0)]),
    _simple("tail_overrun", "funcgraph-tail + funcgraph-overrun on",
            [("funcgraph-tail", 1), ("funcgraph-overrun", 1)]),
    Capture("trace_pipe_live", r"""
graph rtnetlink_rcv
opt funcgraph-proc 1
start
cat $T/trace_pipe > $OUT/trace_pipe_live.txt &
rp=$!
_log "read	trace_pipe	trace_pipe_live.txt"
note "trace_pipe read by cat in the background while the workload ran; cat killed 3 s after it"
sleep 1
work 'for i in 1 2; do ip link show; ip addr show; done'
sleep 2
stop
sleep 1
kill $rp; wait $rp
""", "trace_pipe read live while the workload runs (no header), funcgraph-proc"),
    Capture("trace_pipe_sleep", r"""
graph do_nanosleep
w max_graph_depth 1
opt funcgraph-proc 1
start
cat $T/trace_pipe > $OUT/trace_pipe_sleep.txt &
rp=$!
_log "read	trace_pipe	trace_pipe_sleep.txt"
note "trace_pipe read by cat in the background; with max_graph_depth 1 do_nanosleep has no recorded children, so its entry is read while the task sleeps: the kernel prints 'do_nanosleep() {' and later a separate '}' instead of a leaf line"
sleep 1
work 'for i in 1 2 3; do sleep 0.3; done'
sleep 2
stop
sleep 1
kill $rp; wait $rp
""", "trace_pipe read live, graph do_nanosleep with max_graph_depth 1, 3x `sleep 0.3`: entries read before their exit"),
    Capture("percpu", r"""
graph rtnetlink_rcv
start
work 'taskset -c 0 ip link show; taskset -c 1 ip addr show'
stop
for c in $T/per_cpu/cpu*; do save per_cpu/${c##*/}/trace percpu_${c##*/}.txt; done
""", "per_cpu/cpuN/trace saved separately; `ip link show` pinned to CPU0, `ip addr show` to CPU1",
            outputs=["percpu_cpu0.txt", "percpu_cpu1.txt"]),
    Capture("thresh", r"""
dummies 200
graph rtnetlink_rcv
w tracing_thresh 100
start
work 'ip -d link show'
stop
save trace thresh.txt
undummies 200
""", "tracing_thresh 100 us (TCG makes 50 us far too common), 200 dummy links, `ip -d link show`"),
    Capture("depth3_markers", r"""
graph rtnetlink_rcv
w max_graph_depth 3
start
w trace_marker "ftracekit marker start"
work 'ip link show; ip addr show'
w trace_marker "ftracekit marker end"
stop
save trace depth3_markers.txt
""", "max_graph_depth 3 with trace_marker writes before/after the workload"),
    Capture("pid_fork", r"""
graph_first do_sys_openat2 do_sys_open __x64_sys_openat
opt function-fork 1
opt funcgraph-proc 1
w max_graph_depth 4
w tracing_on 0
w current_tracer function_graph
clear_trace
(while :; do cat /etc/hostname; done) > /dev/null 2>&1 &
noise=$!
note "untraced noise: pid $noise runs cat /etc/hostname in a loop (not in set_ftrace_pid)"
note "the traced shell also runs this script's logging helpers (cut for w, awk for note), which are forks too and appear in the trace"
_log "workload	sh -c 'echo \$\$ > set_ftrace_pid; echo 1 > tracing_on; cat /etc/hostname; ls /; head -1 /etc/passwd; (cat /etc/hostname); echo 0 > tracing_on'"
sh -c '. "$OUT/.preamble.sh"; note "traced shell pid $$"; w set_ftrace_pid $$; w tracing_on 1; cat /etc/hostname; ls / ; head -1 /etc/passwd; (cat /etc/hostname); w tracing_on 0' > /dev/null
kill $noise
save trace pid_fork.txt
""", "set_ftrace_pid = a shell's pid + function-fork; graph do_sys_openat2; max depth 4; proc"),
    Capture("kfree_skb_events", f"""
graph_first __udp4_lib_rcv udp_rcv
w events/skb/kfree_skb/enable 1
opt funcgraph-proc 1
opt funcgraph-abstime 1
start
work {q(UDP_CLOSED)}
stop
save trace kfree_skb_events.txt
""", "event skb:kfree_skb + graph __udp4_lib_rcv, 3 UDP datagrams to closed 127.0.0.1:9; proc+abstime"),
    Capture("tcp_reset_events", f"""
graph tcp_v4_send_reset tcp_v4_rcv tcp_send_active_reset
w events/tcp/tcp_send_reset/enable 1
opt funcgraph-proc 1
opt funcgraph-abstime 1
start
work {q(TCP_CLOSED)}
work {q(TCP_LINGER0)}
stop
save trace tcp_reset_events.txt
""", "event tcp:tcp_send_reset + graph tcp_v4_send_reset,tcp_v4_rcv,tcp_send_active_reset; 2 connects to closed "
     "127.0.0.1:1 (passive RST) + a SO_LINGER 0 close (active RST); proc+abstime"),
    Capture("switch_noproc", f"""
graph do_nanosleep
w max_graph_depth 3
start
{BUSY}
work {q(SLEEPERS)}
stop
{UNBUSY}
save trace switch_noproc.txt
""", "graph do_nanosleep (depth 3), 3x5 `sleep 0.01` + 2 sleeps re-pinned by taskset while asleep, 2 CPUs busy; no proc"),
    Capture("switch_proc", f"""
graph do_nanosleep
w max_graph_depth 3
opt funcgraph-proc 1
start
{BUSY}
work {q(SLEEPERS)}
stop
{UNBUSY}
save trace switch_proc.txt
""", "as switch_noproc + funcgraph-proc"),
    Capture("wrapped", r"""
w buffer_size_kb 8
graph rtnetlink_rcv
start
work 'ip link show; ip addr show; ip route show; ip link show'
stop
save trace wrapped.txt
""", "buffer_size_kb 8 so the ring buffer wraps (leading orphan exits)"),
    Capture("lost_events", r"""
w buffer_size_kb 64
graph rtnetlink_rcv
opt funcgraph-proc 1
start
(while :; do ip link show; done) > /dev/null 2>&1 &
l1=$!
(while :; do ip addr show; done) > /dev/null 2>&1 &
l2=$!
note "load: pids $l1 $l2 run ip link show / ip addr show in loops while trace is read"
_log "workload	while :; do ip link show; done & while :; do ip addr show; done &"
sleep 3
_log "read	trace	lost_events.txt"
note "trace read while tracing is on, by python: 4096-byte reads with 100 ms sleeps; stopped at EOF, or after 250 KB (cut after the last complete line), or after 90 s"
timeout 150 python3 -c '
import time, sys
f = open("/sys/kernel/tracing/trace", "rb", buffering=0); o = open(sys.argv[1], "wb")
t0 = time.time(); n = 0; why = "EOF"
while True:
    b = f.read(4096)
    if not b: break
    if n + len(b) >= 250000:
        b = b[: b.rfind(b"\n") + 1] if b"\n" in b else b""; o.write(b); n += len(b); why = "size limit"; break
    o.write(b); n += len(b)
    if time.time() - t0 > 90: why = "time limit"; break
    time.sleep(0.1)
print("stopped at %s after %d bytes" % (why, n), file=sys.stderr)
' "$OUT/lost_events.txt" 2> "$OUT/.lost_reader.$N"
note "reader: $(cat $OUT/.lost_reader.$N)"
stop
kill $l1 $l2
""", "trace read slowly while tracing is on under load, buffer_size_kb 64 (expect CPU:N [LOST EVENTS] lines)"),
    Capture("irqs_off", r"""
graph rtnetlink_rcv
opt funcgraph-irqs 0
start
work 'for i in 1 2 3 4 5; do ip link show; done'
stop
save trace irqs_off.txt
""", "funcgraph-irqs off; graph rtnetlink_rcv, 5x `ip link show` (twin: irqs_on)"),
    Capture("irqs_on", r"""
graph rtnetlink_rcv
start
work 'for i in 1 2 3 4 5; do ip link show; done'
stop
save trace irqs_on.txt
""", "twin of irqs_off with funcgraph-irqs on (default): timer interrupts that hit the traced "
     "code appear nested in it (irq_enter_rcu, __sysvec_apic_timer_interrupt, ...)"),
    Capture("irq_arrows", r"""
# irq arrows are printed only for traced functions inside __irqentry_text
awk '$3 ~ /^[tT]$/ { if ($4 == "__irqentry_text_start") f = 1; else if ($4 == "__irqentry_text_end") exit; else if (f) print $4 }' /proc/kallsyms | sort -u > $OUT/.irqsyms
grep -o '^[^ ]*' $T/available_filter_functions | sort -u > $OUT/.aff
comm -12 $OUT/.irqsyms $OUT/.aff > $OUT/.irqtraceable
note "__irqentry_text has $(wc -l < $OUT/.irqsyms) symbols; traceable ones: $(tr '\n' ' ' < $OUT/.irqtraceable)"
if [ -s $OUT/.irqtraceable ]; then
  for f in $(cat $OUT/.irqtraceable); do wa set_graph_function $f; done
  start
  work 'sleep 2'
  stop
  save trace irq_arrows.txt
else
  unavailable "no function in __irqentry_text is traceable on this kernel (x86 entry stubs are noinstr asm), so ==========> / <========== cannot appear"
fi
rm -f $OUT/.irqsyms $OUT/.aff $OUT/.irqtraceable
""", "try to get irq arrows: graph the traceable functions of __irqentry_text", outputs=["irq_arrows.txt"]),
    Capture("sleep_time_off", r"""
graph do_nanosleep
opt sleep-time 0 || unavailable "no sleep-time option"
start
work 'for i in 1 2 3; do sleep 0.05; done'
stop
save trace sleep_time_off.txt
""", "option sleep-time off; graph do_nanosleep around 3x `sleep 0.05` (twin: sleep_time_on)"),
    Capture("sleep_time_on", r"""
graph do_nanosleep
start
work 'for i in 1 2 3; do sleep 0.05; done'
stop
save trace sleep_time_on.txt
""", "twin of sleep_time_off with sleep-time on (default)"),
    Capture("retval", r"""
if opt funcgraph-retval 1; then
  graph rtnetlink_rcv
  w max_graph_depth 4
  start; work 'ip link show; ip link show nosuchdev'; stop; save trace retval.txt
else
  unavailable "no options/funcgraph-retval on this kernel (CONFIG_FUNCTION_GRAPH_RETVAL not set)"
fi
""", "funcgraph-retval on (6.5+, needs CONFIG_FUNCTION_GRAPH_RETVAL)"),
    Capture("retval_hex", r"""
if opt funcgraph-retval 1 && opt funcgraph-retval-hex 1; then
  graph rtnetlink_rcv
  w max_graph_depth 4
  start; work 'ip link show; ip link show nosuchdev'; stop; save trace retval_hex.txt
else
  unavailable "no options/funcgraph-retval(-hex) on this kernel (CONFIG_FUNCTION_GRAPH_RETVAL not set)"
fi
""", "funcgraph-retval + funcgraph-retval-hex"),
    Capture("retval_events", r"""
if opt funcgraph-retval 1; then
  graph_first __udp4_lib_rcv udp_rcv
  w events/skb/kfree_skb/enable 1
  opt funcgraph-proc 1
  opt funcgraph-abstime 1
  w max_graph_depth 4
  start; work """ + q(UDP_CLOSED) + r"""; stop; save trace retval_events.txt
else
  unavailable "no options/funcgraph-retval on this kernel (CONFIG_FUNCTION_GRAPH_RETVAL not set)"
fi
""", "funcgraph-retval + proc + abstime + event skb:kfree_skb, graph __udp4_lib_rcv (depth 4), UDP to a closed port"),
    Capture("retaddr", r"""
if opt funcgraph-retaddr 1; then
  graph rtnetlink_rcv
  w max_graph_depth 4
  start; work 'ip link show'; stop; save trace retaddr.txt
else
  unavailable "no options/funcgraph-retaddr on this kernel (6.13+, CONFIG_FUNCTION_GRAPH_RETADDR)"
fi
""", "funcgraph-retaddr on (6.13+)"),
    Capture("funcgraph_args", r"""
if opt funcgraph-args 1; then
  graph rtnetlink_rcv
  w max_graph_depth 4
  start; work 'ip link show'; stop; save trace funcgraph_args.txt
else
  unavailable "no options/funcgraph-args on this kernel (6.16+, BTF)"
fi
""", "funcgraph-args on (6.16+)"),
    Capture("funcgraph_args_retval_proc", r"""
if opt funcgraph-args 1; then
  opt funcgraph-retval 1 || note "no funcgraph-retval"
  opt funcgraph-proc 1
  opt funcgraph-abstime 1
  graph_first __udp4_lib_rcv udp_rcv
  w max_graph_depth 3
  start; work """ + q(UDP_CLOSED) + r"""; stop; save trace funcgraph_args_retval_proc.txt
else
  unavailable "no options/funcgraph-args on this kernel (6.16+, BTF)"
fi
""", "funcgraph-args with proc+abstime on the UDP receive path (and retval if the kernel has it)"),
    # ---- trace-cmd: .dat recorded in the guest, reported on the host
    Capture("tracecmd", r"""
cd $OUT
_log "workload	trace-cmd record -p function_graph -g rtnetlink_rcv -o tracecmd.dat ip link show"
timeout 300 trace-cmd record -p function_graph -g rtnetlink_rcv -o $OUT/tracecmd.dat ip link show > $OUT/tracecmd.record.log 2>&1
_log "workload_rc	$?"
_log "read	trace-cmd	tracecmd.dat"
""", "trace-cmd record -g rtnetlink_rcv; reports (plain, -O fgraph:tailprint, -O fgraph:depth) made on the host",
            outputs=["tracecmd.dat"]),
    Capture("tracecmd_events", r"""
cd $OUT
_log "workload	trace-cmd record -p function_graph -g __udp4_lib_rcv -e skb:kfree_skb -o tracecmd_events.dat <udp to closed port>"
timeout 300 trace-cmd record -p function_graph -g __udp4_lib_rcv -e skb:kfree_skb -o $OUT/tracecmd_events.dat """ + UDP_CLOSED + r""" > $OUT/tracecmd_events.record.log 2>&1
_log "workload_rc	$?"
_log "read	trace-cmd	tracecmd_events.dat"
""", "trace-cmd record with -e skb:kfree_skb, graph __udp4_lib_rcv, UDP to a closed port",
            outputs=["tracecmd_events.dat"]),
    # ---- example data
    Capture("netlink_dump_200", r"""
dummies 200
graph rtnetlink_rcv
opt funcgraph-proc 1
opt funcgraph-abstime 1
w buffer_size_kb 65536
start
work 'for i in 1 2 3; do ip -d link show; done; ip addr show'
stop
save trace netlink_dump_200.txt
undummies 200
""", "EXAMPLE: 200 dummy links, graph rtnetlink_rcv, proc+abstime, 3x `ip -d link show` + `ip addr show`",
            kernels=r"^6\.1\.", timeout=1500, max_plain=1_000_000),
    Capture("tcp_reset", f"""
graph tcp_v4_send_reset tcp_send_active_reset
w events/tcp/tcp_send_reset/enable 1
opt funcgraph-proc 1
opt funcgraph-abstime 1
start
work {q(TCP_CLOSED)}
work {q(TCP_LINGER0)}
stop
save trace tcp_reset.txt
""", "EXAMPLE: graphs tcp_v4_send_reset + tcp_send_active_reset, event tcp:tcp_send_reset, proc+abstime; "
     "connect to closed port + SO_LINGER 0 close", kernels=r"^6\.1\.", max_plain=1_000_000),
    Capture("packet_drops", f"""
graph ip_rcv
w events/skb/kfree_skb/enable 1
opt funcgraph-proc 1
opt funcgraph-abstime 1
start
work {q(UDP_CLOSED)}
work {q(TCP_CLOSED)}
stop
save trace packet_drops.txt
""", "EXAMPLE: event skb:kfree_skb + graph ip_rcv, UDP to closed port and TCP SYN to closed port, proc+abstime",
            kernels=r"^6\.1\.", max_plain=1_000_000),
]
BY_NAME = {c.name: c for c in CAPTURES}

# --------------------------------------------------------------------------- host side

SEP_RE = re.compile(r"^ -{20,}\s*$")
LOST_RE = re.compile(r"^CPU:(\d+) \[LOST(?: (\d+))? EVENTS\]")
ABSTIME_RE = re.compile(r"^\s*\d+\.\d+ \|  ")
CPU_RE = re.compile(r"^\s*(\d+)\)")
SWITCH_RE = re.compile(r"^\s*(?:\d+\.\d+ \|\s+)?(\d+)\)\s+(\S.*?)\s+=>\s+(\S.*?)\s*$")
PROC_RE = re.compile(r"^\s*(?:\d+\.\d+ \|\s+)?\d+\)\s+(\S.*?-(\d+))\s+\|")
CPU_PREFIX_RE = re.compile(r"^\s*\d+\) ")
ARGS_RE = re.compile(r"^[\w.]+\([^)]")            # funcgraph-args: name(arg=...)
RETVAL_RE = re.compile(r"/\* (?:[\w.]+ )?(?:= |ret=)")  # funcgraph-retval (6.5-6.12 / 6.13+)


def _body(ln: str) -> str:
    """The function-call text of a line (after the last column separator)."""
    if "|  " in ln:
        return ln[ln.rfind("|  ") + 3:].strip()
    if "|" in ln:
        return ln[ln.rfind("|") + 1:].strip()
    return CPU_PREFIX_RE.sub("", ABSTIME_RE.sub("", ln, count=1), count=1).strip()
NAMED_EXIT_RE = re.compile(r"^\}\s*/\* (\S+?)(?: (?:= |ret=)[^*]*)? \*/")


def _pid_of(task: str) -> int | None:
    m = re.search(r"-(\d+)$", task.strip())
    return int(m.group(1)) if m else None


def observe(text: str) -> dict:
    """Summarise special line kinds (a small scanner for the json notes, not the parser)."""
    lines = text.splitlines()
    obs = {
        "lines": len(lines), "header_lines": 0, "switch_blocks": 0, "lost_events_lines": [],
        "irq_entry_arrows": 0, "irq_exit_arrows": 0, "irq_handlers_traced": 0,
        "calls_with_args": 0, "return_values": 0, "return_addresses": 0, "overrun_lines": 0, "comment_lines": 0,
        "comment_kinds": {}, "named_exits": 0, "orphan_exits": 0, "unfinished_entries": 0,
        "migrations": 0, "migration_examples": [], "orphan_examples": [], "blank_lines": 0,
    }
    cur_pid: dict[int, int] = {}  # cpu -> pid (from proc column or switch block)
    stacks: dict[object, list] = {}
    prev_sep = False
    for i, ln in enumerate(lines):
        if ln.startswith("#"):
            obs["header_lines"] += 1
            continue
        if not ln.strip():
            obs["blank_lines"] += 1
            continue
        if SEP_RE.match(ln):
            prev_sep = True
            continue
        m = LOST_RE.match(ln)
        if m:
            obs["lost_events_lines"].append(ln.strip())
            continue
        if prev_sep:
            prev_sep = False
            m = SWITCH_RE.match(ln)
            if m and "|" not in ln[: ln.find("=>")].split(")", 1)[-1]:
                obs["switch_blocks"] += 1
                p = _pid_of(m.group(3))
                if p is not None:
                    cur_pid[int(m.group(1))] = p
                continue
        if "==========>" in ln:
            obs["irq_entry_arrows"] += 1
            continue
        if "<==========" in ln:
            obs["irq_exit_arrows"] += 1
            continue
        if ln.lstrip().startswith("(Overruns:"):
            obs["overrun_lines"] += 1
            continue
        cm = CPU_RE.match(ABSTIME_RE.sub("", ln, count=1))
        cpu = int(cm.group(1)) if cm else None
        pm = PROC_RE.match(ln)
        if pm and cpu is not None:
            cur_pid[cpu] = int(pm.group(2))
        body = _body(ln)
        key = ("pid", cur_pid[cpu]) if cpu is not None and cpu in cur_pid else ("cpu", cpu)
        st = stacks.setdefault(key, [])
        if body.startswith(("irq_enter_rcu()", "irq_enter()")):
            obs["irq_handlers_traced"] += 1
        if ARGS_RE.match(body):
            obs["calls_with_args"] += 1
        if RETVAL_RE.search(body):
            obs["return_values"] += 1
        if "/* <-" in body:
            obs["return_addresses"] += 1
        if body.startswith("/*"):
            obs["comment_lines"] += 1
            km = re.match(r"/\* (\w+): ", body)
            k = km.group(1) if km else "marker/other"
            obs["comment_kinds"][k] = obs["comment_kinds"].get(k, 0) + 1
        elif body.startswith("}"):
            if NAMED_EXIT_RE.match(body):
                obs["named_exits"] += 1
            if st:
                ecpu, eline = st.pop()
                if key[0] == "pid" and cpu is not None and ecpu is not None and ecpu != cpu:
                    obs["migrations"] += 1
                    if len(obs["migration_examples"]) < 5:
                        obs["migration_examples"].append(
                            f"pid {key[1]}: entry line {eline} on CPU{ecpu}, exit line {i + 1} on CPU{cpu}")
            else:
                obs["orphan_exits"] += 1
                if len(obs["orphan_examples"]) < 5:
                    obs["orphan_examples"].append(f"line {i + 1}: {ln.strip()}")
        elif body.endswith("{") or re.search(r"\{ /\*.*\*/$", body):
            st.append((cpu, i + 1))
    obs["unfinished_entries"] = sum(len(s) for s in stacks.values())
    if any(k[0] == "cpu" and k[1] is None for k in stacks):
        obs["note"] = ("no CPU column: orphan/unfinished/migration counts are not meaningful "
                       "(calls of all CPUs were matched as one stream)")
    obs["lost_events_lines"] = obs["lost_events_lines"][:20]
    return obs


def parse_meta(path: Path) -> dict:
    meta = {"writes": [], "reads": [], "workloads": [], "setup": [], "notes": [], "unavailable": [],
            "stats": {}}
    for ln in path.read_text(errors="replace").splitlines():
        parts = ln.split("\t")
        tag = parts[0]
        if tag == "write":
            mode, f, v, st, t = (parts + ["", "", "", "", ""])[1:6]
            meta["writes"].append({"file": f, "value": v, "mode": mode, "result": st,
                                   "uptime_s": float(t) if t else None})
        elif tag == "clear":
            meta["writes"].append({"file": parts[1], "value": "", "mode": ">", "result": "ok (truncate: clears buffer)"})
        elif tag == "read":
            meta["reads"].append({"file": parts[1], "saved_as": parts[2]})
        elif tag == "workload":
            meta["workloads"].append({"command": "\t".join(parts[1:]).replace("\\n", "\n")})
        elif tag == "workload_rc" and meta["workloads"]:
            meta["workloads"][-1]["exit_status"] = int(parts[1])
        elif tag == "setup":
            meta["setup"].append("\t".join(parts[1:]))
        elif tag == "note":
            meta["notes"].append("\t".join(parts[1:]))
        elif tag == "unavailable":
            meta["unavailable"].append("\t".join(parts[1:]))
        elif tag == "stats":
            d = {}
            for kv in parts[2].split("|"):
                if ":" in kv:
                    k, v = kv.split(":", 1)
                    v = v.strip()
                    d[k.strip()] = int(v) if re.fullmatch(r"-?\d+", v) else v
            meta["stats"][parts[1]] = d
        elif tag == "options_available":
            meta["options_available"] = parts[1].split()
        elif tag == "trace_options_at_end":
            meta["trace_options_at_end"] = parts[1].split()
        elif tag in ("uname", "nproc", "script_rc", "buffer_size_kb_at_end"):
            meta[tag] = parts[1] if len(parts) > 1 else ""
    return meta


def tracecmd_reports(dat: Path, outdir: Path, stem: str) -> list[dict]:
    variants = [("", []), ("_tail", ["-O", "fgraph:tailprint"]), ("_depth", ["-O", "fgraph:depth"])]
    done = []
    for suffix, extra in variants:
        out = outdir / f"{stem}_report{suffix}.txt"
        cmd = ["trace-cmd", "report", "-i", str(dat), *extra]
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        out.write_bytes(cp.stdout)
        done.append({"command": " ".join(["trace-cmd", "report", "-i", dat.name, *extra]) + f" > {out.name}",
                     "exit_status": cp.returncode, "stderr": cp.stderr.decode(errors="replace")[-500:],
                     "file": out.name})
    return done


HEARTBEAT_STALE = 360  # s without a guest heartbeat (written every 20 s) => wedged guest


def _completed(rw: Path, name: str) -> bool:
    m = rw / f"{name}.meta"
    return m.exists() and "\nscript_rc\t" in m.read_text(errors="replace")


def run_kernel(kernel: str, caps: list[Capture], outroot: Path, timeout: float, tries: int = 3,
               note: str = "") -> None:
    """Run captures in one VM; if the VM hangs, finish what completed and retry the rest."""
    hung: dict[str, int] = {}
    remaining = list(caps)
    for attempt in range(1, tries + 1):
        if not remaining:
            break
        with tempfile.TemporaryDirectory(prefix="ftk-capture-") as tmp:
            rw = Path(tmp)
            (rw / ".preamble.sh").write_text(PREAMBLE)
            driver = [DRIVER_HEAD]
            for c in remaining:
                (rw / f".cap.{c.name}.sh").write_text(c.body)
                driver.append(DRIVER_EACH.format(name=c.name, timeout=c.timeout))
            driver.append(DRIVER_TAIL)
            budget = timeout or (150 + sum(c.timeout for c in remaining))
            t0 = time.monotonic()
            print(f"[{kernel}] attempt {attempt}: booting for {len(remaining)} captures "
                  f"(timeout {budget:.0f} s)", flush=True)
            error = None
            started = time.time()

            def watchdog(rw=rw, started=started):
                hb = rw / ".heartbeat"
                last = hb.stat().st_mtime if hb.exists() else started
                if time.time() - last > HEARTBEAT_STALE:
                    return f"no guest heartbeat for {time.time() - last:.0f} s (guest wedged)"
                return None
            try:
                cp = vm.run_in_vm("\n".join(driver), kernel=kernel, rwdir=rw, timeout=budget,
                                  watchdog=watchdog, extra_args=("--verbose",))
                print(cp.stdout, end="")
                if cp.returncode:
                    print(f"[{kernel}] guest exit {cp.returncode}; stderr tail:\n{cp.stderr[-2000:]}")
            except vm.VMError as e:
                error = str(e)
                print(f"[{kernel}] {e}\n--- console tail:\n{e.stdout[-4000:]}\n{e.stderr[-4000:]}", flush=True)
                Path(tempfile.gettempdir(), "ftk-capture-last-failure.log").write_text(f"{e}\n{e.stdout}\n--- stderr\n{e.stderr}")
            print(f"[{kernel}] VM done in {time.monotonic() - t0:.0f} s", flush=True)
            uname = (rw / ".uname").read_text().strip() if (rw / ".uname").exists() else kernel
            outdir = outroot / uname
            outdir.mkdir(parents=True, exist_ok=True)
            still = []
            for c in remaining:
                if _completed(rw, c.name):
                    finish_capture(c, rw, outdir, uname, hung.get(c.name, 0), kernel_image=kernel, note=note)
                else:
                    still.append(c)
            if error and still:
                first = still[0]
                hung[first.name] = hung.get(first.name, 0) + 1
                if hung[first.name] >= 2:
                    print(f"  {first.name}: VM hung twice during it; giving up on it")
                    finish_capture(first, rw, outdir, uname, hung[first.name], failed=error,
                                   kernel_image=kernel, note=note)
                    still = still[1:]
            remaining = still
    for c in remaining:
        print(f"  {c.name}: not completed after {tries} attempts")


def finish_capture(c: Capture, rw: Path, outdir: Path, uname: str, hangs: int = 0,
                   failed: str | None = None, kernel_image: str = "", note: str = "") -> None:
    metaf = rw / f"{c.name}.meta"
    meta = parse_meta(metaf) if metaf.exists() else parse_meta(Path("/dev/null"))
    if failed:
        meta["unavailable"].append(f"the VM hung during this capture ({hangs} times): {failed}")
        meta["reads"] = []
    werr = rw / f"{c.name}.werr"
    rec = {
        "name": c.name,
        "description": c.desc,
        "kernel": meta.get("uname", uname),
        "nproc": int(meta.get("nproc", "0") or 0),
        "recorded_by": "tests/data/capture.py (tracefs written with shell echo; see writes)",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "produced": False,
        "tracefs": "/sys/kernel/tracing",
        "setup": meta["setup"],
        "writes": meta["writes"],
        "reads": meta["reads"],
        "workloads": meta["workloads"],
        "stats_at_end": meta["stats"],
        "trace_options_at_end": meta.get("trace_options_at_end", []),
        "buffer_size_kb_at_end": meta.get("buffer_size_kb_at_end"),
        "options_available": meta.get("options_available", []),
        "notes": meta["notes"],
        "unavailable": meta["unavailable"],
        "script_exit_status": int(meta.get("script_rc", "-1") or -1),
        "files": {},
    }
    if hangs:
        rec["vm_hangs_before_success"] = hangs
    if "/" in kernel_image:
        rec["kernel_image"] = kernel_image
    if note:
        rec["kernel_note"] = note
    if werr.exists() and werr.read_text().strip():
        rec["workload_stderr"] = werr.read_text(errors="replace")[-2000:]
    if (rw / f"{c.name}.record.log").exists():
        rec["trace_cmd_record_log"] = (rw / f"{c.name}.record.log").read_text(errors="replace")[-2000:]
    for r in meta["reads"]:
        src = rw / r["saved_as"]
        if not src.exists():
            continue
        dst = outdir / r["saved_as"]
        shutil.copyfile(src, dst)
        info = {"bytes": dst.stat().st_size, "read_from": r["file"]}
        if dst.suffix == ".txt":
            info.update(observe(dst.read_text(errors="replace")))
            if c.max_plain and info["bytes"] > c.max_plain:
                xzf = dst.with_name(dst.name + ".xz")
                with xzf.open("wb") as fo:
                    subprocess.run(["xz", "-6", "-c", str(dst)], stdout=fo, check=True)
                dst.unlink()
                info["stored_as"] = xzf.name
                info["xz_bytes"] = xzf.stat().st_size
        else:
            info["reports"] = tracecmd_reports(dst, outdir, dst.stem)
            for rep in info["reports"]:
                rp = outdir / rep["file"]
                rep["lines"] = len(rp.read_text(errors="replace").splitlines())
                rep["bytes"] = rp.stat().st_size
        rec["files"][r["saved_as"]] = info
    rec["produced"] = bool(rec["files"]) and not rec["unavailable"]
    (outdir / f"{c.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
    summary = ", ".join(f"{k}: {v.get('lines', '?')} lines {v['bytes']} B" for k, v in rec["files"].items())
    print(f"  {c.name}: {'OK' if rec['produced'] else 'NOT PRODUCED'} {summary} {rec['unavailable'] or ''}")


def _special(info: dict) -> str:
    bits = []
    if info.get("header_lines"):
        bits.append("header")
    else:
        bits.append("no header")
    if info.get("switch_blocks"):
        bits.append(f"{info['switch_blocks']} switch blocks")
    lost = info.get("lost_events_lines", [])
    if lost:
        per = {}
        for ln in lost:
            cpu = ln.split()[0]
            per[cpu] = per.get(cpu, 0) + 1
        bits.append(f"{len(lost)} `CPU:N [LOST...EVENTS]` lines (" + ", ".join(f"{k} {v}" for k, v in sorted(per.items())) + ")")
    if info.get("irq_entry_arrows") or info.get("irq_exit_arrows"):
        bits.append(f"{info['irq_entry_arrows']}/{info['irq_exit_arrows']} irq arrows")
    for key, label in (("calls_with_args", "lines with arguments"), ("return_values", "lines with return values"),
                       ("return_addresses", "lines with return addresses")):
        if info.get(key):
            bits.append(f"{info[key]} {label}")
    if info.get("irq_handlers_traced"):
        bits.append(f"{info['irq_handlers_traced']} interrupts traced inside calls (irq_enter_rcu)")
    if info.get("overrun_lines"):
        bits.append(f"{info['overrun_lines']} `(Overruns: N)`")
    if info.get("comment_lines"):
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(info.get("comment_kinds", {}).items()))
        bits.append(f"{info['comment_lines']} comments ({kinds})")
    if info.get("named_exits"):
        bits.append(f"{info['named_exits']} `}} /* f */` exits")
    if "note" not in info:
        if info.get("orphan_exits"):
            bits.append(f"{info['orphan_exits']} unmatched exits")
        if info.get("unfinished_entries"):
            bits.append(f"{info['unfinished_entries']} unclosed entries")
        if info.get("migrations"):
            bits.append(f"{info['migrations']} calls exited on another CPU")
    return "; ".join(bits)


def readme_table(root: Path) -> str:
    """Markdown table of all captures under root/<kernel>/ from their json files."""
    rows = ["| kernel | capture | file | lines | bytes | what is in it (scanned) |",
            "|---|---|---|---:|---:|---|"]
    for kdir in sorted((d for d in root.iterdir() if d.is_dir() and re.match(r"\d", d.name)),
                       key=lambda d: vm._version_key(d.name)):
        for js in sorted(kdir.glob("*.json")):
            d = json.loads(js.read_text())
            if "files" not in d:
                continue
            if not d["files"]:
                why = "; ".join(d.get("unavailable", [])) or "not produced"
                rows.append(f"| {kdir.name} | {d['name']} | - | - | - | NOT PRODUCED: {why} |")
            for fname, info in d["files"].items():
                if "reports" in info:
                    rows.append(f"| {kdir.name} | {d['name']} | {fname} | - | {info['bytes']} | trace-cmd .dat |")
                    for rep in info["reports"]:
                        rows.append(f"| {kdir.name} | {d['name']} | {rep['file']} | {rep.get('lines')} | "
                                    f"{rep.get('bytes')} | `{rep['command'].split(' > ')[0]}` |")
                else:
                    shown = info.get("stored_as", fname)
                    size = f"{info['bytes']} ({info['xz_bytes']} as .xz)" if "xz_bytes" in info else info["bytes"]
                    rows.append(f"| {kdir.name} | {d['name']} | {shown} | {info.get('lines')} | {size} | "
                                f"{_special(info)} |")
    return "\n".join(rows) + "\n"


def rescan(root: Path) -> None:
    """Recompute files.<name> line-kind summaries of existing captures (data untouched)."""
    import lzma
    for js in root.glob("*/*.json"):
        d = json.loads(js.read_text())
        if "files" not in d:
            continue
        for fname, info in d["files"].items():
            if "reports" in info:
                continue
            f = js.parent / info.get("stored_as", fname)
            if not f.exists():
                continue
            text = (lzma.open(f, "rt", errors="replace") if f.suffix == ".xz" else f.open(errors="replace")).read()
            keep = {k: info[k] for k in ("bytes", "read_from", "stored_as", "xz_bytes") if k in info}
            info.clear()
            info.update(keep)
            info.update(observe(text))
        js.write_text(json.dumps(d, indent=1) + "\n")


def update_readme(root: Path) -> None:
    readme = root / "README.md"
    begin, end = "<!-- captures:begin -->", "<!-- captures:end -->"
    text = readme.read_text() if readme.exists() else f"{begin}\n{end}\n"
    a, b = text.index(begin) + len(begin), text.index(end)
    readme.write_text(text[:a] + "\n" + readme_table(root) + text[b:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="captures to run (default: all)")
    ap.add_argument("--kernel", action="append", help="kernel version(s) (default: all in /boot)")
    ap.add_argument("--out", default=str(HERE), help="output root (default: tests/data)")
    ap.add_argument("--timeout", type=float, default=0, help="VM timeout (default: sum of capture timeouts)")
    ap.add_argument("--kernel-note", default="", help="provenance of a --kernel given as an image path")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--readme", action="store_true", help="only rewrite the table in <out>/README.md")
    ap.add_argument("--rescan", action="store_true",
                    help="recompute the scanned summaries in existing json files from their .txt, then --readme")
    args = ap.parse_args(argv)
    if args.rescan:
        rescan(Path(args.out))
    if args.readme or args.rescan:
        update_readme(Path(args.out))
        return 0
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown capture(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    kernels = args.kernel or vm.find_kernels()
    for k in kernels:
        caps = [c for c in CAPTURES if (not args.names or c.name in args.names)
                and (c.kernels == "all" or re.search(c.kernels, k))]
        if args.list:
            print(k + ": " + " ".join(c.name for c in caps))
            continue
        if caps:
            run_kernel(k, caps, Path(args.out), args.timeout, note=args.kernel_note)
    if not args.list and (Path(args.out) / "README.md").exists():
        update_readme(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
