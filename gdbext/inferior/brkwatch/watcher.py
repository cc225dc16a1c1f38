"""brkwatch's state machine: per gdb inferior, what is armed, the log, and what decoding
needs between events; arming the cheapest way that works, following gdb's events (a new
libc, an exec, a fork kept under gdb, an exit, a deleted catchpoint) and turning each hook's
stop into one event of the log."""

from typing import Dict, List, Optional, Tuple

import gdb

from ...model import brklog as M
from ...model.brkoptions import Options
from ...model.brksyscalls import ENOSYS_RAX, MAPPING_CALLS, NR, decode_mapping_call
from ...model.libcversion import looks_like_libc
from ...views.brkwatch import said, stop_line
from ..errors import UserError
from ..process import connection_type
from .callers import add_context
from .catchpoint import CONDITION, CatchCondition, SyscallCatchpoint
from .hooks import Hook, delete_hooks
from .running import (
    ARGS,
    is_selected_progspace,
    is_x86_64,
    live_pid,
    proc_maps,
    read_u64,
    registers,
    selected_inferior_num,
    start_brk,
)
from .libccode import LibcInfo, Unavailable, after_syscalls, failure_branch, find_libc, syscall_sites
from .threshold import MmapThreshold

NOT_READABLE_YET = (
    "the process's memory is not readable yet (a fork gdb keeps, still being "
    "set up); the hooks are set at the next prompt with it selected"
)


class _Inferior:
    """What brkwatch keeps for one gdb inferior: its log, its hooks (breakpoints sit at the
    addresses of one process's libc) and what decoding needs between events.  A fork kept
    under gdb (detach-on-fork off) is another inferior: its events must not land in, or
    clear, the parent's log."""

    def __init__(self):
        self.log = M.BrkLog()
        self.method: Optional[str] = None  # what is armed now
        self.method_text = ""
        self.why_not: List[str] = []  # why a cheaper method was not used
        self.hooks: List[gdb.Breakpoint] = []
        self.armed_pid: Optional[int] = None
        self.libc: Optional[LibcInfo] = None
        self.waiting = ""  # why nothing is armed yet
        self.execs = 0  # programs this process executed since its log began
        self.reset_process_state()

    def reset_process_state(self):
        self.cur_brk: Optional[int] = None
        self.curbrk_addr: Optional[int] = None
        self.pending: Dict[int, tuple] = {}
        self.files = M.FileRanges()
        self.threshold = MmapThreshold()


def _of_selected_inferior(name: str):
    """An attribute of the selected inferior's state: a hook's stop() and gdb's events run with
    the inferior they concern selected, and the commands show the one the user selected."""
    return property(
        lambda self: getattr(self.inferior_state(), name),
        lambda self, value: setattr(self.inferior_state(), name, value),
    )


class Watcher:
    log = _of_selected_inferior("log")
    method = _of_selected_inferior("method")
    method_text = _of_selected_inferior("method_text")
    why_not = _of_selected_inferior("why_not")
    hooks = _of_selected_inferior("hooks")
    armed_pid = _of_selected_inferior("armed_pid")
    libc = _of_selected_inferior("libc")
    waiting = _of_selected_inferior("waiting")
    execs = _of_selected_inferior("execs")
    cur_brk = _of_selected_inferior("cur_brk")
    curbrk_addr = _of_selected_inferior("curbrk_addr")
    pending = _of_selected_inferior("pending")
    files = _of_selected_inferior("files")
    threshold = _of_selected_inferior("threshold")

    def __init__(self):
        self.on = False
        self.options = Options()
        self.inferiors: Dict[int, _Inferior] = {}
        self.catchpoint = None  # one `catch syscall` serves every inferior
        self.errors = 0
        self.last_error = ""
        self._connected = False
        self._function = None

    def inferior_state(self, num: Optional[int] = None) -> _Inferior:
        num = selected_inferior_num() if num is None else num
        if num not in self.inferiors:
            self.inferiors[num] = _Inferior()
        return self.inferiors[num]

    def _reset_process_state(self):
        self.inferior_state().reset_process_state()

    # ---- turning on and off -----------------------------------------------------------
    def turn_on(self, options: Options) -> str:
        if not is_x86_64() and live_pid() is not None:
            raise UserError("brkwatch supports x86-64 processes only")
        self._connect()
        changed = self.on and options != self.options
        self.disarm_all()
        self.on, self.options = True, options
        self.why_not = []
        pid = live_pid()
        if pid is None:
            self.waiting = "waiting for the program to start"
            core = ""
            try:
                if connection_type() == "core":
                    core = " (a core file does not run: 'run' starts the program)"
            except (gdb.error, RuntimeError):
                pass
            return "on; the hooks are set when the program starts" + core
        self.arm()
        what = "options changed; " if changed else ""
        if self.method is None:
            return f"{what}on; {self.waiting}"
        return f"{what}on ({self.method_text})"

    def turn_off(self) -> str:
        was = self.on
        self.on = False
        self.disarm_all()
        for state in self.inferiors.values():
            state.waiting = ""
        return "off; the log is kept ('brkwatch log')" if was else "already off"

    def _connect(self):
        if self._connected:
            return
        gdb.events.new_objfile.connect(self._on_new_objfile)
        gdb.events.exited.connect(self._on_exited)
        if hasattr(gdb.events, "free_objfile"):
            gdb.events.free_objfile.connect(self._on_free_objfile)
        gdb.events.clear_objfiles.connect(self._on_clear_objfiles)
        gdb.events.breakpoint_deleted.connect(self._on_breakpoint_deleted)
        gdb.events.new_inferior.connect(self._on_new_inferior)
        if hasattr(gdb.events, "before_prompt"):
            gdb.events.before_prompt.connect(self._on_before_prompt)
        self._function = CatchCondition(lambda: self.dispatch(self.on_catch, "catch syscall"))
        self._connected = True

    # ---- arming -------------------------------------------------------------------------
    def arm(self):
        pid = live_pid()
        if pid is None:
            self.waiting = "waiting for the program to start"
            return
        if self.armed_pid == pid and self.method is not None:
            return
        if self.log.pid is not None and self.log.pid != pid:
            n = self.log.summary.events
            note = (
                f"log cleared at a new run (process {pid}); {n} event(s) of process "
                f"{self.log.pid} were dropped"
            )
            self.log.clear(note, pid)
            self.execs = 0
            if n:
                gdb.write(said(note) + "\n")
        self.log.pid = pid
        if self.armed_pid != pid:
            self._reset_process_state()
        if self.log.start_brk is None:
            self.log.start_brk = start_brk(pid)
        libc, why = find_libc(pid)
        method = self.options.method
        if libc is None and why == "libc is not loaded yet" and method != "syscall":
            self.waiting = why
            return
        if libc is not None and method != "syscall" and libc.ranges and read_u64(libc.ranges[0][0]) is None:
            # gdb 10 announces a kept fork's objfiles before it can read the child's memory:
            # the hooks could not be made (and its syscall catchpoint stops nothing there).
            self.waiting = NOT_READABLE_YET
            return
        self.libc = libc
        if libc is not None:
            self._seed(pid, libc)
        self._note_break(pid)
        self._check_catchpoint()
        if self.catchpoint is not None:
            self.method, self.armed_pid, self.waiting = "syscall", pid, ""  # kept from the last run
            return
        order = {
            "auto": ("watch", "break", "syscall"),
            "watch": ("watch", "break", "syscall"),
            "break": ("break", "syscall"),
            "syscall": ("syscall",),
        }[method]
        if libc is None:
            if method != "syscall":
                self.why_not.append(f"watch, break: {why}")
            order = ("syscall",)
        for m in order:
            try:
                text = getattr(self, f"_arm_{m}")()
            except (Unavailable, gdb.error) as e:
                self.why_not.append(f"{m}: {e}")
                self.disarm()
                continue
            self.method, self.method_text, self.armed_pid = m, text, pid
            self.waiting = ""
            return
        self.waiting = "no way to watch the break: " + "; ".join(self.why_not)
        if self.execs:
            self.log.notes.append(f"the watch was lost after the exec: {self.waiting}")

    def _note_break(self, pid: int):
        """The break as it is when the watch starts, so that the heap total is known from the
        first event on, not only after a brk event: libc's __curbrk, or the kernel's start_brk
        when the process has no [heap] yet (the break has not moved since exec)."""
        s = self.log.summary
        if s.last_brk is not None or self.log.start_brk is None:
            return
        if self.cur_brk:
            s.last_brk = self.cur_brk
        elif not any(m.path == "[heap]" for m in proc_maps(pid)):
            s.last_brk = self.log.start_brk

    def _seed(self, pid: int, libc: LibcInfo):
        self.files = _file_ranges(pid)
        cb = libc.syms.get("__curbrk")
        self.curbrk_addr = cb[0] if cb else None
        if self.cur_brk is None and self.curbrk_addr:
            v = read_u64(self.curbrk_addr)
            self.cur_brk = v or None
        self.threshold.find_with_symbols(libc)

    def _need(self, name: str, *alts: str) -> Tuple[int, int]:
        if self.libc is None:
            raise Unavailable(f"no symbol {name} in libc")
        return self.libc.need(name, *alts)

    def _hook(self, address: int, handler, source: str):
        self.hooks.append(_silent(Hook(f"*{address:#x}", self.dispatch, handler, source)))

    def _arm_raw_and_maps(self) -> str:
        parts = []
        try:
            start, size = self._need("syscall")
            sites = syscall_sites(start, size)
        except Unavailable:
            sites = []
        for at, after in sites:
            self._hook(at, self.on_raw_pre, "syscall()")
            self._hook(after, self.on_raw_post, "syscall()")
        if sites:
            parts.append("breakpoints around the system call in syscall()")
        if self.options.mmap:
            for name, alt, handler in (
                ("__mmap", "mmap", self.on_mmap),
                ("__munmap", "munmap", self.on_munmap),
                ("__mremap", "mremap", self.on_mremap),
            ):
                for after in after_syscalls(self.libc, name, alt):
                    self._hook(after, handler, name.strip("_"))
            parts.append("breakpoints after the system call in mmap, munmap and mremap")
        return "; ".join(parts)

    def _arm_watch(self) -> str:
        if self.execs:
            raise Unavailable(
                "the process executed a new program: gdb keeps its copy of the "
                "debug registers across an exec, which the kernel cleared, so a "
                "watchpoint at an address watched before would never fire"
            )
        if not self.curbrk_addr:
            raise Unavailable("no __curbrk symbol in libc")
        start, size = self._need("__brk", "brk")
        fail = failure_branch(start, size)
        if fail is None:
            raise Unavailable("__brk has no failure branch brkwatch recognises")
        if any(
            b.type in (gdb.BP_HARDWARE_WATCHPOINT, gdb.BP_READ_WATCHPOINT, gdb.BP_ACCESS_WATCHPOINT)
            for b in gdb.breakpoints() or ()
            if b.is_valid()
        ):
            raise Unavailable("the user's own hardware watchpoints may need every debug register")
        try:
            hook = Hook(
                f"*(void **) {self.curbrk_addr:#x}",
                self.dispatch,
                self.on_brk_watch,
                "libc __curbrk",
                gdb.BP_WATCHPOINT,
                gdb.WP_WRITE,
            )
        except (gdb.error, RuntimeError) as e:
            raise Unavailable(f"no hardware watchpoint ({e})") from None
        self.hooks.append(_silent(hook))
        if hook.type != gdb.BP_HARDWARE_WATCHPOINT:  # a software watchpoint single-steps everything
            raise Unavailable("gdb can only make a software watchpoint here")
        self._hook(fail, self.on_brk_refused, "libc __brk")
        extra = self._arm_raw_and_maps()
        return "hardware watchpoint on libc's __curbrk, breakpoint on __brk's failure branch" + (
            f"; {extra}" if extra else ""
        )

    def _arm_break(self) -> str:
        for after in after_syscalls(self.libc, "__brk", "brk"):
            self._hook(after, self.on_brk_break, "libc __brk")
        extra = self._arm_raw_and_maps()
        return "breakpoint after the system call in libc's __brk" + (f"; {extra}" if extra else "")

    def _arm_syscall(self) -> str:
        nrs = [NR["brk"]] + (list(MAPPING_CALLS) if self.options.mmap else [])
        self.catchpoint = SyscallCatchpoint.create(nrs, CONDITION, silent=not self.options.stop)
        names = "brk" + (", mmap, munmap, mremap" if self.options.mmap else "")
        return (
            f"catchpoint {self.catchpoint.number} on the system calls {names} "
            f"(every system call of the program stops in gdb while it exists)"
        )

    def disarm(self, state: Optional[_Inferior] = None):
        """Removes one inferior's hooks (the selected one's by default); the syscall catchpoint
        only when no other inferior is watched through it."""
        state = state or self.inferior_state()
        delete_hooks(state.hooks)
        state.hooks = []
        others = [st for st in self.inferiors.values() if st is not state and st.method == "syscall"]
        if self.catchpoint is not None and not others:
            self._delete_catchpoint()
        state.method = None
        state.method_text = ""
        state.armed_pid = None
        state.pending = {}

    def disarm_all(self):
        for state in list(self.inferiors.values()):
            state.method = None  # the catchpoint goes with the last one
        for state in list(self.inferiors.values()):
            self.disarm(state)
        if self.catchpoint is not None:
            self._delete_catchpoint()

    def _delete_catchpoint(self):
        cp, self.catchpoint = self.catchpoint, None
        try:
            if cp.is_valid():
                cp.delete()
        except (gdb.error, RuntimeError):
            pass

    # ---- gdb events ---------------------------------------------------------------------
    def _on_new_objfile(self, event):
        if not self.on:
            return
        try:
            pid = live_pid()
            if pid is None:
                return
            if self.armed_pid == pid and self.method is not None:
                if self.libc is None:  # the catchpoint went in before libc was loaded
                    libc, _ = find_libc(pid)
                    if libc is not None:
                        self.libc = libc
                        self._seed(pid, libc)
                elif self.threshold.address is None:
                    self.threshold.find_with_symbols(self.libc)  # its debug info may come later
                # dlopen maps files through ld.so, which the hooks do not see
                self.files = _file_ranges(pid)
                return
            self.arm()
        except Exception as e:  # an event handler must never raise into gdb
            self._error(e)

    def _on_free_objfile(self, event):
        try:
            name = getattr(getattr(event, "objfile", None), "filename", "") or ""
            if self.method in ("watch", "break") and looks_like_libc(name):
                self.disarm()
                self.waiting = "libc was unloaded"
        except Exception as e:
            self._error(e)

    def _on_clear_objfiles(self, event):
        try:
            if not is_selected_progspace(getattr(event, "progspace", None)):
                return  # another inferior's: a fork kept under gdb gets a program space of its own
            pid = live_pid()
            if self.on and pid is not None and self.log.pid == pid:
                self._after_exec(pid)  # the process gdb watched loads a new program
            elif self.method in ("watch", "break"):
                self.disarm()
        except Exception as e:
            self._error(e)

    def _after_exec(self, pid: int):
        """The process executed a new program: a new libc and a new heap.  The hooks on the old
        libc are gone; they are set again when the new libc is loaded (the catchpoint stays)."""
        n = self.log.summary.events
        if self.method in ("watch", "break"):
            self.disarm()
        self.execs += 1
        self._reset_process_state()
        self.libc = None
        start = start_brk(pid)
        where = f"; its heap starts at {start:#x}" if start else ""
        self.log.new_program(
            f"process {pid} executed a new program after event #{n}{where}; "
            "brkwatch follows it in the new program's libc",
            start,
        )
        self.waiting = "waiting for the new program's libc"

    def _on_before_prompt(self):
        """Arm the selected inferior that could not be armed when its libc was announced
        (NOT_READABLE_YET): it is stopped now and the user may resume it next."""
        try:
            if self.on and self.method is None and self.waiting == NOT_READABLE_YET:
                self.arm()
        except Exception as e:  # an event handler must never raise into gdb
            self._error(e)

    def _on_new_inferior(self, event):
        """A fork gdb keeps (detach-on-fork off) is a new inferior.  gdb 13's syscall catchpoint
        stops no system call of the parent after that: say so in the parent's log."""
        try:
            child = getattr(event, "inferior", None)
            parent = gdb.selected_inferior()
            if child is None or child.num == parent.num or not self.on:
                return
            state = self.inferior_state(parent.num)
            if state.method != "syscall" or state.armed_pid is None:
                return
            note = (
                f"process {state.armed_pid} forked and gdb keeps the child (inferior "
                f"{child.num}): gdb's syscall catchpoint may stop no more system calls of "
                "either process, whose brk changes may be missing from here on "
                "('brkwatch on --method break' does not depend on it)"
            )
            state.log.notes.append(note)
            self.inferior_state(child.num).log.notes.append(note)
            gdb.write(said(note) + "\n")
        except Exception as e:
            self._error(e)

    def _on_exited(self, event):
        try:
            inf = getattr(event, "inferior", None)
            state = self.inferior_state(inf.num if inf is not None else None)
            code = getattr(event, "exit_code", None)
            if state.log.pid is not None and self.on:
                state.log.notes.append(
                    f"process {state.log.pid} exited" + (f" with code {code}" if code is not None else "")
                )
            if state.method in ("watch", "break"):
                self.disarm(state)
                state.waiting = "waiting for the program to start"
            elif state.method == "syscall":
                state.armed_pid = None  # the catchpoint carries over to the next run
        except Exception as e:
            self._error(e)

    def _on_breakpoint_deleted(self, bp):
        try:
            if self.catchpoint is not None and bp.number == self.catchpoint.number:
                self._lost_catchpoint()
        except Exception as e:
            self._error(e)

    def _lost_catchpoint(self):
        self.catchpoint = None
        for state in self.inferiors.values():
            if state.method == "syscall":
                state.method = None
                state.method_text = ""
                state.armed_pid = None
                state.waiting = "the syscall catchpoint was deleted; 'brkwatch on' sets it again"

    def _check_catchpoint(self):
        """gdb before 13 tells no one when a catchpoint is deleted: look before reporting."""
        if self.catchpoint is not None and not self.catchpoint.is_valid():
            self._lost_catchpoint()

    # ---- one event ----------------------------------------------------------------------
    def dispatch(self, handler, source) -> bool:
        """Runs inside gdb's breakpoint check: record, never raise, stop only if asked."""
        try:
            frame = gdb.newest_frame()
            ev = handler(frame)
        except Exception as e:
            self._error(e)
            return False
        if ev is None:
            return False
        try:
            ev.source = source
            self._complete(ev, frame)
            self.log.add(ev)
        except Exception as e:
            self._error(e)
            return False
        if self.options.stop:
            gdb.write(stop_line(ev) + "\n")  # between prompts: the view says it, the hook writes it
            return True
        return False

    def _error(self, e):
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"

    def on_brk_break(self, frame):
        requested, result = registers(frame, ("rdi", "rax"))
        old = self.cur_brk
        if old is None and self.curbrk_addr:
            old = read_u64(self.curbrk_addr) or None  # libc's view, written just after this
        self.cur_brk = result
        return M.decode_brk(requested, result, old)

    def on_brk_watch(self, frame):
        requested, result = registers(frame, ("rdi", "rax"))
        old = self.cur_brk
        self.cur_brk = result
        if requested and result != requested:
            return None  # refused: the failure-branch breakpoint records it
        return M.decode_brk(requested, result, old)

    def on_brk_refused(self, frame):
        requested, result = registers(frame, ("rdi", "rax"))
        old = self.cur_brk
        self.cur_brk = result
        return M.decode_brk(requested, result, old if old is not None else result)

    def on_raw_pre(self, frame):
        nr, *args = registers(frame, ("rax",) + ARGS)
        if nr == NR["brk"] or self.options.mmap and nr in MAPPING_CALLS:
            self.pending[gdb.selected_thread().ptid[1]] = (nr, args)
        return None

    def on_raw_post(self, frame):
        p = self.pending.pop(gdb.selected_thread().ptid[1], None)
        if p is None:
            return None
        (rax,) = registers(frame, ("rax",))
        return self._decode(p[0], p[1], rax)

    def on_mmap(self, frame):
        args = registers(frame, ARGS + ("rax",))
        return self._decode(NR["mmap"], args[:6], args[6])

    def on_munmap(self, frame):
        args = registers(frame, ARGS + ("rax",))
        return self._decode(NR["munmap"], args[:6], args[6])

    def on_mremap(self, frame):
        args = registers(frame, ARGS + ("rax",))
        return self._decode(NR["mremap"], args[:6], args[6])

    def on_catch(self, frame):
        nr, rax, *args = registers(frame, ("orig_rax", "rax") + ARGS)
        tid = gdb.selected_thread().ptid[1]
        if rax == ENOSYS_RAX and tid not in self.pending:
            if nr == NR["brk"] and self.cur_brk is None and self.curbrk_addr:
                self.cur_brk = read_u64(self.curbrk_addr) or None
            self.pending[tid] = (nr, args)
            return None
        p = self.pending.pop(tid, None)
        if p is None:
            return None
        return self._decode(p[0], p[1], rax)

    def _decode(self, nr: int, args, rax: int):
        if nr == NR["brk"]:
            old = self.cur_brk
            self.cur_brk = rax
            return M.decode_brk(args[0], rax, old)
        if not self.options.mmap:
            return None
        return decode_mapping_call(nr, args, rax, self.files)

    def _complete(self, ev: M.BrkEvent, frame):
        t = gdb.selected_thread()
        ev.thread, ev.tid = t.num, t.ptid[1] or t.ptid[2] or live_pid()
        ev.mmap_threshold = self.threshold.read(self.libc, self.log, self.cur_brk, self._error)
        add_context(ev, frame, self.libc, self.options.bt)

    # ---- status -------------------------------------------------------------------------
    def status(self) -> dict:
        self._check_catchpoint()
        return {
            "on": self.on,
            "options": self.options.to_json(),
            "method": self.method,
            "hooks": self.method_text or None,
            "waiting": self.waiting or None,
            "not_used": list(self.why_not),
            "events": self.log.summary.events,
            "kept": len(self.log),
            "pid": self.log.pid,
            "inferior": selected_inferior_num(),
            "notes": list(self.log.notes),
            "threshold_source": self.threshold.how or None,
            "errors": self.errors,
            "last_error": self.last_error or None,
        }


def _silent(hook: Hook) -> Hook:
    """A hook that stops (--stop) without gdb's own words for its internal breakpoint or
    watchpoint ("Hardware watchpoint -5: *(void **) 0x...", old and new value, libc's frame):
    the watcher writes its own line instead."""
    hook.silent = True
    return hook


def _file_ranges(pid: int) -> M.FileRanges:
    """The process's file mappings now: an mmap over them is not an anonymous mapping."""
    return M.FileRanges(
        (m.start, m.end) for m in proc_maps(pid) if not m.anonymous and not m.path.startswith("[")
    )


WATCHER = Watcher()
