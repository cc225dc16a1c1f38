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
