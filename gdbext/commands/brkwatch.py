"""brkwatch: record every change of the program break (and anonymous mappings) as it runs."""

from ..model import brklog as M
from ..views import explain
from ..model.brkoptions import Options
from ..render import jsonout
from ..views import brkwatch as brk_views
from ..inferior.errors import UserError
from .base import GdbextCommand


def _bw():
    """The watcher and its helpers, loaded on first use: gdb start-up stays cheap."""
    from ..inferior import brkwatch

    return brkwatch


def _target_doc():
    """The usual "target" object; the log outlives the process, so it may have none."""
    try:
        from ..inferior.libc import target_json
        from ..inferior.process import Target

        return target_json(Target())
    except Exception:  # not running: the log is still worth showing
        return {"pid": _bw().WATCHER.log.pid, "kind": None, "glibc": None, "symbols": False}


class BrkWatch(GdbextCommand):
    name = "brkwatch"
    reads_stopped_process = False  # turning the watch on or off, or its log, needs no stop
    summary = "Record every change of the program break (and anonymous mmaps) while the program runs."
    details = (
        "brkwatch on [--mmap] [--stop] [--bt N] [--method auto|watch|break|syscall]\n"
        "brkwatch off | status [--json] | log [--json] [--last N] [--kind KIND] | clear\n\n"
        "While on, each change of the break (malloc growing or trimming the heap, sbrk/brk,\n"
        "a raw syscall(SYS_brk, ...)), including a refused one, is recorded without stopping\n"
        "the program; --mmap adds anonymous mmap/munmap/mremap (malloc's large chunks and\n"
        "arena heaps). Each event keeps the thread, the user code that caused it, the\n"
        "malloc call and its size when readable, and mp_.mmap_threshold. --stop stops at\n"
        "each event; --bt N keeps N frames. The log survives stops and 'continue' and is\n"
        "cleared at a new run; each inferior (a fork kept with detach-on-fork off) has its\n"
        "own, and an exec is followed into the new program. Each event costs the program\n"
        "a stop in gdb: --method picks how (auto: a hardware watchpoint on libc's\n"
        "__curbrk, else a breakpoint in __brk, else a syscall catchpoint)."
    )

    def add_arguments(self, p):
        p.add_argument(
            "--json",
            dest="top_json",
            action="store_true",
            help="one JSON document (status, or the log with 'log')",
        )
        sub = p.add_subparsers(dest="action", metavar="on|off|status|log|clear")
        on = sub.add_parser("on", help="start recording", add_help=True)
        on.add_argument("--mmap", action="store_true", help="also anonymous mmap/munmap/mremap")
        on.add_argument("--stop", action="store_true", help="stop the program at each event")
        on.add_argument("--bt", type=int, default=0, metavar="N", help="keep N frames per event")
        on.add_argument(
            "--method",
            choices=M.METHODS,
            default="auto",
            help="how to be told of a change (default: the cheapest that works)",
        )
        on.add_argument("--json", action="store_true", help="the status afterwards, as JSON")
        off = sub.add_parser("off", help="stop recording (the log is kept)")
        off.add_argument("--json", action="store_true", help="the status afterwards, as JSON")
        st = sub.add_parser("status", help="on/off, options, event count")
        st.add_argument("--json", action="store_true", help="one JSON document")
        lg = sub.add_parser("log", help="the events, with running totals and a summary")
        lg.add_argument("--json", action="store_true", help="one JSON document")
        lg.add_argument("--last", type=int, metavar="N", help="only the last N events")
        lg.add_argument("--explain", action="store_true", help="after the log, what each kind of event means")
        lg.add_argument(
            "--kind",
            action="append",
            choices=M.KINDS,
            metavar="KIND",
            help="only events of this kind (repeatable)",
        )
        clear = sub.add_parser("clear", help="forget the events recorded so far")
        clear.add_argument("--json", action="store_true", help="the status afterwards, as JSON")

    def run(self, args, out):
        action = args.action or "status"
        if args.top_json:
            args.json = True
        want_json = getattr(args, "json", False)
        watcher = _bw().WATCHER
        done = []  # what on, off or clear did
        if action == "on":
            if args.bt < 0 or args.bt > 256:
                raise UserError("--bt takes a number of frames from 0 to 256")
            text = watcher.turn_on(Options(args.mmap, args.stop, args.bt, args.method))
            done = brk_views.message_items(text, watcher.why_not)
        elif action == "off":
            done = brk_views.message_items(watcher.turn_off())
        elif action == "clear":
            n = watcher.log.summary.events
            watcher.log.clear(None, watcher.log.pid)
            done = brk_views.message_items(brk_views.cleared_text(n))
        if action in ("on", "off", "clear", "status"):
            st = watcher.status()
            if want_json:
                out.json(
                    jsonout.document("brkwatch", _target_doc(), **brk_views.status_body(st, watcher.log))
                )
                return
            out.emit(done or brk_views.status_items(st))
        elif action == "log":
            self._log(args, out)

    def _log(self, args, out):
        watcher = _bw().WATCHER
        log = watcher.log
        if args.last is not None and args.last < 1:
            raise UserError("--last takes a positive number of events")
        events = log.selected(args.kind, args.last)
        if args.json:
            out.json(
                jsonout.document(
                    "brkwatch", _target_doc(), **brk_views.log_body(log, events, watcher.status())
                )
            )
            return
        out.emit(brk_views.log_items(log, events, watcher.on, args.kind, out.width))
        if args.explain:
            out.emit(explain.brk_log(events))


COMMANDS = (BrkWatch,)
