"""brkwatch's breakpoints and watchpoints: internal ones whose stop() hands the event to the
watcher and lets the program go on unless the watcher says to stop."""

from typing import Callable

import gdb

from .running import selected_inferior_num


class Hook(gdb.Breakpoint):
    """An internal breakpoint (or watchpoint) whose stop() calls dispatch(handler, source).  It
    belongs to the inferior selected when it was made: gdb may give an address breakpoint
    locations in a forked child too, whose own hooks record its events."""

    def __init__(self, spec, dispatch: Callable, handler, source: str, *args, **kw):
        self._dispatch = dispatch  # before gdb can call stop()
        self._handler = handler
        self._source = source
        self._owner = selected_inferior_num()
        super().__init__(spec, *args, internal=True, **kw)

    def stop(self):
        handler = getattr(self, "_handler", None)
        if handler is None or selected_inferior_num() != self._owner:
            return False
        return self._dispatch(handler, self._source)


def delete_hooks(hooks) -> None:
    for h in hooks:
        try:
            if h.is_valid():
                h.delete()
        except (gdb.error, RuntimeError):
            pass
