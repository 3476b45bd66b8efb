"""The package's layers, read from its source with ast: imports only go down, and no import cycle.

Every import counts, also one inside a function (imported lazily to keep `--help` quick, it is still a
dependency); only imports under `if TYPE_CHECKING:` are left out of the cycle check (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import i2ptorrent

ROOT = Path(i2ptorrent.__file__).parent

# Higher imports lower (or its own layer), never the other way. cli.py is the top: nothing imports it.
LAYERS = {
    "__main__": 9, "cli": 8,
    "commands": 7,
    "daemon": 6,
    "app": 5, "config": 5,
    "bridge": 4,
    "client": 3,
    "announce": 2,
    "engine": 1, "tracker": 1, "transport": 1, "wire": 1,
    "bucket": 0, "loopback": 0, "clocks": 0, "private_files": 0, "supervisor": 0, "__init__": 0,
}
LOWER = {"engine", "tracker", "transport", "wire"}
UPPER = {"config", "cli", "app", "client", "announce", "daemon", "commands", "bridge"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def top(module: str) -> str:
    """i2ptorrent.engine.swarm -> engine; i2ptorrent -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def known(name: str, modules: set[str]) -> str | None:
    """The package module `name` refers to (a name imported from a module resolves to that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(source: str, module: str, is_package: bool, modules: set[str]) -> dict[str, bool]:
    """{imported package module: True if it runs (not only under TYPE_CHECKING)}."""
    tree = ast.parse(source)
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                typing_only.update(id(n) for n in ast.walk(inner))
    found: dict[str, bool] = {}
    base = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
        for name in names:
            hit = known(name, modules)
            if hit is not None and hit != module:
                found[hit] = found.get(hit, False) or id(node) not in typing_only
    return found


def import_graph(extra: dict[str, str] | None = None) -> dict[str, dict[str, bool]]:
    """module -> {imported module: runs}; `extra` appends source lines to named modules (for the self-test)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        source = path.read_text() + "\n" + (extra or {}).get(name, "")
        graph[name] = imports_of(source, name, path.name == "__init__.py", modules)
    return graph


def layer_violations(graph: dict[str, dict[str, bool]]) -> list[str]:
    bad = []
    for module, deps in graph.items():
        here = top(module)
        for dep in deps:
            there = top(dep)
            if here in LOWER and there in UPPER:
                bad.append(f"{module} imports {dep}: engine/, tracker/, transport/, wire/ know no upper layer")
            elif LAYERS[there] > LAYERS[here]:
                bad.append(f"{module} imports {dep}: {there} is above {here}")
            elif there == "cli" and here != "__main__":
                bad.append(f"{module} imports {dep}: nothing imports the CLI")
    return sorted(bad)


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Import cycles among the imports that run (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, runs in graph[v].items():
            if not runs:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    assert {top(m) for m in import_graph()} <= set(LAYERS)


def test_imports_only_go_down() -> None:
    assert layer_violations(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_catch_what_they_are_for() -> None:
    """The same checks on the package with a bad import added: each is reported."""
    graph = import_graph({"i2ptorrent.engine.peer": "import i2ptorrent.cli",
                          "i2ptorrent.engine.ratelimit": "from ..config import Config",
                          "i2ptorrent.app.output": "def f():\n    from i2ptorrent.daemon import remote",
                          "i2ptorrent.daemon.protocol": "from i2ptorrent.daemon.remote import request"})
    bad = layer_violations(graph)
    assert any(v.startswith("i2ptorrent.engine.peer imports i2ptorrent.cli") for v in bad), bad
    assert any(v.startswith("i2ptorrent.engine.ratelimit imports i2ptorrent.config") for v in bad), bad
    assert any(v.startswith("i2ptorrent.app.output imports i2ptorrent.daemon.remote") for v in bad), bad
    loops = cycles(graph)
    assert any({"i2ptorrent.config", "i2ptorrent.engine.ratelimit"} <= set(c) for c in loops), loops
    assert any({"i2ptorrent.daemon.protocol", "i2ptorrent.daemon.remote"} <= set(c) for c in loops), loops
