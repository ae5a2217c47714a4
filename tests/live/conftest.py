"""The real-kernel suite: runs INSIDE a VM (see tests/test_live_vm.py, which boots it).

Collected only when FTRACEKIT_LIVE=1 (the host's `pytest tests` would otherwise run them
against a kernel without function_graph). Everything here touches the real tracefs; the
guest is a throw-away VM, but each test still checks that tracefs is exactly as before.

Python start-up under TCG costs 30-70 s (pandas), so the suite runs in ONE pytest process and
runs the CLI in forked children (``run_cli``) instead of new interpreters.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

LIVE = os.environ.get("FTRACEKIT_LIVE") == "1"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not LIVE and collection_path.name.startswith("test_"):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "heavy: slow under emulation (a new interpreter, 10^4+ line traces); runs "
                   "only with FTRACEKIT_LIVE_HEAVY=1 (the host sets it for one kernel)")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if os.environ.get("FTRACEKIT_LIVE_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="heavy: run on the primary kernel only (FTRACEKIT_LIVE_HEAVY=1)")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's tmp_path (its trace, pcap, capture) is copied to
    ``$FTRACEKIT_LIVE_KEEP/<test>/`` (the host's VM directory): the guest's /tmp is gone
    when the VM stops, and a flaky failure is only understood from its data."""
    report = yield
    keep = os.environ.get("FTRACEKIT_LIVE_KEEP")
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if keep and report.failed and call.when == "call" and tmp is not None:
        import shutil

        dest = Path(keep) / re.sub(r"[^\w.\-\[\]]", "_", item.name)
        try:
            shutil.copytree(tmp, dest, dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names
                                                     if (Path(d) / n).is_file()
                                                     and (Path(d) / n).stat().st_size > 200e6])
        except OSError as err:              # (never hide the failure itself)
            print(f"could not keep {tmp}: {err}", file=sys.stderr)
    return report


# ------------------------------------------------------------------------------- tracefs
@pytest.fixture(scope="session")
def tfs():
    from ftracekit.errors import FtracekitError
    from ftracekit.recording.tracefs import TraceFS

    if os.geteuid() != 0:
        pytest.skip("live tests need root")
    try:
        t = TraceFS()
    except FtracekitError as err:
        pytest.skip(f"no tracefs: {err}")
    if "function_graph" not in t.read("available_tracers").split():
        pytest.skip("this kernel has no function_graph")
    return t


def kernel_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@pytest.fixture(scope="session")
def instance_capable(tfs) -> bool:
    """Whether function_graph can run in an instance here (probed, and checked against the
    kernel version the docs give: 6.11)."""
    name = "live-probe"
    os.mkdir(tfs.path(f"instances/{name}"))
    try:
        ok = "function_graph" in tfs.path(f"instances/{name}/available_tracers").read_text().split()
    finally:
        os.rmdir(tfs.path(f"instances/{name}"))
    assert ok == (kernel_version() >= (6, 11)), (ok, os.uname().release)
    return ok


@pytest.fixture(params=["top-level", "instance"])
def mode(request, instance_capable) -> str:
    """Where a recording goes; "instance" only where the kernel allows it."""
    if request.param == "instance" and not instance_capable:
        pytest.skip("function_graph in instances needs Linux 6.11+")
    return request.param


def recorder_kw(mode: str) -> dict:
    """Recorder keywords that force ``mode``."""
    return {"instance": mode == "instance"}


def tracefs_state(tfs) -> dict[str, str]:
    """Raw text of every control file a recording may touch — listed here independently of
    the recorder: the top level's tracer, switches, filters, pids, depth, threshold, buffer
    sizes, clock, ALL options, the enables of every event in the systems the tests use — plus
    the list of instances. Buffer sizes are compared as numbers: "7 (expanded: 1408)" before
    the first use reads "1410" afterwards whatever anyone does (the kernel rounds to pages)."""
    names = ["current_tracer", "tracing_on", "set_graph_function", "set_graph_notrace",
             "set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_pid",
             "set_ftrace_notrace_pid", "set_event", "set_event_pid", "set_event_notrace_pid",
             "max_graph_depth", "tracing_thresh", "trace_clock", "buffer_percent"]
    names += [f"options/{n}" for n in sorted(os.listdir(tfs.path("options")))]
    for system in ("skb", "net", "tcp", "sock"):
        d = tfs.path(f"events/{system}")
        if d.is_dir():
            names.append(f"events/{system}/enable")
            names += [f"events/{system}/{e}/enable" for e in sorted(os.listdir(d))
                      if (d / e / "enable").exists()]
    state = {}
    for n in names:
        p = tfs.path(n)
        if p.exists():
            state[n] = p.read_text()
    # Before its first use the ring buffer is minimal: buffer_size_kb reads "7 (expanded: 1408)"
    # and per_cpu/cpuN/buffer_size_kb "7"; any use of tracing expands it for good (1410 KiB,
    # page-rounded), so an expanded buffer of the promised size counts as unchanged.
    m = re.match(r"(\d+) \(expanded: (\d+)\)", tfs.path("buffer_size_kb").read_text())
    unexpanded = {m.group(1): m.group(2)} if m else {}
    for n in ["buffer_size_kb"] + [f"per_cpu/cpu{c}/buffer_size_kb" for c in tfs.cpus()]:
        text = tfs.path(n).read_text().strip()
        kb = int(re.match(r"\d+(?: \(expanded: (\d+)\))?", text).group(1)
                 or unexpanded.get(text, text))
        state[n] = f"~{round(kb / 16)}"      # the same size to within the page rounding
    state["<instances>"] = " ".join(sorted(os.listdir(tfs.path("instances"))))
    return state


def diff(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple]:
    return {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)}


@pytest.fixture(scope="session", autouse=True)
def foreign_state(request):
    """Before the suite: leave tracefs the way another user might have (non-default values in
    files the recorder writes), so 'restored' means 'put back', not 'reset to defaults'. After
    the suite: no ftracekit instance and no leftover may remain."""
    if not LIVE:
        yield
        return
    t = request.getfixturevalue("tfs")
    t.write("trace_clock", "global")
    t.write("options/funcgraph-tail", "1")
    t.write("options/funcgraph-proc", "0")
    t.write("set_ftrace_notrace", "schedule")
    t.write("max_graph_depth", "0")
    yield
    leftovers = [n for n in os.listdir(t.path("instances")) if n.startswith("ftracekit-")]
    assert leftovers == []
    assert t.read("current_tracer").strip() == "nop"
    assert t.read("set_ftrace_notrace").split() == ["schedule"]
    assert t.read_value("trace_clock") == "global"


@pytest.fixture
def unchanged(tfs):
    """Asserts, after the test, that tracefs is exactly as before it."""
    before = tracefs_state(tfs)
    yield before
    assert diff(before, tracefs_state(tfs)) == {}


# ------------------------------------------------------------------------------- the CLI
@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    pid: int


def run_cli(argv: list[str], *, tmp: Path, during: Callable[[int], None] | None = None,
            timeout: float = 300) -> CliResult:
    """``ftracekit ARGV`` in a forked child (no new interpreter: that costs a minute under
    TCG). ``during(pid)`` runs in the parent while the child runs (e.g. to send a signal)."""
    from ftracekit import cli

    tmp.mkdir(parents=True, exist_ok=True)
    out, err = tmp / f"cli-{time.monotonic_ns()}.out", tmp / f"cli-{time.monotonic_ns()}.err"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            fo = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            fe = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fo, 1)
            os.dup2(fe, 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    try:
        if during is not None:
            during(pid)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"ftracekit {argv} did not finish in {timeout} s")
            time.sleep(0.05)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    return CliResult(os.waitstatus_to_exitcode(status), out.read_text(), err.read_text(), pid)


def wait_recording(output: Path, timeout: float = 120) -> None:
    """Wait until a recording writing to ``output`` has started (its header is written right
    before tracing_on=1)."""
    deadline = time.monotonic() + timeout
    while not (output.exists() and output.stat().st_size > 0):
        if time.monotonic() > deadline:
            raise AssertionError(f"the recording to {output} did not start in {timeout} s")
        time.sleep(0.1)
    time.sleep(1.0)


@pytest.fixture
def cli(tmp_path):
    def run(*argv: str, during: Callable[[int], None] | None = None, timeout: float = 300):
        return run_cli(list(argv), tmp=tmp_path / "cli", during=during, timeout=timeout)
    return run
