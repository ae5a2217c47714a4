"""CLI sub-commands ``record`` and ``doctor`` (see :mod:`ftracekit.cli` for the dispatcher)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Sequence

__all__ = ["register"]

_RECORD_EPILOG = """\
examples:
  ftracekit record rtnetlink_rcv -- ip link show
  ftracekit record 'tcp_v4_*' -d 10 --event skb:kfree_skb -o tcp.txt
  ftracekit record netlink_dump -p 1234 --follow --depth 6      (until Ctrl-C)
  ftracekit record 'rtnl_fill_ifinfo*' --raw -o dump.raw -d 30  (busy graph: binary pages)
  ftracekit record --packets netif_receive_skb -- ping -c1 10.0.0.1  (skb events + args)
  ftracekit record --packets -d 5                (skb events alone, tracer nop)
  ftracekit record --event 'sched:sched_switch' -d 1                (any events alone)

The trace text goes to -o (default trace.txt), its metadata (settings, per-CPU buffer stats,
lost events) next to it (trace.json). With --raw, -o is a directory (default trace.raw) that
receives the ring buffer's binary pages, what decoding them needs, and the metadata
(capture.json); every ftracekit command reads that directory like a text trace. Every tracefs
setting touched is restored afterwards, also on Ctrl-C, on errors and when the command fails.
"""


def _split_command(parse: Any) -> Any:
    """Wrap a parser's parse_known_args so that everything after ``--`` is the command."""
    def parse_known_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        command: list[str] = []
        if "--" in args:
            i = args.index("--")
            args, command = args[:i], args[i + 1:]
        ns, extras = parse(args, namespace)
        ns.command_argv = command
        return ns, extras
    return parse_known_args


def _need_functions(parser: argparse.ArgumentParser, parse: Any) -> Any:
    """FUNC is optional only with --netlink, --event or --packets (a usage error, exit 2,
    otherwise)."""
    def parse_known_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        ns, extras = parse(args, namespace)
        if not ns.functions and not ns.netlink and not ns.event and not ns.packets:
            parser.error("give at least one FUNC to graph (e.g. rtnetlink_rcv), or --netlink, "
                         "or events to record alone (--event SYS:EVT, --packets)")
        return ns, extras
    return parse_known_args


def _positive(kind: type) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value
    return convert


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _split_commas(values: Sequence[str]) -> list[str]:
    return [v for item in values for v in item.split(",") if v]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "record", help="record function_graph calls live (needs root and tracefs)",
        description="Record the function_graph call trees of FUNC (names or globs) on this "
                    "kernel, then print the same summary as `ftracekit report`. Records while "
                    "COMMAND runs (after --), for -d SECONDS, or until Ctrl-C.",
        usage="%(prog)s [FUNC ...] [-o trace.txt] [-d SECONDS | -- COMMAND ...] [--packets] "
              "[--event SYS:EVT] [options]",
        epilog=_RECORD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("functions", nargs="*", metavar="FUNC",
                   help="graph functions (globs allowed); optional with --netlink; none: "
                        "record the events alone (--event, --packets) with tracer nop")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="trace text file (default trace.txt); with --raw the capture directory "
                        "(default trace.raw)")
    p.add_argument("-d", "--duration", type=_positive(float), metavar="SECONDS",
                   help="record for this many seconds (with a command: stop it then)")
    p.add_argument("-p", "--pid", type=_positive(int), action="append", default=[],
                   help="only these processes (repeatable)")
    p.add_argument("--follow", action="store_true", help="also their children (function-fork)")
    p.add_argument("--notrace", action="append", default=[], metavar="FUNC",
                   help="leave FUNC and everything it calls out (set_graph_notrace)")
    p.add_argument("--filter", action="append", default=[], metavar="FUNC",
                   help="record only these functions inside the graph (set_ftrace_filter)")
    p.add_argument("--depth", type=_non_negative_int, default=0, metavar="N",
                   help="max_graph_depth (0 = unlimited)")
    p.add_argument("--thresh", type=_non_negative_int, default=0, metavar="US",
                   help="only calls lasting at least US microseconds (tracing_thresh)")
    p.add_argument("--buffer-kb", type=_positive(int), metavar="K",
                   help="ring buffer per CPU in KiB")
    p.add_argument("--event", action="append", default=[], metavar="SYS:EVT",
                   help="also record this trace event, e.g. skb:kfree_skb or 'net:*' (repeatable)")
    p.add_argument("--packets", action="store_true",
                   help="follow packets: the skb events this kernel has, hash-ptr 0 (raw "
                        "skbaddr) and funcgraph-args where available (6.15+); without FUNC or "
                        "without function_graph, the events alone; then `ftracekit packets`")
    p.add_argument("--option", action="append", default=[], metavar="NAME",
                   help="trace option: retval, tail, noirqs, ... (funcgraph-NAME or NAME; "
                        "'no' prefix turns it off; repeatable)")
    p.add_argument("--clock", help="trace_clock (local, global, mono, ...)")
    p.add_argument("--no-stream", dest="stream", action="store_false",
                   help="read `trace` once at the end instead of streaming trace_pipe "
                        "(the ring buffer may wrap)")
    p.add_argument("--raw", action="store_true",
                   help="copy the binary ring-buffer pages (per_cpu/cpuN/trace_pipe_raw) into "
                        "a directory instead of streaming trace_pipe text: for busy graphs, "
                        "where the kernel's text output cannot keep up and events are lost")
    p.add_argument("--netlink", action="store_true",
                   help="also capture the netlink messages (nlmon device) into netlink.pcap "
                        "beside the trace; without FUNC graph what a dump needs; see "
                        "`ftracekit netlink`")
    p.add_argument("--top-level", action="store_true",
                   help="record at the top level even when a private instance is possible")
    p.add_argument("--force", action="store_true",
                   help="record even if another tracer or ftracekit is active")
    p.add_argument("--top", type=_positive(int), default=20,
                   help="functions in the summary's top table (default 20)")
    p.parse_known_args = _need_functions(p, _split_command(p.parse_known_args))  # type: ignore[method-assign]
    p.set_defaults(func=_cmd_record, command_argv=[])

    p = sub.add_parser(
        "doctor", help="what this kernel supports for recording, and why not",
        description="Check tracefs, root, tracers, function_graph, function filters, instances, "
                    "options, events, buffers and other users of tracing. Exit 0 when recording "
                    "can work, 2 otherwise.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--clean", action="store_true",
                   help="first restore what a killed ftracekit left behind")
    p.set_defaults(func=_cmd_doctor)


def _size(n_bytes: int) -> str:
    """``n_bytes`` as KiB / MiB / GiB (binary units)."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class _Progress:
    """The live 'N lines, M lost' line (raw: 'X MiB of pages, M lost') while recording until
    Ctrl-C."""

    def __init__(self, raw: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False
        self.raw = raw

    def __call__(self, count: int, lost: int) -> None:
        """``count``: lines so far, or bytes of pages for a raw capture."""
        if self.tty:
            what = f"{_size(count)} of pages" if self.raw else f"{count:,} lines"
            sys.stderr.write(f"\r  {what}, {lost:,} events lost  (Ctrl-C to stop) ")
            sys.stderr.flush()
            self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_record(args: argparse.Namespace) -> int:
    from ..recording import Recorder

    command = args.command_argv or None
    rec = Recorder(
        args.functions, output=args.output, notrace=args.notrace, filter=args.filter,
        pids=args.pid, follow=args.follow, command=command, duration_s=args.duration,
        max_depth=args.depth, thresh_us=args.thresh, buffer_kb=args.buffer_kb,
        options=_split_commas(args.option), events=_split_commas(args.event), clock=args.clock,
        stream=args.stream, raw=args.raw, instance=False if args.top_level else None,
        force=args.force, netlink=args.netlink, packets=args.packets)
    progress = None
    until_interrupt = command is None and args.duration is None
    if until_interrupt:
        what = " ".join(args.functions) or ("netlink" if args.netlink else "events")
        print(f"ftracekit: recording {what} until Ctrl-C ...", file=sys.stderr)
        progress = _Progress(raw=args.raw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trace = rec.run(progress=progress)
        finally:
            if progress is not None:
                progress.end()
            for w in caught:
                print(f"ftracekit: warning: {w.message}", file=sys.stderr)
            if rec.note and not rec.functions:
                print(f"ftracekit: note: {rec.note}", file=sys.stderr)
    meta = rec.meta
    lost = meta["lost_events"]["total"]
    if rec.raw:
        amount = f"{meta['pages']:,} pages, {_size(meta['bytes'])}"
        where = f"{rec.output}/ (raw capture)"
    else:
        amount = f"{meta['lines']:,} lines"
        where = str(rec.output)
    print(f"ftracekit: wrote {where} ({amount} in {meta['duration_s']:.1f} s, {lost:,} events "
          f"lost, {meta['mode']}) and its metadata", file=sys.stderr)
    if rec.netlink:
        nl = meta.get("netlink") or {}
        print(f"ftracekit: wrote {rec.pcap_path} ({nl.get('packets', 0):,} netlink packets, "
              f"{nl.get('drops', 0):,} dropped)", file=sys.stderr)
    if rec.returncode:
        print(f"ftracekit: note: the command exited with status {rec.returncode}",
              file=sys.stderr)
    if rec.events_only or rec.packets:
        from .net import print_packets_report

        print_packets_report(trace, top=args.top)
    else:
        from .analyse import print_report

        print_report(trace, top=args.top)
    if rec.interrupted and not until_interrupt:
        return 130
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ..recording import diagnose
    from ..recording import recover_stale

    if args.clean:
        for msg in recover_stale():
            print(f"ftracekit: {msg}", file=sys.stderr)
    diag = diagnose()
    if args.json:
        print(json.dumps(diag.as_dict(), indent=2))
    else:
        print(diag.format())
    return 0 if diag.ok else 2

