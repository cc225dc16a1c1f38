"""allocwatch: record which call site allocated each chunk, and catch misuses as they happen."""

from ..model.allocoptions import MAX_BT, MAX_UAF, RETURN_METHODS, AllocOptions, parse_range
from ..render import fmt, jsonout
from ..inferior.errors import UserError
from ..views import allocwatch as views
from .base import GdbextCommand


def _aw():
    """The watcher, loaded on first use: gdb start-up stays cheap."""
    from ..inferior import allocwatch

    return allocwatch


def watcher():
    return _aw().WATCHER


def _target_doc():
    """The usual "target" object; the table outlives the process, so it may have none."""
    try:
        from ..inferior.libc import target_json
        from ..inferior.process import Target

        return target_json(Target())
    except Exception:  # not running: the table is still worth showing
        return {"pid": watcher().state().pid, "kind": None, "glibc": None, "symbols": False}


def _existing():
    """The user pointers of the chunks in use now (None when the heap cannot be read)."""
    from ..model.allocsites import chunks_in_use
    from ..inferior.process import Target
    from .lazy_inferior import heap_view

    try:
        view = heap_view(Target())
    except Exception:  # no heap model: the chunks before tracking stay unknown
        return None
    return [p for p, _ in chunks_in_use(view.state, view.layout)]


def site_table():
    """The selected inferior's site table when allocwatch ever ran in this session, else None
    (the heap commands' --by site)."""
    import sys

    mod = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.inferior.allocwatch")
    if mod is None:
        return None
    st = mod.WATCHER.state()
    if not (mod.WATCHER.on or st.pid is not None) or _current_pid() != st.pid:
        return None  # another process (a new run, a core) than the one the table describes
    return st.table


def _current_pid():
    import gdb

    try:
        return gdb.selected_inferior().pid or None
    except (gdb.error, RuntimeError):
        return None


def require_site_table(command: str):
    t = site_table()
    if t is None:
        raise UserError(
            "--by site needs allocwatch's table of this process: 'allocwatch on' before the program allocates"
        )
    return t


class AllocWatch(GdbextCommand):
    name = "allocwatch"
    reads_stopped_process = False  # its status and log need no stop
    summary = "Record which call site allocated each malloc chunk; catch double frees as they happen."
    details = (
        "allocwatch on [--bt N] [--sizes RANGE] [--sample K] [--uaf [N]] [--returns METHOD]\n"
        "allocwatch off | status [--json] | log [--json] [--last N]\n\n"
        "While on, every call of malloc, calloc, realloc, reallocarray, memalign, aligned_alloc,\n"
        "posix_memalign, valloc, pvalloc and free is recorded with its thread and call site\n"
        "(the first frame outside libc) without stopping the program. The site table then\n"
        "answers 'chunk ADDR' (who allocated it) and 'heapchunks --by site', 'heapleaks --by\n"
        "site', 'heapsnap diff --by site'. A double free, a free or realloc of a pointer\n"
        "malloc never returned, a realloc of a freed pointer and (--uaf N: a watchpoint on\n"
        "the first word of the last N freed chunks) a use after free are reported before\n"
        "libc sees them, with both call sites; 'set gdbext allocwatch-stop off' only says\n"
        "them. Chunks in use at 'on' are 'before tracking'. Each call costs the program a\n"
        "stop in gdb or two: --sample K records one allocation in K, --sizes 16-64 only\n"
        "those sizes (frees are always seen). x86-64 live processes only."
    )

    def add_arguments(self, p):
        p.add_argument("--json", dest="top_json", action="store_true", help="one JSON document (status)")
        sub = p.add_subparsers(dest="action", metavar="on|off|status|log")
        on = sub.add_parser("on", help="start recording")
        on.add_argument("--bt", type=int, default=0, metavar="N", help="keep N frames per allocation")
        on.add_argument("--sizes", metavar="RANGE", help="only requests of these sizes: 16-64, 4k-, -1M")
        on.add_argument("--sample", type=int, default=1, metavar="K", help="record one allocation in K")
        on.add_argument(
            "--uaf",
            type=int,
            nargs="?",
            const=1,
            default=0,
            metavar="N",
            help="watch the first word of the last N freed chunks (default 1)",
        )
        on.add_argument(
            "--returns",
            choices=RETURN_METHODS,
            default=None,
            help="how results are read: a breakpoint per return address (address, the default), "
            "one per call (call, the default with --sample or --sizes), a FinishBreakpoint (finish)",
        )
        on.add_argument("--json", action="store_true", help="the status afterwards, as JSON")
        off = sub.add_parser("off", help="stop recording (the table is kept)")
        off.add_argument("--json", action="store_true", help="the status afterwards, as JSON")
        st = sub.add_parser("status", help="on/off, options, counts")
        st.add_argument("--json", action="store_true", help="one JSON document")
        lg = sub.add_parser("log", help="the last events and every detection")
        lg.add_argument("--json", action="store_true", help="one JSON document")
        lg.add_argument("--last", type=int, metavar="N", help="only the last N events")

    def run(self, args, out):
        action = args.action or "status"
        if args.top_json:
            args.json = True
        w = watcher()
        done = []
        if action == "on":
            done = views.message_items(w.turn_on(self._options(args), _existing))
        elif action == "off":
            done = views.message_items(w.turn_off())
        if action == "log":
            if args.last is not None and args.last < 1:
                raise UserError("--last takes a positive number of events")
            table = w.table
            calls = list(table.log)[-args.last :] if args.last else list(table.log)
            if args.json:
                out.json(
                    jsonout.document("allocwatch", _target_doc(), **views.log_body(table, calls, w.status()))
                )
                return
            out.emit(views.log_items(table, calls, out.width))
            return
        st = w.status()
        if getattr(args, "json", False):
            out.json(jsonout.document("allocwatch", _target_doc(), **views.status_body(st)))
            return
        out.emit(done or views.status_items(st))

    @staticmethod
    def _options(args) -> AllocOptions:
        if not 0 <= args.bt <= MAX_BT:
            raise UserError(f"--bt takes a number of frames from 0 to {MAX_BT}")
        if args.sample < 1:
            raise UserError("--sample takes a positive number")
        if not 0 <= args.uaf <= MAX_UAF:
            raise UserError(f"--uaf takes a number of chunks from 1 to {MAX_UAF} (the debug registers)")
        sizes = None
        if args.sizes:
            try:
                sizes = parse_range(args.sizes, fmt.parse_size)
            except ValueError as e:
                raise UserError(f"--sizes: {e}") from None
        # A lasting breakpoint per return address stops every call, recorded or not: with some
        # calls left unrecorded, one per recorded call is cheaper (benchmarks/allocwatch_overhead.py).
        returns = args.returns or ("call" if args.sample > 1 or sizes else "address")
        return AllocOptions(args.bt, sizes, args.sample, args.uaf, returns)


COMMANDS = (AllocWatch,)
