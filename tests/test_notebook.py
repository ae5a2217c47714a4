"""notebooks/rtnetlink_stall.ipynb runs end to end (nbclient) and is committed without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "rtnetlink_stall.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], "strip the outputs before committing"
            assert cell.get("execution_count") is None


def test_notebook_is_self_contained():
    """Issue 10 item 13: no import of the examples' private helpers, and the recording
    command it shows is one `ftracekit record` accepts (FUNCs are positional)."""
    nb = json.loads(NOTEBOOK.read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "_common" not in code and "examples" not in code and "sys.path" not in code
    text = "".join("".join(c["source"]) for c in nb["cells"])
    cmd = [ln for ln in text.splitlines() if ln.startswith("sudo ftracekit record")]
    assert cmd == ["sudo ftracekit record rtnetlink_rcv netlink_recvmsg -o rtnl.txt -- ip -d "
                   "link show"]
    from ftracekit.cli.main import build_parser

    args = build_parser().parse_args(cmd[0].split()[2:])
    assert args.functions == ["rtnetlink_rcv", "netlink_recvmsg"]
    assert args.output == "rtnl.txt" and args.command_argv == ["ip", "-d", "link", "show"]


def test_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel (a child process) imports this checkout's ftracekit, as the tests do
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import ftracekit; ftracekit.__file__"))
    # run from the repository root, as a user opening it from there would
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    where = nb.cells.pop(0).outputs[0]["data"]["text/plain"]
    assert where.strip("'") == str(REPO / "ftracekit" / "__init__.py")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5          # time, hist (one figure, two axes), timeline, flame, top
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("ftracekit.Trace" in h for h in html)          # Trace._repr_html_
    assert any("<details" in h for h in html)                 # CallTree._repr_html_
    assert any("netlink_dump" in h for h in html)             # the tables
    text = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "'clock'" in text and "'slices'" in text           # the export summary
    # the executed copy can be inspected when the test fails
    nbformat.write(nb, tmp_path / "executed.ipynb")


def test_trace_html_is_compact_and_escaped():
    import ftracekit

    data = Path(__file__).resolve().parent / "data" / "shared"
    t = ftracekit.load(data / "rtnl_trace_pipe.txt")
    h = t._repr_html_()
    assert "3,715 calls · 218 functions · 2 tasks · 1 CPU · 0 events · no timestamps" in h
    assert h.count("<table") == 2 and "slowest root calls" in h and "top functions by self time</b> (µs; 10 of 218)" in h
    assert "5,404.684" in h                    # the slowest root call, µs (line 2356: 5404.684 us)
    assert "⚠" not in h                        # nothing lost or skipped
    thr = ftracekit.load(data / "rtnl_thresh50.txt")
    assert "⚠ 0 calls without exit, 53 without entry" in thr._repr_html_()
    odd = ftracekit.parse(" 0)   1.000 us    |  a<b>();\n")
    assert "a&lt;b&gt;" in odd._repr_html_()
    tree = t.tree(int(t.slowest("rtnetlink_rcv", 1).index[0]), min_us=100)._repr_html_()
    assert tree.startswith("<div") and "<details" in tree and "rtnetlink_rcv" in tree
