"""Boot a real Debian kernel under QEMU (virtme-ng) and run a shell script in it.

The host kernel has no ``function_graph`` tracer, so everything that needs a real
tracer runs in a throw-away VM that shares the host's root filesystem (9p), the
checkout and the virtualenv.  Stdlib only.

API::

    find_kernels() -> list[str]          # e.g. ["6.12.117+deb12-amd64", "6.1.0-56-amd64"]
    run_in_vm(script, *, kernel=None, rwdir, timeout=900, cpus=2, memory="2G",
              extra_args=(), watchdog=None, single_thread_tcg=True) -> subprocess.CompletedProcess
        # kernel: a version from find_kernels() (default: the newest) or a path to an image
    ensure_prerequisites(kernel=None) -> str   # path of vng; raises VMError naming what is missing
    VMError                               # one-line message; .stdout/.stderr when a run timed out

Guest facts (checked on this machine):

- ``script`` runs as root under ``/bin/sh`` (``set -e`` is NOT implied).  It is written
  to a file inside ``rwdir`` and started as ``sh <that file>``, so any quoting is fine;
  the file is removed afterwards.  ``$RWDIR`` is exported in the guest (= ``rwdir``,
  an absolute path, the same path on host and guest).
- The root filesystem is the host's, read-only with throw-away overlays (/tmp, /etc,
  /var ...): write results ONLY under ``rwdir`` (it must exist on the host first).
- Use absolute paths (``/work/main/.venv/bin/python``); the guest PATH is not the host's.
- tracefs is mounted at ``/sys/kernel/tracing``; ``available_tracers`` contains
  ``function_graph`` on the Debian 6.1 and 6.12 kernels.  NOTE: Debian's 6.12 kernel is
  built without CONFIG_FUNCTION_GRAPH_RETVAL, so it has no ``funcgraph-retval`` option.
- The guest's cwd is the host cwd of the caller.
- QEMU runs TCG single-threaded by default (``-accel tcg,thread=single``): multi-threaded
  TCG froze the whole guest in ~1 of 10 function_graph enables (text patching).
- The returncode is the guest script's exit status.  If the guest never started the
  script (vng/qemu failure) a VMError is raised instead.

Boot time (measured here, TCG, 2 vCPUs, 2G, host with 2 CPUs, idle):
``run_in_vm("true")`` takes ~11-12 s with 6.1.0-56 and with 6.12.117 end to end
(boot + shutdown).  Under TCG everything in the guest is 10-50x slower than native;
several VMs at once on this 2-CPU host slow each other down further.

Command line::

    python tests/live/vm.py [--kernel V] [--rwdir DIR] [--timeout S] [--cpus N] [--memory M] -- 'shell script'
    python tests/live/vm.py --list      # kernels, newest first
    python tests/live/vm.py --check     # prerequisites

Prerequisites: apt packages ``qemu-system-x86``, ``linux-image-amd64`` (not -cloud-:
it lacks 9p), ``busybox-static`` (virtme-ng builds its initramfs from it), and pip
``virtme-ng`` in the project virtualenv.  ``--disable-kvm`` is always used: nested KVM
crashes QEMU on this machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["VMError", "find_kernels", "run_in_vm", "ensure_prerequisites", "find_vng"]

BOOT_DIR = Path("/boot")
REPO_ROOT = Path(__file__).resolve().parents[2]


class VMError(Exception):
    """The VM could not be run (missing tool/kernel, boot failure, timeout)."""

    def __init__(self, message: str, stdout: str = "", stderr: str = ""):
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


class VMBootError(VMError):
    """The VM ended before the script started: nothing of the script ran (a failed boot)."""


def _version_key(version: str):
    parts = re.split(r"(\d+)", version)
    return [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p != ""]


def find_kernels() -> list[str]:
    """Debian amd64 kernels in /boot usable by virtme-ng, newest first (no -cloud-)."""
    versions = []
    for p in BOOT_DIR.glob("vmlinuz-*-amd64"):
        v = p.name[len("vmlinuz-"):]
        if "-cloud-" in v or v.startswith("cloud-"):
            continue
        if not os.access(p, os.R_OK) or not Path("/lib/modules", v).is_dir():
            continue
        versions.append(v)
    return sorted(versions, key=_version_key, reverse=True)


def find_vng() -> str | None:
    """Path of the ``vng`` executable: next to this Python, the repo venv, or PATH."""
    candidates = [
        Path(sys.executable).parent / "vng",
        REPO_ROOT / ".venv" / "bin" / "vng",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return shutil.which("vng")


def _is_static_elf(path: Path) -> bool:
    """An ELF64 executable without a PT_INTERP program header (no dynamic loader)."""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:5] != b"\x7fELF\x02":
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _have_busybox() -> bool:
    """A statically linked busybox, which virtme-ng builds its initramfs from."""
    for name in ("busybox-static", "busybox.static", "busybox"):
        for d in ("/bin", "/usr/bin", "/sbin", "/usr/sbin"):
            if _is_static_elf(Path(d, name)):
                return True
    return False


def _missing() -> list[str]:
    missing = []
    if not shutil.which("qemu-system-x86_64"):
        missing.append("apt package qemu-system-x86 (qemu-system-x86_64 not found)")
    if not find_kernels():
        missing.append("apt package linux-image-amd64 (no /boot/vmlinuz-*-amd64 kernel)")
    if not _have_busybox():
        missing.append("apt package busybox-static (virtme-ng needs a static busybox)")
    if not find_vng():
        missing.append(f"pip package virtme-ng in {REPO_ROOT / '.venv'} (vng not found)")
    return missing


def ensure_prerequisites(kernel: str | None = None) -> str:
    """Raise VMError naming everything missing; return the vng path if all is there."""
    missing = _missing()
    if kernel is not None and "/" in kernel:
        if not Path(kernel).is_file():
            missing.append(f"kernel image {kernel}")
    elif kernel is not None and find_kernels() and not (BOOT_DIR / f"vmlinuz-{kernel}").exists():
        missing.append(f"kernel /boot/vmlinuz-{kernel} (have: {', '.join(find_kernels())})")
    if missing:
        raise VMError("missing: " + "; ".join(missing))
    return find_vng()  # type: ignore[return-value]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL vng's whole process group (vng, virtme-run, qemu) and wait for it to go."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=0.1)  # reap our direct child; others are reaped by init
        except subprocess.TimeoutExpired:
            pass


class _Terminated(BaseException):
    pass


def _trap_termination():
    """While a VM runs, turn SIGTERM/SIGHUP into an exception so the VM gets killed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    def handler(signum, frame):
        raise _Terminated(f"terminated by signal {signum}")
    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    def restore():
        for sig, h in old.items():
            signal.signal(sig, h)
    return restore


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def run_in_vm(
    script: str,
    *,
    kernel: str | None = None,
    rwdir: str | Path,
    timeout: float = 900,
    cpus: int = 2,
    memory: str = "2G",
    extra_args: Sequence[str] = (),
    watchdog: Callable[[], str | None] | None = None,
    single_thread_tcg: bool = True,
) -> subprocess.CompletedProcess:
    """Boot ``kernel`` (default: newest from find_kernels()) and run ``script`` with sh.

    ``kernel`` is a version from find_kernels() (``/boot/vmlinuz-<kernel>``) or, if it
    contains a ``/``, the path of a kernel image built with all needed drivers (9p, virtio)
    built in, e.g. by ``vng --kconfig`` + ``make bzImage``.

    Returns CompletedProcess(args, returncode=<guest script status>, stdout, stderr) with
    text output.  Raises VMError on missing prerequisites, a missing rwdir, a VM that never
    ran the script, or timeout (the whole vng/qemu process group is killed).

    ``single_thread_tcg`` (default True) runs all vCPUs in one host thread
    (``-accel tcg,thread=single``): with multi-threaded TCG (QEMU 7.2 here) the guest froze
    solid in about 1 of 10 ``echo function_graph > current_tracer`` (code patching);
    with one thread 80 enables in a row worked.

    ``watchdog``, if given, is called every 5 s while the VM runs; if it returns a string the
    VM is killed and VMError(that string) is raised (e.g. a guest heartbeat file went stale).
    """
    vng = ensure_prerequisites(kernel)
    if kernel is None:
        kernel = find_kernels()[0]
    image = Path(kernel).resolve() if "/" in kernel else BOOT_DIR / f"vmlinuz-{kernel}"
    rw = Path(rwdir).resolve()
    if not rw.is_dir():
        raise VMError(f"rwdir {rw} does not exist on the host (create it first)")

    token = uuid.uuid4().hex[:12]
    script_file = rw / f".vm-script-{token}.sh"
    marker = rw / f".vm-started-{token}"
    script_file.write_text(
        f"RWDIR={_shq(str(rw))}; export RWDIR\n"
        f": > {_shq(str(marker))}\n"
        f"{script}\n"
    )
    # the guest mounts fresh tmpfs on /tmp and /var/tmp: a checkout there is shared by name
    repo = REPO_ROOT.resolve()
    share = ["--rodir", str(repo)] if any(
        repo == Path(d) or Path(d) in repo.parents for d in ("/tmp", "/var/tmp")) else []
    cmd = [
        vng, "--run", str(image), "--force-9p", "--disable-kvm",
        "--cpus", str(cpus), "--memory", str(memory), "--rwdir", str(rw), *share,
        *(["--qemu-opts=-accel tcg,thread=single"] if single_thread_tcg else []),
        *extra_args,
        "--", f"sh {_shq(str(script_file))}",
    ]
    restore = _trap_termination()
    env = dict(os.environ)
    # vng execs virtme-run / virtme-* from its own bin directory.
    env["PATH"] = str(Path(vng).parent) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    out, err = proc.communicate(timeout=min(5.0, left) if watchdog else left)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        _kill_group(proc)
                        out, err = proc.communicate()
                        raise VMError(
                            f"VM run with kernel {kernel} timed out after {timeout:g} s (killed)", out, err
                        ) from None
                    why = watchdog() if watchdog else None
                    if why:
                        _kill_group(proc)
                        out, err = proc.communicate()
                        raise VMError(f"VM with kernel {kernel} killed by watchdog: {why}", out, err) from None
        except VMError:
            raise
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        if not marker.exists():
            raise VMBootError(
                f"VM with kernel {kernel} never started the script (vng exit {proc.returncode}): "
                f"{_last_line(err) or _last_line(out) or 'no output'}", out, err
            )
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    finally:
        restore()
        for f in (script_file, marker):
            try:
                f.unlink()
            except FileNotFoundError:
                pass


def _shq(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a shell script in a QEMU VM (virtme-ng).")
    ap.add_argument("--kernel", help="kernel version (default: newest); see --list")
    ap.add_argument("--rwdir", help="host dir writable from the guest (default: a new temp dir)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--list", action="store_true", help="list kernels, newest first")
    ap.add_argument("--check", action="store_true", help="check prerequisites")
    ap.add_argument("script", nargs="*", help="shell script (words are joined with spaces)")
    args = ap.parse_args(argv)
    try:
        if args.list:
            print("\n".join(find_kernels()))
            return 0
        if args.check:
            print("ok: vng at", ensure_prerequisites(args.kernel), "; kernels:", ", ".join(find_kernels()))
            return 0
        if not args.script:
            ap.error("no script given")
        rwdir = args.rwdir or tempfile.mkdtemp(prefix="vm-rw-")
        if args.rwdir:
            Path(rwdir).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        cp = run_in_vm(" ".join(args.script), kernel=args.kernel, rwdir=rwdir,
                       timeout=args.timeout, cpus=args.cpus, memory=args.memory)
        sys.stdout.write(cp.stdout)
        sys.stderr.write(cp.stderr)
        print(f"[vm.py: exit {cp.returncode} in {time.monotonic() - t0:.1f} s; rwdir {rwdir}]",
              file=sys.stderr)
        return cp.returncode
    except _Terminated as e:
        print(f"vm.py: {e}; VM killed", file=sys.stderr)
        return 143
    except VMError as e:
        if e.stdout:
            sys.stdout.write(e.stdout)
        if e.stderr:
            sys.stderr.write(e.stderr)
        print(f"vm.py: error: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
