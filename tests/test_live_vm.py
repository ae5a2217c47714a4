"""Host side of the real-kernel suite: boot each installed Debian kernel once under QEMU
(virtme-ng, tests/live/vm.py) and run ``pytest tests/live`` inside it.

Fails with the guest's output when the guest suite fails, errors, or runs fewer tests than
required here (a kernel that allows function_graph in instances, 6.11+, must also pass the
"[instance]" variants). Missing prerequisites (qemu, a kernel, virtme-ng) fail with the list of
what to install; set FTRACEKIT_SKIP_LIVE=1 to skip on purpose.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from live.vm import VMError, find_kernels, run_in_vm

REPO = Path(__file__).resolve().parents[1]

#: Tests that must PASS on every kernel ("[mode]" variants listed separately below).
REQUIRED = {
    "test_record_rtnetlink_rcv_around_ip_link_show",
    "test_event_attached_to_its_call",
    "test_unknown_event_changes_nothing",
    "test_another_ftracekit_is_refused",
    "test_doctor_says_recording_works",
}
#: Slow under emulation (marked "heavy"): must pass on the primary (newest) kernel only.
HEAVY = {
    "test_python_m_ftracekit_record",
    "test_netlink_dump_with_200_dummy_links",
    "test_long_recording_streams_without_loss",
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
}

pytestmark = pytest.mark.skipif(os.environ.get("FTRACEKIT_SKIP_LIVE") == "1",
                                reason="FTRACEKIT_SKIP_LIVE=1")


def _kernels() -> list[str]:
    return find_kernels() or ["<none installed>"]


def _primary(kernel: str) -> bool:
    """The newest kernel runs the heavy tests too (one VM boot per kernel either way)."""
    return kernel == _kernels()[0]


def _allows_instances(kernel: str) -> bool:
    m = re.match(r"(\d+)\.(\d+)", kernel)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (6, 11)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _results(junit: Path) -> dict[str, str]:
    """test id (name[param]) → passed / failed / error / skipped."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
        out[case.get("name", "?")] = status
    return out


@pytest.mark.parametrize("kernel", _kernels())
def test_live_suite_in_vm(kernel: str, tmp_path: Path, record_property) -> None:
    if kernel == "<none installed>":
        pytest.fail("no Debian kernel in /boot for the VM: apt-get install linux-image-amd64 "
                    "qemu-system-x86 busybox-static (or FTRACEKIT_SKIP_LIVE=1)")
    junit, log, figures = tmp_path / "junit.xml", tmp_path / "guest.log", tmp_path / "figures.json"
    script = (
        f"cd '{REPO}' && FTRACEKIT_LIVE=1 FTRACEKIT_LIVE_HEAVY={int(_primary(kernel))} "
        f"FTRACEKIT_LIVE_FIGURES='{figures}' '{_python()}' -m pytest tests/live -v "
        # plugins this suite does not use cost seconds to import under emulation
        f"-p no:cacheprovider -p no:hypothesispytest -p no:platformdirs -rs --durations=10 "
        f"-o faulthandler_timeout=300 "
        f"--junitxml='{junit}' > '{log}' 2>&1"
    )
    t0 = time.monotonic()
    try:
        cp = run_in_vm(script, kernel=kernel, rwdir=tmp_path, timeout=900)
    except VMError as err:
        guest = log.read_text(errors="replace")[-6000:] if log.exists() else ""
        pytest.fail(f"VM ({kernel}): {err}\n{guest}\n{err.stdout[-2000:]}\n{err.stderr[-2000:]}")
    elapsed = time.monotonic() - t0
    guest = log.read_text(errors="replace") if log.exists() else cp.stdout + cp.stderr
    results = _results(junit) if junit.exists() else {}
    passed = {name for name, status in results.items() if status == "passed"}

    required = set(REQUIRED) | {f"{t}[top-level]" for t in PER_MODE}
    if _primary(kernel):
        required |= HEAVY
    if _allows_instances(kernel):
        required |= {f"{t}[instance]" for t in PER_MODE}
    missing = sorted(required - passed)
    bad = sorted(n for n, s in results.items() if s in ("failed", "error"))

    figs = json.loads(figures.read_text()) if figures.exists() else {}
    for key, value in figs.items():
        record_property(key, json.dumps(value))
    print(f"\n[{kernel}] guest suite: {len(passed)} passed, {len(bad)} failed, "
          f"{sum(s == 'skipped' for s in results.values())} skipped in {elapsed:.0f} s "
          f"(exit {cp.returncode}); figures: {json.dumps(figs, sort_keys=True)}")

    assert cp.returncode == 0 and not bad and not missing, (
        f"guest suite on {kernel} (exit {cp.returncode}): failed {bad}; required but not passed "
        f"{missing}\n--- guest output ---\n{guest[-12000:]}")
