#!/usr/bin/env python3
"""Record a netlink dump capture for tests/data (host, as root; boots a Debian kernel under QEMU).

    .venv/bin/python tests/data/record_netlink.py --kernel 6.12.118+deb12-amd64 --name kernel \
        --raw --buffer-kb 32768 --graph rtnetlink_rcv netlink_dump netlink_recvmsg

In the guest: ``--links`` dummy links (``--ports`` of them enslaved to a bridge ``br0``), then
``Recorder(netlink=True)`` (default graph and filter) around the command, or the reader
``tests/live/nl_dump.c`` (compiled here with ``cc -O2``; asks for the next round at once) when
no ``--command`` is given. Writes
``tests/data/netlink-<kernel>/<name>/``: ``dump.txt``, ``dump.json`` (sidecar) and
``netlink.pcap.xz``.
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "live"))
import vm  # noqa: E402

GUEST = r"""
set -u
cd "$RWDIR"
ip link set lo up
i=0; while [ $i -lt {links} ]; do echo "link add ftkd$i type dummy"; i=$((i+1)); done > batch
ip -batch batch && rm -f batch
if [ {ports} -gt 0 ]; then
  ip link add br0 type bridge
  i=0; while [ $i -lt {ports} ]; do ip link set ftkd$i master br0; i=$((i+1)); done
fi
{python} - <<'PY' > record.log 2>&1
from ftracekit.recording import Recorder
rec = Recorder({graph!r}, netlink=True, output={output!r}, raw={raw!r}, command={command!r},
               buffer_kb={buffer_kb!r})
t = rec.run()
print(t.dumps().to_string())
PY
echo "exit $?" >> record.log
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--name", default="kernel")
    ap.add_argument("--links", type=int, default=200)
    ap.add_argument("--ports", type=int, default=0)
    ap.add_argument("--command", default=None, help="a shell command (default: nl_dump)")
    ap.add_argument("--raw", action="store_true",
                    help="record --raw (pages; the recorder's CPU stays off the reader's)")
    ap.add_argument("--buffer-kb", type=int, default=None)
    ap.add_argument("--graph", nargs="*", default=[],
                    help="graph roots (default: record --netlink's own graph and filter)")
    args = ap.parse_args(argv)
    kernel = args.kernel or vm.find_kernels()[0]
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rw = Path(tmp)
        if args.command is None:
            subprocess.run(["cc", "-O2", "-o", str(rw / "nl_dump"),
                            str(REPO / "tests" / "live" / "nl_dump.c")], check=True)
            command = [str(rw / "nl_dump")]
        else:
            command = ["sh", "-c", args.command + " > /dev/null"]
        script = GUEST.format(links=args.links, ports=args.ports,
                              python=REPO / ".venv" / "bin" / "python", command=command,
                              graph=list(args.graph), raw=args.raw, buffer_kb=args.buffer_kb,
                              output="dump.raw" if args.raw else "dump.txt")
        cp = vm.run_in_vm(f"cd {REPO} && " + script, kernel=kernel, rwdir=rw, timeout=1800)
        log = (rw / "record.log").read_text() if (rw / "record.log").exists() else ""
        print(log)
        made = rw / ("dump.raw" if args.raw else "dump.txt")
        if cp.returncode != 0 or not made.exists():
            print(cp.stdout[-2000:], cp.stderr[-2000:], file=sys.stderr)
            return 1
        out = HERE / f"netlink-{kernel}" / args.name
        if args.raw:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(made, out / "dump.raw")
            pcap = out / "dump.raw" / "netlink.pcap"
        else:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(made, out / "dump.txt")
            shutil.copy(rw / "dump.json", out / "dump.json")
            pcap = rw / "netlink.pcap"
        data = pcap.read_bytes()
        with lzma.open(pcap.parent / "netlink.pcap.xz", "wb") as g:
            g.write(data)
        if args.raw:
            pcap.unlink()
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
