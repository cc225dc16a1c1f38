"""What every benchmark needs: where gdbext is, and gdbext byte-compiled before timing."""

import compileall
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(ROOT, "gdbext", "gdbinit.py")


def precompile_gdbext() -> None:
    """As install.sh does: gdb then loads .pyc files and no timed run pays for compiling
    gdbext (where PYTHONDONTWRITEBYTECODE is set, gdb would compile it again in every run).
    Run the benchmarks with gdb's Python (.venv/bin/python), so the .pyc files are its own."""
    compileall.compile_dir(os.path.join(ROOT, "gdbext"), quiet=1)
