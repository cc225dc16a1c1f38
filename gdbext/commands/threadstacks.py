"""threadstacks: every thread's stack, how much of it is in use, and how deep it has been."""

from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target
from ..views import explain
from ..views import threadstacks as stacks_views
from ..views.threadstacks import no_threads_message, short as _short
from .base import GdbextCommand
from .lazy_inferior import target_json, stack_rows


class ThreadSelection:
    """The thread numbers and ranges asked for, kept as ranges: '1-10000000' must not become
    ten million numbers; the rows are the existing threads that fall in a range."""

    def __init__(self, ranges, words):
        self.ranges = ranges  # [(low, high)] inclusive, in the order given
        self.words = words

    def __bool__(self):
        return bool(self.ranges)

    def __contains__(self, num: int) -> bool:
        return any(lo <= num <= hi for lo, hi in self.ranges)

    def unmatched(self, existing) -> list:
        """The words (numbers or ranges) that name no existing thread, as the user wrote them."""
        nums = sorted(set(existing))
        out = []
        for (lo, hi), word in zip(self.ranges, self.words):
            if not any(lo <= n <= hi for n in nums):
                out.append(word)
        return list(dict.fromkeys(out))


def parse_thread_list(words) -> ThreadSelection:
    """'2', '3-5' -> the ranges (2, 2), (3, 5); a UserError for anything else."""
    ranges, names = [], []
    for w in words or ():
        lo, sep, hi = w.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UserError(f"{_short(w)!r} is not a thread number or range (e.g. 2 or 2-4)") from None
        if a < 1 or b < a:
            raise UserError(f"{_short(w)!r} is not a thread number or range (e.g. 2 or 2-4)")
        ranges.append((a, b))
        names.append(f"{a}-{b}" if b > a else str(a))
    return ThreadSelection(ranges, names)


class ThreadStacks(GdbextCommand):
    name = "threadstacks"
    summary = "Show each thread's stack: bounds, guard, SP, bytes in use and peak use."
    details = (
        "THREAD: gdb thread numbers or ranges (2 4-6); all threads by default.\n"
        "Bounds come from glibc's struct pthread (stackblock, stackblock_size, guardsize)\n"
        "through libc's debug types, otherwise from the mapping that holds SP and the\n"
        "no-access mapping below it. The main thread's stack is the [stack] mapping and\n"
        "may grow down to the process's own RLIMIT_STACK (/proc/PID/limits).\n"
        "used = high - SP. peak = high - the lowest page of the stack the thread wrote,\n"
        "from /proc/PID/pagemap (a local live process only; '?' elsewhere).\n"
        "Warnings: use above 75%, SP in or below the guard (a stack overflow), SP on no\n"
        "known stack (an alternate signal stack or a user-allocated stack)."
    )

    def add_arguments(self, p):
        p.add_argument("threads", nargs="*", metavar="THREAD", help="gdb thread numbers or ranges")
        p.add_argument("--explain", action="store_true", help="after the output, what each kind shown means")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        wanted = parse_thread_list(args.threads)
        target = Target()
        rows = stack_rows(target, wanted)
        unmatched = wanted.unmatched(r.num for r in rows) if wanted else []
        if unmatched and not rows:
            raise UserError(no_threads_message(unmatched))
        if args.json:
            out.json(
                jsonout.document(
                    "threadstacks", target_json(target), **stacks_views.document_body(rows, unmatched)
                )
            )
            return
        if not rows:
            raise UserError("the process has no threads gdb can see")
        out.emit(stacks_views.table(rows, unmatched, target.pointer_size))
        if args.explain:
            out.emit(explain.threadstacks(rows))


COMMANDS = (ThreadStacks,)
