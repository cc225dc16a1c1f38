"""Registers every gdbext command, its `gdbext` prefix for help, and its settings."""

import importlib

import gdb

from ..render import style
from ..render.escape import printable
from . import base

# module name -> command classes; imported on registration, which stays cheap (no pygments).
SETTINGS = ("color", "style", "progress", "debug", "allocwatch-stop")
COMMAND_MODULES = (
    "vmmap",
    "heapchunks",
    "heapmap",
    "addrinfo",
    "arenas",
    "bins",
    "chunk",
    "heapleaks",
    "heaprefs",
    "threadstacks",
    "brkwatch",
    "allocwatch",
    "heapstat",
    "heapsnap",
    "mallocwhere",
    "tryfree",
    "trymalloc",
    "memreport",
    "heapvis",
    "fakechunks",
)


class GdbextPrefix(gdb.Command):
    """gdbext: memory layout, glibc heap, program break and thread stacks of a paused process."""

    def __init__(self):
        # gdb lists the subcommands itself after this text: listing them here too said it twice.
        self.__doc__ = (
            "gdbext: memory layout, glibc heap, program break and thread stacks of a paused "
            "process.\n\nEach command can also be typed without the 'gdbext' prefix. "
            "Every command takes --json and -h. Settings: "
            "'show gdbext'."
        )
        super().__init__("gdbext", gdb.COMMAND_DATA, gdb.COMPLETE_COMMAND, prefix=True)

    def invoke(self, arg, from_tty):
        """`gdbext` alone lists the commands (it printed nothing); an unknown one is an error."""
        word = arg.strip().split(None, 1)[0] if arg.strip() else ""
        if word:
            raise gdb.GdbError(f"gdbext: no command named {printable(word)!r}; 'help gdbext' lists them")
        gdb.execute("help gdbext", from_tty)


class _SetPrefix(gdb.Command):
    """Set a gdbext setting."""

    def __init__(self, verb):
        self.__doc__ = f"{verb.capitalize()} gdbext settings."
        super().__init__(f"{verb} gdbext", gdb.COMMAND_DATA, prefix=True)


class _ShowPrefix(_SetPrefix):
    """`show gdbext` alone lists every setting with its value, as `show style` does."""

    def __init__(self, names):
        self.names = names
        super().__init__("show")

    def invoke(self, arg, from_tty):
        if arg.strip():
            raise gdb.GdbError(
                f"show gdbext: no setting named {arg.strip()!r}; settings: {', '.join(self.names)}"
            )
        for name in self.names:
            text = gdb.execute(f"show gdbext {name}", to_string=True).strip()
            gdb.write(f"gdbext {name}:  {text}\n")


class _Param(gdb.Parameter):
    def __init__(self, name, kind, doc, default, *extra):
        self.set_doc = f"Set {doc}."
        self.show_doc = f"Show {doc}."
        self.__doc__ = doc.capitalize() + "."
        self.what = doc
        super().__init__(f"gdbext {name}", gdb.COMMAND_DATA, kind, *extra)
        self.value = default

    def get_show_string(self, svalue):
        return f"{self.what}: {svalue}"


def _commands():
    out = []
    for modname in COMMAND_MODULES:
        mod = importlib.import_module(f"{__name__}.{modname}")
        out.extend(getattr(mod, "COMMANDS", ()))
    return out


def register():
    classes = _commands()
    GdbextPrefix()
    _SetPrefix("set")
    _ShowPrefix(SETTINGS)
    _Param(
        "color",
        gdb.PARAM_ENUM,
        "when gdbext colours its output (auto: on a terminal with styling on)",
        "auto",
        ["auto", "on", "off"],
    )
    # An enum, so an unknown name gets gdb's own "Undefined item" error and <Tab> lists them.
    _Param(
        "style",
        gdb.PARAM_ENUM,
        "how gdbext colours its output (gdb: gdb's 'set style' and the terminal's colours; "
        "or a pygments style)",
        style.DEFAULT_STYLE,
        [style.DEFAULT_STYLE] + [n for n in style.pygments_styles() if n != style.DEFAULT_STYLE],
    )
    _Param(
        "progress",
        gdb.PARAM_BOOLEAN,
        "whether a long command typed at a terminal shows a progress line on stderr",
        True,
    )
    _Param("debug", gdb.PARAM_BOOLEAN, "whether gdbext shows Python tracebacks of its own errors", False)
    _Param(
        "allocwatch-stop",
        gdb.PARAM_BOOLEAN,
        "whether allocwatch stops the program at a double free or other misuse it detects",
        True,
    )
    # The colour decision compares the page size with the prompt's (commands/base.py).
    base.note_prompt()
    gdb.events.before_prompt.connect(base.note_prompt)
    for cls in classes:
        cls()  # top-level name: vmmap
        cls(f"gdbext {cls.name}")  # and under the prefix, so 'help gdbext' lists it
