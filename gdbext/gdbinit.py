"""Loads gdbext into gdb: `source /path/to/gdbext/gdbinit.py` (install.sh writes that line).

Puts the project and the virtualenv that install.sh made for gdb's own Python on sys.path, then
registers the commands. Kept small: this runs at every gdb start. Sourcing the same copy again
does nothing; sourcing another copy (a second clone) once one is loaded says so in one line and
changes nothing, since one gdb can hold only one `gdbext` package.
"""

import glob
import os
import sys

import gdb

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)


def _loaded_elsewhere():
    """The directory of the gdbext package this gdb has already imported, when it is not this
    one; else None."""
    module = sys.modules.get("gdbext")
    where = getattr(module, "__file__", None)
    if not where:
        return None
    where = os.path.dirname(os.path.abspath(where))
    return None if os.path.realpath(where) == os.path.realpath(_here) else where


def _load():
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for site in glob.glob(os.path.join(_root, ".venv", "lib", ver, "site-packages")):
        if site not in sys.path:
            sys.path.append(site)  # after gdb's own paths: never shadow the system's modules
    if _root not in sys.path:
        sys.path.insert(0, _root)
    try:
        from gdbext.commands import register
        from gdbext.inferior.memory import install_invalidation

        install_invalidation()
        register()
    except Exception as e:  # one line, never a traceback at gdb start-up
        gdb.write(f"gdbext: not loaded ({type(e).__name__}: {e})\n", gdb.STDERR)


_other = _loaded_elsewhere()
if _other is not None:
    gdb.write(
        f"gdbext: not loading {_here}: gdbext from {_other} is already loaded in this gdb "
        "(two source lines in ~/.gdbinit?); keep the one you want and restart gdb\n",
        gdb.STDERR,
    )
elif not getattr(sys.modules.get("gdbext"), "_loaded", False):
    _load()
    import gdbext

    gdbext._loaded = True  # type: ignore[attr-defined]
