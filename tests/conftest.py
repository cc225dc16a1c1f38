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
