"""Host side of the real-kernel suite: boot Debian kernels under QEMU (virtme-ng,
tests/live/vm.py) and run ``pytest tests/live`` inside each, all VMs at the same time.

Which kernels: the oldest and the newest installed (e.g. 6.1, where function_graph must use the
top level, and 6.12+/6.17, where it runs in a private instance); FTRACEKIT_LIVE_KERNELS=all or
a comma-separated list overrides. The newest also runs the "heavy" tests (a new interpreter,
200 links, the 3 × 10 s long recording: trace_pipe text, raw pages, `trace` read once).

Each VM has two vCPUs (FTRACEKIT_LIVE_CPUS overrides) emulated by one host thread (vm.py's
single-threaded TCG): with multi-threaded TCG, enabling function_graph (int3 live patching of
~50k call sites) sometimes panicked the 6.12 guest ("Oops: int3" in an unrelated task) or froze
it. A guest whose log stops growing for FTRACEKIT_LIVE_STALL_S (default 600 s) is killed.

A kernel's test fails with the guest's output when the guest suite fails, errors, or does not
pass every test required here (a kernel that allows function_graph in instances, 6.11+, must
also pass the "[instance]" variants). Missing prerequisites (qemu, a kernel, virtme-ng) fail
with what to install; FTRACEKIT_SKIP_LIVE=1 skips on purpose.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from live.vm import VMBootError, VMError, find_kernels, run_in_vm

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = float(os.environ.get("FTRACEKIT_LIVE_TIMEOUT", "1500"))
CPUS = int(os.environ.get("FTRACEKIT_LIVE_CPUS", "2"))
STALL_S = float(os.environ.get("FTRACEKIT_LIVE_STALL_S", "600"))
BOOT_ATTEMPTS = 3       # boots of a VM that ended before its script started (see _run_guest)

#: Tests that must PASS on every kernel ("[mode]" variants listed separately below).
REQUIRED = {
    "test_record_rtnetlink_rcv_around_ip_link_show",
    "test_event_attached_to_its_call",
    "test_unknown_event_changes_nothing",
    "test_another_ftracekit_is_refused",
    "test_doctor_says_recording_works",
    # netlink capture (test_record_netlink_live.py): the nlmon device never outlives a recording
    "test_failing_command_leaves_no_device",
    "test_sigint_leaves_no_device",
    "test_sigterm_leaves_no_device",
    "test_sigkill_leaves_a_device_the_next_run_removes",
}
#: Slow under emulation (marked "heavy"): must pass on the newest kernel only.
HEAVY = {
    "test_python_m_ftracekit_record",
    "test_netlink_dump_with_200_dummy_links",
    "test_long_recording_streams_without_loss",
    "test_record_netlink_ip_link_show",
    "test_slow_reader_is_reader_bound",
    "test_tcpdump_capture_reads_as_ours",
    "test_no_cap_net_admin_refuses_before_touching_anything",
}
#: Run once per mode: "[top-level]" everywhere, "[instance]" where the kernel allows it.
PER_MODE = {
    "test_restored_after_normal_run",
    "test_restored_after_failing_command",
    "test_restored_after_exception_in_with",
    "test_restored_after_sigint_until_ctrl_c",
    "test_restored_after_sigterm_with_command",
    "test_unknown_function_suggests_and_changes_nothing",
    "test_busy_tracer_is_refused",
    "test_sigkill_leaves_state_that_the_next_run_restores",
    "test_record_raw_rtnetlink_rcv_around_ip_link_show",
}

pytestmark = pytest.mark.skipif(os.environ.get("FTRACEKIT_SKIP_LIVE") == "1",
                                reason="FTRACEKIT_SKIP_LIVE=1")


def _version(kernel: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", kernel)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _selected_kernels() -> list[str]:
    """The kernels that run the whole suite, newest first: the oldest and the newest installed
    kernel before 6.15 (6.1: function_graph at the top level; 6.12: in a private instance)."""
    installed = find_kernels()
    wanted = os.environ.get("FTRACEKIT_LIVE_KERNELS", "").strip()
    if wanted == "all":
        return installed
    if wanted:
        return [k.strip() for k in wanted.split(",") if k.strip()]
    older = [k for k in installed if _version(k) < (6, 15)] or installed
    return list(dict.fromkeys(older[:1] + older[-1:]))


def _args_kernel() -> str | None:
    """The newest installed 6.15+ kernel (funcgraph-args): it runs the packet suite
    (tests/live/test_packets_live.py: calls with skb= arguments joined to skb events)."""
    if os.environ.get("FTRACEKIT_LIVE_KERNELS", "").strip():
        return None
    newer = [k for k in find_kernels() if _version(k) >= (6, 15)]
    return newer[0] if newer else None


KERNELS = _selected_kernels()
ARGS_KERNEL = _args_kernel()


def _allows_instances(kernel: str) -> bool:
    m = re.match(r"(\d+)\.(\d+)", kernel)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (6, 11)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class GuestRun:
    kernel: str
    rwdir: Path
    returncode: int | None = None
    error: str = ""
    elapsed_s: float = 0.0
    boot_failures: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        p = self.rwdir / "guest.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def results(self) -> dict[str, str]:
        """test id (name[param]) → passed / failed / error / skipped."""
        junit = self.rwdir / "junit.xml"
        if not junit.exists():
            return {}
        out = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            status = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    status = {"failure": "failed"}.get(child.tag, child.tag)
            out[case.get("name", "?")] = status
        return out

    def failures(self, limit: int = 2500) -> str:
        """The assertion lines (``E ...``) of every failed test, from junit.xml: a summary
        that shows only the head and tail of a long message still shows why."""
        junit = self.rwdir / "junit.xml"
        if not junit.exists():
            return ""
        out = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            for child in case:
                if child.tag in ("failure", "error"):
                    text = (child.text or child.get("message", "")).splitlines()
                    why = [ln for ln in text if ln.startswith("E ")] or text[-20:]
                    where = [ln for ln in text if ln.startswith(("tests/", "ftracekit/"))][-3:]
                    body = "\n".join(why + where)
                    out.append(f"--- {case.get('name')}:\n{body[-limit:]}")
        return "\n".join(out)

    def figures(self) -> dict:
        p = self.rwdir / "figures.json"
        return json.loads(p.read_text()) if p.exists() else {}


def _run_guest(run: GuestRun, heavy: bool, tests: str = "tests/live") -> GuestRun:
    log, junit, figures = run.rwdir / "guest.log", run.rwdir / "junit.xml", run.rwdir / "figures.json"
    script = (
        f"cd '{REPO}' && FTRACEKIT_LIVE=1 FTRACEKIT_LIVE_HEAVY={int(heavy)} "
        f"FTRACEKIT_LIVE_FIGURES='{figures}' FTRACEKIT_LIVE_KEEP='{run.rwdir / 'kept'}' "
        f"'{_python()}' -m pytest {tests} -v "
        # plugins this suite does not use cost seconds to import under emulation
        f"-p no:cacheprovider -p no:hypothesispytest -p no:platformdirs -rs --durations=10 "
        f"-o faulthandler_timeout=300 --junitxml='{junit}' > '{log}' 2>&1"
    )
    last = {"size": -1, "at": time.monotonic()}

    def stalled() -> str | None:
        size = log.stat().st_size if log.exists() else 0
        if size != last["size"]:
            last.update(size=size, at=time.monotonic())
        elif time.monotonic() - last["at"] > STALL_S:
            return f"guest made no progress for {STALL_S:g} s (log stopped growing)"
        return None

    t0 = time.monotonic()
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        try:
            cp = run_in_vm(script, kernel=run.kernel, rwdir=run.rwdir, timeout=TIMEOUT_S,
                           cpus=CPUS, watchdog=stalled)
            run.returncode = cp.returncode
            if not log.exists():
                run.error = f"no guest log; vng said:\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
        except VMBootError as err:
            # (an emulated boot fails now and then before the script starts: nothing of the
            # suite ran, so it is booted again; the failures are kept and reported)
            run.boot_failures.append(f"attempt {attempt}: {err}")
            if attempt < BOOT_ATTEMPTS:
                last.update(size=-1, at=time.monotonic())
                continue
            run.error = "; ".join(run.boot_failures) + f"\n{err.stdout[-3000:]}\n{err.stderr[-3000:]}"
        except VMError as err:
            run.error = f"{err}\n{err.stdout[-3000:]}\n{err.stderr[-3000:]}"
        break
    run.elapsed_s = time.monotonic() - t0
    return run


def _warn_boot_failures(run: GuestRun) -> None:
    if run.boot_failures:
        warnings.warn(f"VM {run.kernel}: booted again after {len(run.boot_failures)} failed "
                      "boot(s): " + "; ".join(run.boot_failures), stacklevel=2)


@pytest.fixture(scope="module")
def guest_runs(tmp_path_factory) -> dict[str, GuestRun]:
    """All selected kernels' VMs, booted at the same time."""
    runs = {k: GuestRun(k, tmp_path_factory.mktemp(f"vm-{k}")) for k in KERNELS}
    with ThreadPoolExecutor(max_workers=len(runs) or 1) as pool:
        list(pool.map(lambda k: _run_guest(runs[k], heavy=k == KERNELS[0]), runs))
    return runs


def test_packet_suite_on_a_funcgraph_args_kernel(tmp_path_factory) -> None:
    """Issue 11: on a 6.15+ kernel (``./run test`` installs one from trixie-backports), calls
    with ``skb=`` arguments and skb events of the same packets are joined on the raw address."""
    if ARGS_KERNEL is None:
        pytest.skip("no 6.15+ kernel installed (./run test installs one), or "
                    "FTRACEKIT_LIVE_KERNELS chose the kernels")
    run = _run_guest(GuestRun(ARGS_KERNEL, tmp_path_factory.mktemp("vm-args")), heavy=False,
                     tests="tests/live/test_packets_live.py")
    _warn_boot_failures(run)
    assert not run.error, f"VM ({ARGS_KERNEL}): {run.error}\n--- guest output ---\n{run.log[-8000:]}"
    results = run.results()
    assert results.get("test_packets_calls_and_events_joined") == "passed", (
        f"{ARGS_KERNEL}: {results}\n{run.failures()}\n--- guest output ---\n{run.log[-8000:]}")


@pytest.mark.parametrize("kernel", KERNELS or ["<none installed>"])
def test_live_suite_in_vm(kernel: str, guest_runs, record_property) -> None:
    if kernel == "<none installed>":
        pytest.fail("no Debian kernel in /boot for the VM: apt-get install linux-image-amd64 "
                    "qemu-system-x86 busybox-static (or FTRACEKIT_SKIP_LIVE=1)")
    run = guest_runs[kernel]
    guest = run.log
    _warn_boot_failures(run)
    assert not run.error, f"VM ({kernel}): {run.error}\n--- guest output ---\n{guest[-8000:]}"
    results = run.results()
    passed = {name for name, status in results.items() if status == "passed"}

    required = set(REQUIRED) | {f"{t}[top-level]" for t in PER_MODE}
    if kernel == KERNELS[0]:
        required |= HEAVY
    if _allows_instances(kernel):
        required |= {f"{t}[instance]" for t in PER_MODE}
    missing = sorted(required - passed)
    bad = sorted(n for n, s in results.items() if s in ("failed", "error"))

    figs = run.figures()
    for key, value in figs.items():
        record_property(key, json.dumps(value))
    print(f"\n[{kernel}] guest suite: {len(passed)} passed, {len(bad)} failed, "
          f"{sum(s == 'skipped' for s in results.values())} skipped; VM {run.elapsed_s:.0f} s "
          f"(exit {run.returncode}); figures: {json.dumps(figs, sort_keys=True)}")

    assert run.returncode == 0 and not bad and not missing, (
        f"guest suite on {kernel} (exit {run.returncode}): failed {bad}; required but not "
        f"passed {missing}\n{run.failures()}\n--- guest output ---\n{guest[-8000:]}")


def test_a_boot_that_never_started_the_script_is_booted_again(tmp_path, monkeypatch) -> None:
    """A failed emulated boot (the VM ended before the script started) is retried, up to
    BOOT_ATTEMPTS boots; a run whose script did start is never repeated."""
    import subprocess

    calls = []

    def fake(script, *, kernel, rwdir, **kw):
        calls.append(kernel)
        if len(calls) < 3:
            raise VMBootError(f"VM with kernel {kernel} never started the script (vng exit 255)")
        (Path(rwdir) / "guest.log").write_text("ok\n")
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(sys.modules[__name__], "run_in_vm", fake)
    run = _run_guest(GuestRun("k1", tmp_path), heavy=False)
    assert len(calls) == 3 and not run.error and run.returncode == 0
    assert len(run.boot_failures) == 2

    calls.clear()
    monkeypatch.setattr(sys.modules[__name__], "BOOT_ATTEMPTS", 2)
    run = _run_guest(GuestRun("k2", tmp_path / "x"), heavy=False)
    assert len(calls) == 2 and "never started" in run.error and len(run.boot_failures) == 2

    def fails_later(script, *, kernel, rwdir, **kw):
        calls.append(kernel)
        raise VMError("VM run with kernel k3 timed out after 1 s (killed)")

    calls.clear()
    monkeypatch.setattr(sys.modules[__name__], "run_in_vm", fails_later)
    run = _run_guest(GuestRun("k3", tmp_path), heavy=False)
    assert len(calls) == 1 and "timed out" in run.error and not run.boot_failures
