"""The package's shape: rooms by pipeline stage, small modules, one-way imports, a clean API.

Imports are read from the source (``ast``), including imports inside functions; only those
under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import pytest

import ftracekit

PKG = Path(ftracekit.__file__).resolve().parent
MAX_LINES = 800          # hard limit; the target is ~600 (README, "How the code is laid out")

#: Stages in pipeline order. A module may import from its own stage and from earlier ones.
STAGES = ["base", "recording", "read", "calltree", "core", "net", "dataset", "show", "cli"]
STAGE_OF = {"errors": "base", "_version": "base", "_memory": "base", "_concurrent": "base",
            "_native": "base",
            "samples": "base", "recording": "recording", "read": "read", "calltree": "calltree",
            "trace": "core", "analysis": "core", "loader": "core", "net": "net",
            "dataset": "dataset", "dask": "dataset", "show": "show",
            "cli": "cli", "__main__": "cli", "__init__": "cli"}
#: The only imports against the flow, each with its reason.
UPSTREAM_OK = {
    # Recorder.stop() returns the parsed Trace: it calls load() on what it wrote (lazily).
    ("recording.recorder", "loader"),
    # Trace.tree(), Trace.plot and the Jupyter repr are accessors into show (lazily; pandas'
    # DataFrame.plot does the same).
    ("trace", "show.render"),
    ("trace", "show.plot"),
    # Trace.arg, event_fields, packets, journey and callers are accessors into net (lazily).
    ("trace", "net"),
    # Trace.netlink / dumps() are accessors into net.netlink (lazily), as Trace.plot into show.
    ("trace", "net.netlink"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """Modules of ftracekit that ``name`` imports (dotted, relative to the package)."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    if name == "__init__":
        package = []
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - (child.level - 1)]
                    target = base + (child.module.split(".") if child.module else [])
                elif child.module and child.module.split(".")[0] == "ftracekit":
                    target = child.module.split(".")[1:]
                else:
                    target = None
                if target is not None:
                    mod = ".".join(target) or "__init__"
                    for alias in child.names:     # `from . import x` may name a module
                        sub = f"{mod}.{alias.name}" if mod != "__init__" else alias.name
                        found.add(sub if sub in MODULES else mod)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "ftracekit":
                        found.add(".".join(alias.name.split(".")[1:]) or "__init__")
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return {m for m in found if m in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> str:
    return STAGE_OF[module.split(".")[0]]


def test_every_module_has_a_stage():
    assert {m for m in MODULES if m.split(".")[0] not in STAGE_OF} == set()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (limit {MAX_LINES}, target ~600): split it"


def test_no_import_cycles():
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in GRAPH:
        if v not in index:
            strong(v)
    assert cycles == []


def test_data_flows_one_way():
    against = []
    for mod, deps in GRAPH.items():
        for dep in deps:
            if STAGES.index(_stage(dep)) > STAGES.index(_stage(mod)):
                if not any(mod == a and (dep == b or dep.startswith(b + ".")) for a, b in UPSTREAM_OK):
                    against.append(f"{mod} -> {dep}")
    assert against == []


def test_the_exceptions_to_the_flow_are_still_needed():
    for a, b in UPSTREAM_OK:
        assert any(d == b or d.startswith(b + ".") for d in GRAPH[a]), (a, b)


def test_public_namespace_is_all():
    public = {n for n in dir(ftracekit) if not n.startswith("_")
              and not isinstance(getattr(ftracekit, n), types.ModuleType)}
    assert public == set(ftracekit.__all__) - {"export", "netlink", "__version__"}
    assert "export" in ftracekit.__all__ and callable(ftracekit.export.to_folded)
    for name in ("record", "Recorder", "load", "parse", "Trace"):
        assert callable(getattr(ftracekit, name))


@pytest.mark.parametrize("stage", ["read", "calltree", "recording", "show", "cli"])
def test_stage_init_exports_only_all(stage):
    mod = __import__(f"ftracekit.{stage}", fromlist=["_"])
    public = {n for n in vars(mod) if not n.startswith("_")
              and not isinstance(getattr(mod, n), types.ModuleType)}
    assert public <= set(mod.__all__) | {"annotations"}
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_every_module_imports_on_its_own():
    """No import-order dependence: each module imports first in a fresh interpreter."""
    names = [f"ftracekit.{m}" if m != "__init__" else "ftracekit" for m in MODULES
             if m != "__main__"]
    code = ("import importlib, sys\n"
            "for n in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k == 'ftracekit' or k.startswith('ftracekit.')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(n)\n")
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True,
                          cwd=PKG.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _names_imported_from(target: str) -> set[str]:
    """Names other stages import from the package ``target`` (``from ..read import x``)."""
    names: set[str] = set()
    for name, path in MODULES.items():
        if name.split(".")[0] == target:
            continue
        is_pkg = path.name == "__init__.py"
        package = [] if name == "__init__" else (name.split(".") if is_pkg else name.split(".")[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                if ".".join(base + (node.module.split(".") if node.module else [])) == target:
                    names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("stage", ["read", "calltree", "recording", "show"])
def test_stage_init_exports_what_other_stages_use(stage):
    mod = __import__(f"ftracekit.{stage}", fromlist=["_"])
    assert set(mod.__all__) == _names_imported_from(stage)
