"""allocwatch's state machine: per gdb inferior, the hooks in libc's allocator entry points,
the calls in flight per thread, and the site table (model/allocsites.py) they feed.

Each entry point (malloc, calloc, realloc, reallocarray, memalign, aligned_alloc,
posix_memalign, valloc, pvalloc, free: libc's own exported symbols, one hook per address, so
an alias is hooked once) has an internal breakpoint on its first instruction, where the
arguments are in rdi, rsi, rdx and the return address at [rsp].  The result is read on the
way back, one of two ways (`--returns`, measured by benchmarks/allocwatch_overhead.py):
  address  a lasting internal breakpoint at each return address seen (one per call site of
           the program); the call is matched by thread and stack pointer
  call     a breakpoint at the return address for this one call, matched the same way
  finish   a gdb FinishBreakpoint per call
A breakpoint for one call is spent once it fires, but it is not deleted there: gdb 10 leaves a
breakpoint deleted from its own stop() in the program (its int3: a SIGTRAP or SIGSEGV later),
and runs an event posted with gdb.post_event only once the program runs again, with the same
result.  A spent one stays inert until the next stop of an entry point's hook, the next stop
the user sees, or `off`, whichever comes first: each is a moment when the program is stopped
and the breakpoint deleted is not the one being handled.
A call made while the same thread is already inside an allocator call (realloc(NULL, n) calls
malloc) is the outer call's business and is not recorded.  Nothing is written to the
inferior and nothing is called in it; every breakpoint is removed on `off` and at exit.
"""

from typing import Dict, List, Optional, Set

import gdb

from ...model.allocentries import AllocatorCode, jumps_to
from ...model.allocoptions import AllocOptions
from ...model.allocsites import Call, Detection, SiteTable
from ...model.brklog import ALLOC_FUNCTIONS
from ..errors import UserError
from ..brkwatch.libccode import LibcInfo, find_libc
from ..brkwatch.running import is_x86_64, live_pid, read_u64, selected_inferior_num
from ...views.allocwatch import detection_line
from .sites import DIRECT, LIBC, SiteFinder

MASK = 0xFFFFFFFFFFFFFFFF
MAX_PENDING = 64  # calls in flight per thread (a deeper stack is a lost return: dropped)


class _Pending:
    __slots__ = ("ret", "sp_after", "call", "memptr", "finish")

    def __init__(self, ret, sp_after, call, memptr):
        self.ret, self.sp_after, self.call, self.memptr = ret, sp_after, call, memptr
        self.finish = None


class _Hook(gdb.Breakpoint):
    """An internal, silent breakpoint (or watchpoint) whose stop() hands over to the watcher
    and lets the program go on unless the watcher says to stop."""

    def __init__(self, spec, handler, *args, sweeps=False, **kw):
        self._handler = handler
        self._owner = selected_inferior_num()
        self._sweeps = sweeps  # an entry point's (or a jump's): deletes the spent breakpoints
        super().__init__(spec, *args, internal=True, **kw)
        self.silent = True

    def stop(self):
        handler = getattr(self, "_handler", None)
        if handler is None or selected_inferior_num() != self._owner:
            return False
        if self._sweeps:
            WATCHER.sweep(self._owner)
        return WATCHER.guard(handler, self)


class _Finish(gdb.FinishBreakpoint):
    """The return of one call (--returns finish)."""

    def __init__(self, frame, pending: _Pending):
        self._pending = pending
        self._owner = selected_inferior_num()
        super().__init__(frame, internal=True)
        self.silent = True

    def stop(self):
        if selected_inferior_num() != self._owner:
            return False
        if self._pending is None:
            return False  # spent, waiting to be deleted
        stop = WATCHER.guard(WATCHER.on_finish, self)
        WATCHER.spend(self)  # gdb deletes it only when stop() says stop
        return stop

    def out_of_scope(self):
        if self._pending is not None:
            WATCHER.guard(WATCHER.on_lost_finish, self)


class _CallReturn(gdb.Breakpoint):
    """The return of one call (--returns call): a breakpoint at its return address for this
    call only, matched by thread and stack pointer (another thread may pass the same address)
    and spent once it is reached (deleted later, see the module's text)."""

    def __init__(self, ret: int, pending: _Pending, lwp: int):
        self._pending: Optional[_Pending] = pending
        self._lwp = lwp
        self._owner = selected_inferior_num()
        super().__init__(f"*{ret:#x}", internal=True)
        self.silent = True

    def stop(self):
        if (
            self._pending is None
            or selected_inferior_num() != self._owner
            or gdb.selected_thread().ptid[1] != self._lwp
        ):
            return False
        return WATCHER.guard(WATCHER.on_call_return, self)


class _Inferior:
    """What allocwatch keeps for one gdb inferior (a fork kept under gdb is another)."""

    def __init__(self):
        self.table = SiteTable()
        self.pid: Optional[int] = None
        self.armed_pid: Optional[int] = None
        self.libc: Optional[LibcInfo] = None
        self.finder: Optional[SiteFinder] = None
        self.allocators: Optional[AllocatorCode] = None
        self.entries: List[gdb.Breakpoint] = []
        self.returns: Dict[int, gdb.Breakpoint] = {}  # return address -> its hook
        self.pending: Dict[int, List[_Pending]] = {}  # thread's lwp -> calls in flight
        self.watched: List[tuple] = []  # (pointer, watchpoint), oldest first
        self.reentering: Set[int] = set()  # threads jumping back to an entry point's start
        self.jumps: List[gdb.Breakpoint] = []  # hooks on those jumps
        self.spent: List[gdb.Breakpoint] = []  # per-call breakpoints that fired, to delete
        self.waiting = ""
        self.seen = 0  # allocations counted for --sample
        self.notes: List[str] = []
        self.frame_walks = 0


def _delete(bps) -> None:
    for b in list(bps):
        try:
            if b.is_valid():
                b.delete()
        except (gdb.error, RuntimeError):
            pass


class Watcher:
    def __init__(self):
        self.on = False
        self.options = AllocOptions()
        self.inferiors: Dict[int, _Inferior] = {}
        self.errors = 0
        self.last_error = ""
        self._connected = False

    def state(self, num: Optional[int] = None) -> _Inferior:
        num = selected_inferior_num() if num is None else num
        if num not in self.inferiors:
            self.inferiors[num] = _Inferior()
        return self.inferiors[num]

    @property
    def table(self) -> SiteTable:
        return self.state().table

    # ---- on and off ----------------------------------------------------------------------
    def turn_on(self, options: AllocOptions, existing) -> str:
        """`existing`: a function that returns the user pointers of the chunks in use now (or
        None when the heap cannot be read), called only when a process is there."""
        pid = live_pid()
        if pid is not None and not is_x86_64():
            raise UserError("allocwatch supports x86-64 processes only")
        self._connect()
        st = self.state()
        self.disarm_all()
        self.on, self.options = True, options
        if pid is None:
            st.waiting = "waiting for the program to start"
            return "on; the hooks are set when libc is loaded, before its first malloc"
        if st.pid != pid:
            self._new_process(st, pid)
        st.table.sampled = options.sample > 1 or options.sizes is not None
        pointers = existing()
        st.table.begin(pointers)
        if pointers is None:
            st.notes.append(
                "the heap could not be read at 'on': a free of a pointer not seen is not reported"
            )
        self._arm(st, pid)
        if st.armed_pid is None:
            return f"on; {st.waiting}"
        return (
            f"on: {len(st.entries)} entry points hooked; "
            + _plural(len(st.table.before), "chunk")
            + (" in use before tracking")
        )

    def turn_off(self) -> str:
        was = self.on
        self.on = False
        self.disarm_all()
        return "off; the site table is kept, as it was at the last event" if was else "already off"

    def _new_process(self, st: _Inferior, pid: int) -> None:
        if st.pid is not None:
            dropped = st.table.totals.events
            st.notes = [f"the table of process {st.pid} was dropped at a new run"] if dropped else []
        st.table = SiteTable(sampled=self.options.sample > 1 or self.options.sizes is not None)
        st.pid = pid
        st.seen = 0

    def _connect(self):
        if self._connected:
            return
        gdb.events.new_objfile.connect(self._on_new_objfile)
        gdb.events.exited.connect(self._on_exited)
        gdb.events.clear_objfiles.connect(self._on_clear_objfiles)
        gdb.events.stop.connect(self._on_stop)
        self._connected = True

    def _arm(self, st: _Inferior, pid: int) -> None:
        libc, why = find_libc(pid)
        if libc is None:
            st.waiting = why
            return
        st.libc, st.finder, st.allocators = libc, SiteFinder(libc, pid), libc.allocators
        seen: Dict[int, str] = {}
        for name in ALLOC_FUNCTIONS:
            addr, size = libc.syms.get(name, (0, 0))
            if addr and addr not in seen:
                seen[addr] = name
        if not any(n == "free" for n in seen.values()) or not any(n == "malloc" for n in seen.values()):
            st.waiting = f"no malloc or free symbol in {libc.path}"
            return
        for addr, name in seen.items():
            handler = self._entry_handler(name)
            st.entries.append(_Hook(f"*{addr:#x}", handler, sweeps=True))
        for at in _reentries(libc, set(seen)):
            st.jumps.append(_Hook(f"*{at:#x}", self.on_reenter, sweeps=True))
        st.armed_pid, st.waiting = pid, ""

    def _entry_handler(self, name: str):
        if name == "free":
            return self.on_free
        return lambda bp: self.on_alloc(name, bp)

    def disarm(self, st: _Inferior) -> None:
        _delete(st.entries)
        _delete(st.jumps)
        _delete(st.returns.values())
        _delete(w for _, w in st.watched)
        for stack in st.pending.values():
            _delete(p.finish for p in stack if p.finish is not None)
        _delete(st.spent)
        st.entries, st.jumps, st.returns, st.watched, st.pending, st.spent = [], [], {}, [], {}, []
        st.reentering = set()
        st.armed_pid = None

    def disarm_all(self) -> None:
        for st in self.inferiors.values():
            self.disarm(st)
            st.waiting = ""

    # ---- per-call breakpoints ------------------------------------------------------------
    def spend(self, bp) -> None:
        """`bp` (a _CallReturn or _Finish) fired: inert from now on, deleted at the next sweep."""
        bp._pending = None
        self.state(bp._owner).spent.append(bp)

    def sweep(self, num: Optional[int] = None) -> None:
        """Deletes the spent per-call breakpoints of inferior `num` (all when None): called only
        where the program is stopped and from no spent breakpoint's own stop()."""
        for n, st in self.inferiors.items():
            if st.spent and (num is None or n == num):
                spent, st.spent = st.spent, []
                _delete(spent)

    # ---- gdb's events ----------------------------------------------------------------------
    def _on_stop(self, event):
        """A stop the user sees (a detection, Ctrl-C, a breakpoint of theirs): the program waits."""
        try:
            self.sweep()
        except Exception as e:
            self._error(e)

    def _on_new_objfile(self, event):
        if not self.on:
            return
        try:
            pid = live_pid()
            st = self.state()
            if pid is None or st.armed_pid == pid:
                if st.finder is not None and st.libc is not None and pid is not None:
                    st.finder = SiteFinder(st.libc, pid)  # dlopen: code moved
                return
            if st.armed_pid is not None:  # another process (a kill gdb told no one of)
                self.disarm(st)
            if st.pid != pid:
                self._new_process(st, pid)
                st.table.begin(())  # libc appears before its first malloc: nothing came before
            self._arm(st, pid)
        except Exception as e:  # an event handler must never raise into gdb
            self._error(e)

    def _on_clear_objfiles(self, event):
        """The process executes a new program (or gdb drops its symbols): the hooks sit at the
        old libc's addresses, which may hold anything now.  They go; the new libc arms again."""
        try:
            progspace = getattr(event, "progspace", None)
            if progspace is not None and progspace != gdb.selected_inferior().progspace:
                return
            st = self.state()
            if st.armed_pid is None:
                return
            self.disarm(st)
            st.notes.append(f"process {st.pid} executed a new program: its table starts again")
            st.pid = None  # the next libc is a new process's, for the table
            if self.on:
                st.waiting = "waiting for the new program's libc"
        except Exception as e:
            self._error(e)

    def _on_exited(self, event):
        try:
            inf = getattr(event, "inferior", None)
            st = self.state(inf.num if inf is not None else None)
            if st.armed_pid is not None:
                st.notes.append(f"process {st.pid} exited; the table is as it was at its last event")
                self.disarm(st)
                if self.on:
                    st.waiting = "waiting for the program to start"
        except Exception as e:
            self._error(e)

    # ---- one event ---------------------------------------------------------------------------
    def guard(self, handler, bp) -> bool:
        """Runs inside gdb's breakpoint check: never raise; stop only on a detection."""
        try:
            return bool(handler(bp))
        except Exception as e:
            self._error(e)
            return False

    def _error(self, e):
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"

    def _report(self, d: Detection) -> bool:
        gdb.write(detection_line(d) + "\n")  # between prompts: the view says it, the hook writes it
        return stop_on_detection()

    def on_reenter(self, bp) -> bool:
        """A jump from inside an entry point back to an entry point's start (2.43's free after
        making the thread's tcache): the next entry on this thread is the same call."""
        self.state().reentering.add(gdb.selected_thread().ptid[1])
        return False

    def on_free(self, bp) -> bool:
        frame = gdb.newest_frame()
        st = self.state()
        thread = gdb.selected_thread()
        if st.reentering and thread.ptid[1] in st.reentering:
            st.reentering.discard(thread.ptid[1])
            return False
        p = int(frame.read_register("rdi")) & MASK
        if p == 0:
            return False
        finder = st.finder
        sp = int(frame.read_register("rsp")) & MASK
        ret = read_u64(sp) or 0
        if finder is None or self._nested(st, thread.ptid[1], sp, ret):
            return False
        site, how = finder.caller(ret)
        st.frame_walks += how != DIRECT
        call = Call(st.table.next_event(), "free", thread.num, site, pointer=p)
        found = st.table.free(call, by_libc=how == LIBC)
        if found is not None:
            return self._report(found)
        if self.options.uaf:
            self._watch(st, p)
        return False

    def on_alloc(self, name: str, bp) -> bool:
        frame = gdb.newest_frame()
        st = self.state()
        finder = st.finder
        if finder is None:
            return False
        thread = gdb.selected_thread()
        lwp = thread.ptid[1]
        if st.reentering and lwp in st.reentering:
            st.reentering.discard(lwp)
            return False
        a0, a1, a2, sp = (int(frame.read_register(r)) & MASK for r in ("rdi", "rsi", "rdx", "rsp"))
        ret = read_u64(sp) or 0
        if self._nested(st, lwp, sp, ret):
            return False
        old, memptr = None, None
        if name == "malloc" or name in ("valloc", "pvalloc"):
            size = a0
        elif name == "calloc":
            size = (a0 * a1) & MASK
        elif name == "realloc":
            old, size = a0, a1
        elif name == "reallocarray":
            old, size = a0, (a1 * a2) & MASK
        elif name == "posix_memalign":
            memptr, size = a0, a2
        else:  # memalign, aligned_alloc
            size = a1
        table = st.table
        opts = self.options
        st.seen += 1
        if not opts.wants(size) or (opts.sample > 1 and st.seen % opts.sample):
            table.skipped()
            if old:
                table.untrack(old)  # realloc'd out of sight: no longer known
            return False
        site, how = finder.caller(ret)
        st.frame_walks += how != DIRECT
        call = Call(table.next_event(), name, thread.num, site, size=size, pointer=old)
        if opts.bt:
            call.backtrace = finder.backtrace(opts.bt)
        found = table.check_pointer(call, old, realloc=True) if old else None
        pending = _Pending(ret, sp + 8, call, memptr)
        stack = st.pending.setdefault(lwp, [])
        if len(stack) >= MAX_PENDING:
            del stack[0]
        stack.append(pending)
        if opts.returns == "finish":
            pending.finish = _Finish(frame, pending)
        elif opts.returns == "call":
            pending.finish = _CallReturn(ret, pending, lwp)
        elif ret not in st.returns:
            st.returns[ret] = _Hook(f"*{ret:#x}", self.on_return)
        if found is not None:
            return self._report(found)
        return False

    def _nested(self, st: _Inferior, lwp: int, sp: int, ret: int) -> bool:
        """Whether this call is made by an allocator call in progress (realloc(NULL, n) calls
        malloc, posix_memalign calls malloc for a small alignment): its return address is in
        an entry point's code (model/allocentries.py), or the thread is deeper on its stack
        than a call in flight.  Calls in flight that the stack has left (a lost return) go."""
        if st.allocators is not None and st.allocators.entry_at(ret - 1) is not None:
            return True
        stack = st.pending.get(lwp)
        if not stack:
            return False
        while stack and sp >= stack[-1].sp_after - 8:  # as deep as that call's entry, or above
            stale = stack.pop()
            if stale.finish is not None:
                _delete((stale.finish,))
        return bool(stack)

    def on_return(self, bp) -> bool:
        st = self.state()
        stack = st.pending.get(gdb.selected_thread().ptid[1])
        if not stack:
            return False
        frame = gdb.newest_frame()
        sp = int(frame.read_register("rsp")) & MASK
        top = stack[-1]
        if top.sp_after != sp or top.ret != frame.pc():
            return False
        stack.pop()
        return self._returned(st, top, int(frame.read_register("rax")) & MASK)

    def on_finish(self, bp) -> bool:
        st = self.state()
        p = bp._pending
        stack = st.pending.get(gdb.selected_thread().ptid[1])
        if stack and p in stack:
            stack.remove(p)
        rax = int(gdb.newest_frame().read_register("rax")) & MASK
        return self._returned(st, p, rax)

    def on_call_return(self, bp) -> bool:
        p = bp._pending
        frame = gdb.newest_frame()
        if int(frame.read_register("rsp")) & MASK != p.sp_after:
            return False  # the same address reached deeper or higher (recursion): not this call
        st = self.state()
        stack = st.pending.get(bp._lwp)
        if stack and p in stack:
            stack.remove(p)
        self.spend(bp)
        return self._returned(st, p, int(frame.read_register("rax")) & MASK)

    def on_lost_finish(self, bp) -> bool:
        for stack in self.state().pending.values():
            if bp._pending in stack:
                stack.remove(bp._pending)
        return False

    def _returned(self, st: _Inferior, p: _Pending, rax: int) -> bool:
        call = p.call
        if p.memptr is not None:  # posix_memalign returns an error number, the block in *memptr
            call.result = (read_u64(p.memptr) or 0) if rax == 0 else 0
        else:
            call.result = rax
        st.table.allocated(call)
        if st.watched and call.result:
            # the new block may hold a watched chunk's first word (merged with its neighbours)
            end = call.result + (call.size or 0) + 16
            for q in [q for q, _ in st.watched if call.result <= q < end]:
                self._unwatch(st, q)
        return False

    # ---- use after free ----------------------------------------------------------------------
    def _watch(self, st: _Inferior, p: int) -> None:
        self._unwatch(st, p)
        while len(st.watched) >= self.options.uaf:
            _delete((st.watched.pop(0)[1],))
        try:
            w = _Hook(f"*(long *) {p:#x}", self.on_touch, gdb.BP_WATCHPOINT, gdb.WP_ACCESS)
        except (gdb.error, RuntimeError) as e:
            self._error(e)
            return
        if w.type != gdb.BP_ACCESS_WATCHPOINT:  # a software watchpoint would single-step all
            _delete((w,))
            return
        w._pointer = p
        st.watched.append((p, w))

    def _unwatch(self, st: _Inferior, p: int) -> None:
        for i, (q, w) in enumerate(st.watched):
            if q == p:
                _delete((w,))
                del st.watched[i]
                return

    def on_touch(self, bp) -> bool:
        st = self.state()
        frame = gdb.newest_frame()
        pc = frame.pc()
        if st.finder is None or st.finder.in_system(pc):
            return False  # libc's own use of a free chunk (its list links)
        p = bp._pointer
        allocated = st.table.allocation_of(p)
        freed = st.table.freed.get(p)
        site = st.finder.site_at(pc)  # a watchpoint stops after the access: pc - 1 is in it
        call = Call(st.table.next_event(), "access", gdb.selected_thread().num, site, pointer=p)
        d = Detection("use-after-free", p, call, allocated, freed[1] if freed else None, pc)
        st.table.record(d)
        return self._report(d)

    # ---- status ------------------------------------------------------------------------------
    def status(self) -> dict:
        st = self.state()
        t = st.table
        return {
            "on": self.on,
            "options": self.options.to_json(),
            "pid": st.pid,
            "inferior": selected_inferior_num(),
            "armed": st.armed_pid is not None,
            "waiting": st.waiting or None,
            "entry_points": len(st.entries),
            "reentry_jumps": len(st.jumps),
            "return_hooks": len(st.returns),
            "watched": [p for p, _ in st.watched],
            "events": t.totals.events,
            "allocations": t.totals.allocations,
            "frees": t.totals.frees,
            "libc_frees": t.totals.libc_frees,
            "failed": t.totals.failed,
            "skipped": t.totals.skipped,
            "by_function": dict(t.totals.by_function),
            "live": len(t.live),
            "before_tracking": len(t.before),
            "before_known": t.before_known,
            "detections": len(t.detections),
            "frame_walks": st.frame_walks,
            "stop_on_detection": stop_on_detection(),
            "notes": list(st.notes),
            "errors": self.errors,
            "last_error": self.last_error or None,
        }


def _reentries(libc: LibcInfo, entries: Set[int]) -> List[int]:
    """Where the entry points' own code jumps back to an entry point's start."""
    arch = gdb.selected_inferior().architecture()
    out: List[int] = []
    for start, end, _ in libc.allocators.spans:
        try:
            insns = [(i["addr"], i["length"], i["asm"]) for i in arch.disassemble(start, end - 1)]
        except gdb.error:
            continue
        out.extend(jumps_to(insns, entries))
    return out


def stop_on_detection() -> bool:
    """`set gdbext allocwatch-stop`: stop the program at a detection (on), or only say it."""
    try:
        return bool(gdb.parameter("gdbext allocwatch-stop"))
    except (gdb.error, RuntimeError):
        return True


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


WATCHER = Watcher()
