"""The layers hold: nothing below gdbext/model or gdbext/render imports gdb, so the model and
the output run (and are tested) without gdb, on bytes."""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "gdbext")
GDB_FREE = ("model", "render", "views")


def _modules():
    for layer in GDB_FREE:
        for dirpath, _, names in os.walk(os.path.join(ROOT, layer)):
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def _imports(path: str):
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or "")


@pytest.mark.parametrize("path", list(_modules()))
def test_no_gdb_below_the_edge(path):
    bad = [m for m in _imports(path)
           if m == "gdb" or m.startswith("gdb.") or "inferior" in m.split(".") or "commands" in m.split(".")]
    assert not bad, f"gdbext/{path} imports {bad}: the model and the views must not reach gdb"


def test_the_layers_are_found():
    assert sum(1 for _ in _modules()) > 20


# ---- gdbext/inferior: no import cycle hidden inside a function ------------------------------

INFERIOR = os.path.join(ROOT, "inferior")


def _inferior_modules():
    """'inferior.heap', 'inferior.brkwatch.running', 'inferior.brkwatch' (its __init__) -> path."""
    out = {}
    for dirpath, _, names in os.walk(INFERIOR):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[: -len(".py")]
                parts = rel.split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                out[".".join(parts)] = os.path.join(dirpath, name)
    return out


def _sibling_imports(module: str, path: str, known):
    """(top-level imports, [(import inside a function, line)]) of `module` among `known`."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    top, inner = set(), []

    def targets(node):
        if isinstance(node, ast.Import):
            names = [a.name[len("gdbext."):] for a in node.names if a.name.startswith("gdbext.")]
        else:
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").startswith("gdbext."):
                base = node.module[len("gdbext."):]
            else:
                return []
            # `from .x import y` names module x, or module x.y when y is a submodule
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        return [n for n in names if n in known]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in targets(child):
                    if in_function:
                        inner.append((t, child.lineno))
                    else:
                        top.add(t)
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inside)

    visit(tree, False)
    return top, inner


def _inferior_graph():
    known = _inferior_modules()
    return {m: _sibling_imports(m, p, known) for m, p in known.items()}


def _reaches(graph, start: str, goal: str, top_only: bool = False) -> bool:
    """Whether `start`'s imports (all, or those at top level) lead, import by import, to `goal`."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            top, inner = graph.get(m, (set(), []))
            todo.extend(top)
            if not top_only:
                todo.extend(t for t, _ in inner)
    return False


def test_inferior_modules_are_found():
    graph = _inferior_graph()
    assert {"inferior.heap", "inferior.regions", "inferior.brk", "inferior.stacks",
            "inferior.brkwatch.running"} <= set(graph)
    assert "inferior.brk" in graph["inferior.brkwatch.running"][0]  # `from ..brk import` resolved


def test_regions_and_heap_import_their_siblings_at_top_level():
    """vmmap's regions need the heap model's claims, the heap model needs the program break and
    the thread stacks: each comes from a module both import at top level, not from each other
    through imports hidden in functions."""
    graph = _inferior_graph()
    for module in ("inferior.regions", "inferior.heap", "inferior.brk", "inferior.stacks"):
        assert graph[module][1] == [], f"{module} imports inside functions: {graph[module][1]}"
    assert not _reaches(graph, "inferior.heap", "inferior.regions")
    assert not _reaches(graph, "inferior.stacks", "inferior.heap")
    assert not _reaches(graph, "inferior.brk", "inferior.heap")


def test_no_import_cycle_hidden_in_a_function():
    """An import inside a function is only for load time (a module gdb start-up should not
    pay for), never to hide a cycle: the module it names must not import, directly or through
    others, at top level or inside functions, the module that holds the function (as
    inferior/heap.py and inferior/regions.py did, each from inside functions)."""
    graph = _inferior_graph()
    hidden = [f"{m}:{line} imports {t}, which imports {m}"
              for m, (_, inner) in graph.items() for t, line in inner if _reaches(graph, t, m)]
    assert not hidden, hidden
