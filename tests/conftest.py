import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness import Gdb, build_demos  # noqa: E402


@pytest.fixture(scope="session")
def demos():
    build_demos()


@pytest.fixture
def gdb_session(demos):
    """gdb_session(program, *args) -> a started Gdb, closed after the test."""
    sessions = []

    def start(program=None, *args, **kw):
        g = Gdb(program, args, **kw)
        sessions.append(g)
        return g

    yield start
    for g in sessions:
        g.close()


@pytest.fixture(scope="session")
def glibcs():
    """{version: tests.glibcs.Glibc} for 2.31, 2.36, 2.41, 2.43 and 2.44, fetched from Debian's
    archive once (cached in tests/.cache/glibc) with the demos built to run under each;
    skips when the archive cannot be reached."""
    from tests import glibcs as G

    try:
        return G.Fetched(G.ensure())
    except G.Unreachable as e:
        pytest.skip(f"Debian's archive is unreachable, no other glibc to test: {e}")


@pytest.fixture
def glibc_gdb(glibcs, gdb_session):
    """glibc_gdb(version, symbols, program, *args, **kw) -> a started Gdb on demo `program`
    running under that glibc, with (symbols=True) or without its libc debug symbols.
    Skips when symbols are asked for and the glibc has none (the host without libc6-dbg)."""

    def start(version, symbols, program, *args, **kw):
        g = glibcs[version]
        if symbols and not g.has_symbols:
            pytest.skip(f"no debug symbols for glibc {version} ({g.libc}); install libc6-dbg")
        kw["extra_init"] = [*g.gdb_init(symbols), *kw.get("extra_init", ())]
        kw["env"] = {**g.gdb_env, **(kw.get("env") or {})}
        return gdb_session(g.demo(program), *args, **kw)

    return start
