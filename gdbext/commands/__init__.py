"""Registers every gdbext command, its `gdbext` prefix for help, and its settings."""

import importlib

import gdb

# module name -> command classes; imported on registration, which stays cheap (no pygments).
COMMAND_MODULES = ("vmmap", "heapchunks", "arenas", "bins", "chunk", "threadstacks", "brkwatch")


class GdbextPrefix(gdb.Command):
    """gdbext: memory layout, glibc heap, program break and thread stacks of a paused process."""

    def __init__(self, summaries):
        self.__doc__ = ("gdbext: memory layout, glibc heap, program break and thread stacks of a paused "
                        "process.\n\nCommands (also available as 'gdbext NAME'):\n"
                        + "\n".join(f"  {name:<13} {text}" for name, text in summaries)
                        + "\n\nEvery command takes --json and -h. Settings: 'show gdbext'.")
        super().__init__("gdbext", gdb.COMMAND_DATA, gdb.COMPLETE_COMMAND, prefix=True)


class _SetPrefix(gdb.Command):
    """Set a gdbext setting."""

    def __init__(self, verb):
        self.__doc__ = f"{verb.capitalize()} gdbext settings."
        super().__init__(f"{verb} gdbext", gdb.COMMAND_DATA, prefix=True)


class _Param(gdb.Parameter):
    def __init__(self, name, kind, doc, default, *extra):
        self.set_doc = f"Set {doc}."
        self.show_doc = f"Show {doc}."
        self.__doc__ = doc.capitalize() + "."
        super().__init__(f"gdbext {name}", gdb.COMMAND_DATA, kind, *extra)
        self.value = default


def _commands():
    out = []
    for modname in COMMAND_MODULES:
        mod = importlib.import_module(f"{__name__}.{modname}")
        out.extend(getattr(mod, "COMMANDS", ()))
    return out


def register():
    classes = _commands()
    GdbextPrefix([(c.name, c.summary) for c in classes])
    _SetPrefix("set")
    _SetPrefix("show")
    _Param("color", gdb.PARAM_ENUM, "when gdbext colours its output (auto: on a terminal with styling on)",
           "auto", ["auto", "on", "off"])
    _Param("style", gdb.PARAM_STRING, "the pygments style that colours gdbext output", "monokai")
    _Param("debug", gdb.PARAM_BOOLEAN, "whether gdbext shows Python tracebacks of its own errors", False)
    for cls in classes:
        cls()  # top-level name: vmmap
        cls(f"gdbext {cls.name}")  # and under the prefix, so 'help gdbext' lists it
