"""What kind of target the user has selected, and the facts every command needs about it."""

import contextlib
import os
from typing import Optional

from typing import Any, Callable, Dict, Hashable, NamedTuple, Tuple

import gdb

from ..model.targetkind import parse_info_target, parse_target_stack
from .errors import UserError
from .memory import GdbMemory, generation

_facts_cache: Dict[Tuple[int, int, Hashable], Any] = {}  # (generation, inferior num, key) -> value


def running_threads(inferior=None) -> list:
    """gdb numbers of the inferior's threads that are running (`continue &`, non-stop mode)."""
    inf = inferior or gdb.selected_inferior()
    try:
        return sorted(t.num for t in inf.threads() if t.is_valid() and t.is_running())
    except gdb.error:
        return []


def is_stopped(inferior=None) -> bool:
    """Whether every thread of the inferior is stopped: only then do its memory and registers
    hold still long enough to be read as one state."""
    return not running_threads(inferior)


def cached(key, compute):
    """Memoise a fact about the inferior for the rest of this stop.  While any of its threads
    runs nothing is kept: the next stop event may be far off and the memory changes before it."""
    inf = gdb.selected_inferior()
    if not is_stopped(inf):
        return compute()
    k = (generation(), inf.num, key)
    if k not in _facts_cache:
        if len(_facts_cache) > 256:
            _facts_cache.clear()
        # An earlier stop's facts are never asked for again: drop them before computing (a
        # heap model of a million chunks is 300 MiB, and heapsnap diff walks the heap again).
        for old in [x for x in _facts_cache if x[0] != k[0]]:
            del _facts_cache[old]
        _facts_cache[k] = compute()
    return _facts_cache[k]


def cached_already(key) -> bool:
    """Whether `cached(key, ...)` would answer without computing, at this stop."""
    inf = gdb.selected_inferior()
    return is_stopped(inf) and (generation(), inf.num, key) in _facts_cache


def _thread_list(nums) -> str:
    return (
        ("threads " + ", ".join(map(str, nums[:5])) + (", ..." if len(nums) > 5 else ""))
        if len(nums) > 1
        else f"thread {nums[0]}"
    )


def require_stopped(inferior=None) -> None:
    """A UserError when the selected thread, or any other thread of the process, is running:
    what is read then is a heap and a memory map changing under the reader."""
    inf = inferior or gdb.selected_inferior()
    running = running_threads(inf)
    if not running:
        return
    try:
        selected = gdb.selected_thread()
    except gdb.error:
        selected = None
    if selected is None or selected.num in running:
        lwp = selected.ptid[1] if selected is not None else 0
        unfinished = (
            _unfinished_stop(inf.pid, lwp) if inf.pid and lwp and connection_type(inf) == "native" else None
        )
        if unfinished:
            raise UserError(unfinished)
        raise UserError("the selected thread is running; interrupt it first (interrupt or Ctrl-C)")
    raise UserError(
        f"{_thread_list(running)} of the process "
        f"{'is' if len(running) == 1 else 'are'} running; interrupt "
        f"{'it' if len(running) == 1 else 'them'} first (interrupt -a)"
    )


def _task_states(pid: int) -> dict:
    """{LWP: state letter} from /proc/PID/task/*/stat (readable by anyone): 't' is stopped by
    the debugger, whatever gdb's own bookkeeping says.  Empty when it cannot be read."""
    states = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            states[int(tid)] = stat[stat.rindex(")") + 2 :][:1]
    except (OSError, ValueError):
        return {}
    return states


def _unfinished_stop(pid: int, lwp: int) -> Optional[str]:
    """Why gdb takes the selected thread for running though the kernel shows it stopped by the
    debugger, or None.  gdb 10 stops so when its libthread_db cannot read a process that is
    not dumpable ('Cannot find user-level thread for LWP'): the error ends its handling of the
    stop before it stops the other threads and marks the stopped one; 'interrupt' cannot help."""
    states = _task_states(pid)
    if states.get(lwp) not in ("t", "T"):
        return None
    from .memmaps import proc_maps_error  # the same rule closes /proc/PID/maps and mem

    others = sum(1 for t, st in states.items() if t != lwp and st not in ("t", "T"))
    why = proc_maps_error(f"/proc/{pid}")
    return (
        "gdb did not finish stopping the process: the kernel shows the selected thread "
        "stopped by the debugger, but gdb, after an error at the stop, takes it for running"
        + (f", and {others} other thread{'s' if others > 1 else ''} still run" if others else "")
        + (f"; it cannot read the process: {why}" if why else "")
    )


def _connection_type(inf) -> Optional[str]:
    conn = getattr(inf, "connection", None)  # gdb 11 and later
    if conn is not None:
        return conn.type
    if hasattr(gdb.Inferior, "connection"):
        return None  # a gdb that has connections, and this inferior has none: nothing runs
    # gdb before 11: ask gdb in words, the target stack first (it names the process target).
    # Both describe the selected inferior, the one every command looks at.
    try:
        return parse_target_stack(gdb.execute("maint print target-stack", to_string=True))
    except (gdb.error, ValueError):
        pass
    try:
        return parse_info_target(gdb.execute("info target", to_string=True))
    except gdb.error:
        return None


def connection_type(inferior=None) -> Optional[str]:
    """The kind of target the inferior runs on ("native", "core", "remote", ...), None when it
    runs on none (not started yet, or exited)."""
    return _connection_type(inferior or gdb.selected_inferior())


# Target -> the gap below its main thread's stack (mappings.stack_gap, which registers itself
# here: it reads the mappings, which need a Target), for GdbMemory never to read there
STACK_GAP: Optional[Callable[["Target"], Optional[Tuple[int, int]]]] = None


class Target:
    """The selected inferior, checked to be something gdbext can read."""

    def __init__(self, inferior=None):
        self.inferior = inferior or gdb.selected_inferior()
        ctype = _connection_type(self.inferior)
        if self.inferior.pid == 0 or ctype is None:
            raise UserError("the program is not running; start it or load a core file")
        self.kind = {"core": "core", "remote": "remote", "extended-remote": "remote"}.get(ctype, "live")
        self.pid = self.inferior.pid
        self.pointer_size = gdb.lookup_type("void").pointer().sizeof
        self.memory = GdbMemory(self.inferior, self.pointer_size, cache=is_stopped(self.inferior))
        if self.kind != "core" and STACK_GAP is not None:  # a core's stack cannot grow
            self.memory.stack_gap = lambda: STACK_GAP(self) if STACK_GAP is not None else None

    @property
    def local_proc(self) -> Optional[str]:
        """/proc/PID of a live local process, when it is readable."""
        if self.kind != "live":
            return None
        path = f"/proc/{self.pid}"
        return path if os.path.isdir(path) else None

    def symbol_address(self, name: str) -> Optional[int]:
        return symbol_address(name)

    def info(self, glibc: Optional[str] = None, symbols: bool = False) -> dict:
        return {"pid": self.pid, "kind": self.kind, "glibc": glibc, "symbols": symbols}


def symbol_address(name: str) -> Optional[int]:
    """Address of a global (full or minimal symbol), or None: absence is normal."""
    try:
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is not None and sym.is_variable:
            return int(sym.value().address)
    except (gdb.error, AttributeError, RuntimeError):
        pass
    try:
        return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'"))
    except gdb.error:
        return None


class EvaluationError(UserError):
    """gdb could not evaluate an expression; `reason` is gdb's own message."""

    def __init__(self, expression: str, reason: str):
        super().__init__(f"cannot evaluate {expression!r}: {reason}")
        self.expression = expression
        self.reason = reason


class Evaluated(NamedTuple):
    address: int
    object_type: Optional[str] = None  # a struct or union given by name: its type; the address is where it is


def evaluate(expression: str) -> Evaluated:
    """A gdb expression as an address: its value, or for an array, a struct or a union (an
    object, not an address: `main_arena`) where it is; an EvaluationError otherwise."""
    if not expression.strip():
        raise EvaluationError(expression, "it is empty; give an address expression")
    try:
        with _no_calls_in_the_program():
            return _evaluated(expression)
    except gdb.error as e:
        reason = str(e)
        if "may-call-functions" in reason:  # gdb's own words name its setting, not why
            reason = (
                "gdb would call a function in the program for it (a string literal's address "
                "is malloc'd there), and gdbext changes nothing in the program"
            )
        raise EvaluationError(expression, reason) from None


@contextlib.contextmanager
def _no_calls_in_the_program():
    """gdb's may-call-functions off while an argument is evaluated: an expression must never
    run code in the program (gdb 14 and later call malloc there to place a string literal)."""
    was = gdb.parameter("may-call-functions")
    if was:
        gdb.execute("set may-call-functions off", to_string=True)
    try:
        yield
    finally:
        if was:
            gdb.execute("set may-call-functions on", to_string=True)


def _evaluated(expression: str) -> Evaluated:
    object_type = None
    value = gdb.parse_and_eval(expression)
    if value is None:  # what gdb gives for an expression of nothing but spaces and the like
        raise gdb.error("it has no value")
    code = value.type.strip_typedefs().code
    if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and value.address is not None:
        object_type = str(value.type)
        value = value.address
    elif code == gdb.TYPE_CODE_ARRAY:
        value = value.address
        if value is None:
            raise gdb.error("an array gdb made (a string literal?) has no address")
    address = int(value.cast(gdb.lookup_type("unsigned long"))) if value.type.sizeof <= 8 else int(value)
    return Evaluated(address, object_type)


def evaluate_address(expression: str) -> int:
    """A gdb expression as an address, or an EvaluationError (a UserError) naming it."""
    return evaluate(expression).address
