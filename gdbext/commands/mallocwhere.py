"""mallocwhere SIZE: where the selected thread's next malloc(SIZE) would be served from."""

import gdb

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..render import jsonout
from ..views import mallocwhere as where_view
from .base import GdbextCommand, expression
from .lazy_inferior import arena_view, current_break, global_max_fast, target_json


class MallocWhere(GdbextCommand):
    name = "mallocwhere"
    summary = "Say where malloc(SIZE) in the selected thread would come from, right now."
    details = (
        "SIZE is a gdb expression. The answer follows glibc's malloc over the free lists as\n"
        "they are (tcache, fastbin, small bin, the unsorted bin sorted as malloc sorts it,\n"
        "the last remainder, large bins, top, the break, a new heap, mmap), without running\n"
        "anything in the process. What it cannot see is listed as 'depends on'."
    )

    def add_arguments(self, p):
        add_size_arguments(p)

    def run(self, args, out):
        target, size, thread, view = malloc_request(args)
        w = _where(view, size, thread, global_max_fast(target, view.layout), target)
        if args.json:
            out.json(
                jsonout.document(
                    "mallocwhere", target_json(target), **where_view.document_body(view, w, thread.num)
                )
            )
            return
        out.emit(where_view.text(view, w, thread.num))


def add_size_arguments(p):
    """SIZE and --json: mallocwhere's and trymalloc's arguments."""
    p.add_argument("size", metavar="SIZE", type=expression, help="the size malloc is asked for")
    p.add_argument("--json", action="store_true", help="one JSON document")


def malloc_request(args):
    """(target, size, selected thread, arena view) for a dry run of malloc(SIZE)."""
    target = Target()
    size = evaluate_address(args.size.strip())
    if size < 0 or size >= 1 << (8 * target.pointer_size):  # more than a size_t holds
        raise UserError(f"{size} is not a size malloc can be asked for")
    thread = gdb.selected_thread()
    if thread is None:
        raise UserError("no thread is selected")
    return target, size, thread, arena_view(target)


def _where(view, size, thread, max_fast, target):
    from ..model.ptmalloc.where import where

    return where(size, where_inputs(view, thread, max_fast, target))


def where_inputs(view, thread, max_fast=None, target=None):
    """The selected thread's arena, tcache and the break, and global_max_fast as read (None:
    unknown), for mallocwhere's and trymalloc's dry runs of malloc; where the model has no
    break (no heap yet), the process's own, read from `target` only then."""
    from ..model.ptmalloc.where import WhereInputs

    state = view.state
    num = thread.num
    main_thread = thread.ptid[1] == thread.inferior.pid
    address = view.thread_arena.get(num)
    arena = state.arena_of(address) if address else None
    if arena is None and main_thread:
        arena = next((a for a in state.arenas if a.main), None)  # the main thread's is main_arena
    tcache = state.tcache.get(num)
    known = tcache is not None or not state.tcache  # no tcache found for anyone: none yet
    inputs = view.inputs
    return WhereInputs(
        state,
        arena,
        tcache,
        tcache_known=known,
        program_break=getattr(inputs, "program_break", None) or (current_break(target) if target else None),
        pagesize=getattr(inputs, "pagesize", None) or 4096,
        max_fast=max_fast,
    )


COMMANDS = (MallocWhere,)
