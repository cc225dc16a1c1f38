"""Loads gdbext into gdb: `source /path/to/gdbext/gdbinit.py` (install.sh writes that line).

Puts the project and the virtualenv that install.sh made for gdb's own Python on sys.path, then
registers the commands. Kept small: this runs at every gdb start.
"""

import glob
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
_ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
for _site in glob.glob(os.path.join(_root, ".venv", "lib", _ver, "site-packages")):
    if _site not in sys.path:
        sys.path.append(_site)  # after gdb's own paths: never shadow the system's modules
if _root not in sys.path:
    sys.path.insert(0, _root)


def _load():
    import gdb

    try:
        from gdbext.commands import register
        from gdbext.inferior.memory import install_invalidation

        install_invalidation()
        register()
    except Exception as e:  # one line, never a traceback at gdb start-up
        gdb.write(f"gdbext: not loaded ({type(e).__name__}: {e})\n", gdb.STDERR)


if not getattr(sys.modules.get("gdbext"), "_loaded", False):
    _load()
    import gdbext

    gdbext._loaded = True  # type: ignore[attr-defined]
