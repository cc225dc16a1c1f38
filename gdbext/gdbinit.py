"""Loads gdbext into gdb: `source /path/to/gdbext/gdbinit.py` (install.sh writes that line).

Puts the project and the virtualenv that install.sh made for gdb's own Python on sys.path, then
registers the commands. Kept small: this runs at every gdb start. Sourcing the same copy again
does nothing; sourcing another copy (a second clone) once one is loaded says so in one line and
changes nothing, since one gdb can hold only one `gdbext` package.

Where this file is comes from the code being run, not from `__file__` alone: a script that gdb
sources from inside another Python script (`gdb.execute("source .../gdbinit.py")`) sees the outer
script's `__file__`, and `exec(open(PATH).read())` runs it as a string, with the caller's
`__file__` or none. Everything is inside one function, imports included: exec() with separate
locals (inside a function) would hide this file's globals from functions defined here.
"""


def _gdbext_load(frame, file):
    import glob
    import os
    import sys

    import gdb

    def is_loader(path):
        """Whether `path` is a gdbext/gdbinit.py with its package beside it."""
        return (
            isinstance(path, str)
            and os.path.basename(path) == "gdbinit.py"
            and os.path.isfile(path)
            and os.path.isfile(os.path.join(os.path.dirname(path), "commands", "__init__.py"))
        )

    def locate():
        """The file gdb compiled this code from, else `__file__`, else a path to a gdbinit.py
        that the code running it names (`exec(open(PATH).read())` holds PATH among its
        constants or variables); None when nothing says."""
        candidates = [frame.f_code.co_filename, file]
        caller, depth = frame.f_back, 0
        while caller is not None and depth < 8:
            candidates += [c for c in caller.f_code.co_consts if isinstance(c, str)]
            candidates += [v for v in list(caller.f_locals.values()) if isinstance(v, str)]
            caller, depth = caller.f_back, depth + 1
        found = next((c for c in candidates if is_loader(c)), None)
        return os.path.dirname(os.path.abspath(found)) if found else None

    def loaded_elsewhere(here):
        """The directory of the gdbext package this gdb has already imported, when it is not
        this one; else None."""
        where = getattr(sys.modules.get("gdbext"), "__file__", None)
        if not where:
            return None
        where = os.path.dirname(os.path.abspath(where))
        return None if os.path.realpath(where) == os.path.realpath(here) else where

    def load(root):
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        for site in glob.glob(os.path.join(root, ".venv", "lib", ver, "site-packages")):
            if site not in sys.path:
                sys.path.append(site)  # after gdb's own paths: never shadow the system's modules
        if root not in sys.path:
            sys.path.insert(0, root)
        try:
            from gdbext.commands import register
            from gdbext.inferior.memory import install_invalidation

            install_invalidation()
            register()
        except Exception as e:  # one line, never a traceback at gdb start-up
            gdb.write(f"gdbext: not loaded ({type(e).__name__}: {e})\n", gdb.STDERR)
            return False
        return True

    here = locate()
    if here is None:
        gdb.write(
            "gdbext: not loaded: cannot tell where gdbinit.py is (run from a string that names no "
            "path); source it by its path: source /path/to/gdbext/gdbinit.py\n",
            gdb.STDERR,
        )
        return
    other = loaded_elsewhere(here)
    if other is not None:
        gdb.write(
            f"gdbext: not loading {here}: gdbext from {other} is already loaded in this gdb "
            "(two source lines in ~/.gdbinit?); keep the one you want and restart gdb\n",
            gdb.STDERR,
        )
    elif not getattr(sys.modules.get("gdbext"), "_loaded", False) and load(os.path.dirname(here)):
        sys.modules["gdbext"]._loaded = True


_gdbext_load(__import__("sys")._getframe(), globals().get("__file__"))
