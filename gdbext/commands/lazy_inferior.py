"""The inferior layer's entry points the commands call, each imported on its first call.

Registering the commands at gdb start-up needs only their names and options; the inferior layer
and the models behind it load when a command first runs, so loading gdbext stays cheap.
"""


def heap_view(target):
    from ..inferior.heap import heap_view as f

    return f(target)


def chunk_view(target, address):
    from ..inferior.heap import chunk_view as f

    return f(target, address)


def target_json(target):
    from ..inferior.libc import target_json as f

    return f(target)


def regions(target):
    from ..inferior.regions import regions as f

    return f(target)


def resident_sizes(target):
    from ..inferior.mappings import resident_sizes as f

    return f(target)


def stack_rows(target, wanted):
    from ..inferior.stackuse import stack_rows as f

    return f(target, wanted)


def maps_unreadable(target):
    from ..inferior.mappings import maps_unreadable as f

    return f(target)


def arena_view(target):
    from ..inferior.heap import arena_view as f

    return f(target)


def current_break(target):
    """The program break (libc's __curbrk), or None: mallocwhere's and trymalloc's dry runs
    need it before malloc has made a heap, when the heap model has no break of its own."""
    from ..inferior.brk import current_break as f
    from ..inferior.mappings import mappings

    return f(target, mappings(target))


def global_max_fast(target, layout):
    from ..inferior.heap import global_max_fast as f

    return f(target, layout)


def leaks():
    """inferior/leaks.py: the reachability scan's edge (roots, nodes, symbols, frames)."""
    from ..inferior import leaks as module

    return module


def heap_usage(target, view):
    from ..inferior.usage import heap_usage as f

    return f(target, view)


def window_view(target, start, stop):
    from ..inferior.heap import window_view as f

    return f(target, start, stop)


def list_view(target):
    from ..inferior.heap import list_view as f

    return f(target)


def map_marks(target):
    from ..inferior.marks import map_marks as f

    return f(target)


def free_inputs(target, view, thread):
    from ..inferior.tryfree import free_inputs as f

    return f(target, view, thread)


def frame_at(thread, address, stack_high):
    from ..inferior.addrinfo import frame_at as f

    return f(thread, address, stack_high)
