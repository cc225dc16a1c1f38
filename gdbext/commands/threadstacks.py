"""threadstacks: every thread's stack, how much of it is in use, and how deep it has been."""

from ..render import fmt, jsonout
from ..render.table import Table
from ..target.errors import UserError
from ..target.process import Target
from .base import GdbextCommand
from .edge import target_json, stack_rows


def parse_thread_list(words):
    """'2', '3-5' -> {2, 3, 4, 5}; a UserError for anything else."""
    out = set()
    for w in words or ():
        lo, sep, hi = w.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UserError(f"{w!r} is not a thread number or range (e.g. 2 or 2-4)") from None
        if a < 1 or b < a:
            raise UserError(f"{w!r} is not a thread number or range (e.g. 2 or 2-4)")
        out.update(range(a, b + 1))
    return out


def _guard(row) -> str:
    if row.guard_low is None:
        return "-"
    return f"{fmt.address(row.guard_low)} {fmt.human(row.guard_size)}"


def _stack(row) -> str:
    if row.low is None:
        return "-"
    return f"{fmt.address(row.low)}-{fmt.address(row.high)}"


class ThreadStacks(GdbextCommand):
    name = "threadstacks"
    summary = "Show each thread's stack: bounds, guard, SP, bytes in use and peak use."
    details = ("THREAD: gdb thread numbers or ranges (2 4-6); all threads by default.\n"
               "Bounds come from glibc's struct pthread (stackblock, stackblock_size, guardsize)\n"
               "through libc's debug types, otherwise from the mapping that holds SP and the\n"
               "no-access mapping below it. The main thread's stack is the [stack] mapping and\n"
               "may grow down to the process's own RLIMIT_STACK (/proc/PID/limits).\n"
               "used = high - SP. peak = high - the lowest page of the stack the thread wrote,\n"
               "from /proc/PID/pagemap (a local live process only; '?' elsewhere).\n"
               "Warnings: use above 75%, SP in or below the guard (a stack overflow), SP on no\n"
               "known stack (an alternate signal stack or a user-allocated stack).")

    def add_arguments(self, p):
        p.add_argument("threads", nargs="*", metavar="THREAD", help="gdb thread numbers or ranges")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        wanted = parse_thread_list(args.threads)
        target = Target()
        rows = stack_rows(target, wanted)
        if wanted:
            missing = sorted(wanted - {r.num for r in rows})
            if missing:
                raise UserError("no thread " + ", ".join(map(str, missing))
                                + "; 'info threads' lists them")
        if args.json:
            out.json(jsonout.document("threadstacks", target_json(target),
                                      threads=[r.to_json() for r in rows],
                                      warnings=[f"thread {r.num}: {w}" for r in rows
                                                for w in r.warnings]))
            return
        if not rows:
            raise UserError("the process has no threads gdb can see")
        t = Table(["#", "tid", "name", "stack [low, high)", "size", "guard", "sp", "used", "use",
                   "peak", "frames", "function"], "rrllrlllrrrl")
        for r in rows:
            tok = "warning" if r.warnings else "automatic"
            peak = fmt.human(r.peak_used) if r.peak_used is not None else ("?" if r.low is not None else "-")
            t.add((str(r.num), tok), r.tid, r.name or "-", (_stack(r), "address"),
                  fmt.human(r.size) if r.size is not None else "-", _guard(r),
                  fmt.address(r.sp) if r.sp is not None else "-",
                  fmt.human(r.used) if r.used is not None else "-",
                  (fmt.percent(r.used, r.size), tok) if r.used is not None else "-",
                  peak, r.frames if r.frames is not None else "-", r.function or "??")
        out.table(t)
        for r in rows:
            if r.main and r.limit is not None:
                lim = "unlimited" if r.limit < 0 else fmt.human(r.limit)
                out.line(f"thread {r.num} is the main thread: [stack] is mapped from "
                         f"{fmt.address(r.mapped_low)} and may grow to {fmt.address(r.low)} "
                         f"(RLIMIT_STACK {lim})")
            elif r.main:
                out.line(f"thread {r.num} is the main thread: RLIMIT_STACK unknown, size is the "
                         f"[stack] mapping as now")
        for r in rows:
            for w in r.warnings:
                out.line([("warning: ", "warning"), (f"thread {r.num}: {w}", None)])


COMMANDS = (ThreadStacks,)
