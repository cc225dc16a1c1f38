"""brkwatch's edge: hooks that see every change of the program break (and, on request, every
anonymous mmap/munmap/mremap) and record it without stopping the program.

Three ways to be told, chosen by measurement (benchmarks/brkwatch_overhead.py):
  watch    a hardware watchpoint on libc's own `__curbrk` (one stop per change of the break),
           a breakpoint on __brk's failure branch (a refused brk leaves __curbrk as it was)
  break    a breakpoint after the system call in libc's __brk (one stop, with step-over)
  syscall  `catch syscall` (two stops per call, and every other system call of the program
           stops too while a syscall catchpoint exists)
watch and break add breakpoints around the system call in libc's syscall() (a raw
syscall(SYS_brk, ...) changes the break without touching __curbrk) and, with --mmap, after the
system call in mmap, munmap and mremap.  Every hook is an internal breakpoint whose stop()
records and returns False, so gdb resumes at once and a `next` in progress goes on.

The hooks never write to the inferior (gdb's own breakpoint insertion aside) and never call
functions in it.  Breakpoints sit at libc addresses of one process: they are removed when libc
goes away (exit, kill, a new run) and set again when libc is loaded.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import gdb

from ..model import brklog as M
from ..model.brkcode import brk_failure_branch
from ..model.libcsyms import is_loader, libc_symbols
from ..model.libcversion import looks_like_libc
from ..model.regions import Mapping, parse_proc_maps
from .errors import UserError
from .process import connection_type

METHODS = M.METHODS
ARGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")  # x86-64 system call arguments
NR = {"brk": 12, "mmap": 9, "munmap": 11, "mremap": 25}
ENOSYS_RAX = (1 << 64) - 38  # rax at a syscall-entry stop on x86-64
LIBC_FUNCS = ("__brk", "brk", "__curbrk", "syscall", "__mmap", "mmap", "__munmap", "munmap",
              "__mremap", "mremap", "mp_")  # mp_: in .symtab when not stripped (static programs)
MAX_LIBC_FRAMES = 64
THRESHOLD_RETRY = 32  # events between attempts to find mp_ without symbols


@dataclass
class Options:
    mmap: bool = False
    stop: bool = False
    bt: int = 0
    method: str = "auto"

    def text(self) -> str:
        parts = []
        if self.mmap:
            parts.append("--mmap")
        if self.stop:
            parts.append("--stop")
        if self.bt:
            parts.append(f"--bt {self.bt}")
        if self.method != "auto":
            parts.append(f"--method {self.method}")
        return " ".join(parts) or "(none)"

    def to_json(self) -> dict:
        return {"mmap": self.mmap, "stop": self.stop, "bt": self.bt, "method": self.method}


@dataclass
class LibcInfo:
    path: str
    static: bool
    bias: int
    ranges: List[Tuple[int, int]]  # the object's mappings
    syms: Dict[str, Tuple[int, int]]  # name -> (run-time address, size)
    system: List[Tuple[int, int]]  # libc's and ld.so's mappings: frames in them are not the caller


NOT_READABLE_YET = ("the process's memory is not readable yet (a fork gdb keeps, still being "
                    "set up); the hooks are set at the next prompt with it selected")


def _x86_64() -> bool:
    try:
        return gdb.selected_inferior().architecture().name() == "i386:x86-64"
    except (gdb.error, RuntimeError, AttributeError):
        return False


def _regs(frame, names) -> List[int]:
    return [int(frame.read_register(n)) & 0xFFFFFFFFFFFFFFFF for n in names]


def _read_u64(address: int) -> Optional[int]:
    try:
        return int.from_bytes(bytes(gdb.selected_inferior().read_memory(address, 8)), "little")
    except (gdb.MemoryError, gdb.error, ValueError, OverflowError):
        return None


def _proc_maps(pid: int) -> List[Mapping]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return parse_proc_maps(f.read())
    except OSError:
        return []


def _start_brk(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[47 - 3])
    except (OSError, IndexError, ValueError):
        return None


def _live_pid() -> Optional[int]:
    try:
        inf = gdb.selected_inferior()
    except (gdb.error, RuntimeError):
        return None
    if inf.pid == 0:
        return None
    if connection_type(inf) == "core":
        return None
    return inf.pid


def _find_libc(pid: int) -> Tuple[Optional[LibcInfo], str]:
    """libc's path, load bias, mappings and the symbols the hooks need; (None, why) if absent."""
    maps = _proc_maps(pid)
    if not maps:
        return None, "cannot read the process's mappings (brkwatch needs a local live process)"
    lib, why = libc_symbols(maps, LIBC_FUNCS, _read_memory, local=True)
    if lib is None:
        return None, why
    system = lib.ranges + [(m.start, m.end) for m in maps if is_loader(m.path)]
    return LibcInfo(lib.path, lib.static, lib.bias, lib.ranges, lib.syms, system), ""


def _read_memory(address: int, size: int) -> Optional[bytes]:
    try:
        return bytes(gdb.selected_inferior().read_memory(address, size))
    except (gdb.MemoryError, gdb.error, ValueError, OverflowError):
        return None


def _instructions(start: int, size: int):
    arch = gdb.selected_inferior().architecture()
    return arch.disassemble(start, start + max(size, 1) - 1)


def _syscall_sites(start: int, size: int) -> List[Tuple[int, int]]:
    """(address of each `syscall` instruction, address of the instruction after it)."""
    out = []
    for insn in _instructions(start, size):
        if insn["asm"].split()[:1] == ["syscall"]:
            out.append((insn["addr"], insn["addr"] + insn["length"]))
    return out


def _failure_branch(start: int, size: int) -> Optional[int]:
    """__brk's branch for a refused break (see model.brkcode), or None."""
    return brk_failure_branch((i["addr"], i["length"], i["asm"]) for i in _instructions(start, size))


class _Hook(gdb.Breakpoint):
    """An internal breakpoint (or watchpoint) whose stop() hands over to the watcher.  It belongs
    to the inferior selected when it was made: gdb may give an address breakpoint locations in a
    forked child too, whose own hooks record its events."""

    def __init__(self, spec, handler, source, *args, **kw):
        self._handler = handler  # before gdb can call stop()
        self._source = source
        self._owner = _selected_inferior_num()
        super().__init__(spec, *args, internal=True, **kw)

    def stop(self):
        handler = getattr(self, "_handler", None)
        if handler is None or _selected_inferior_num() != self._owner:
            return False
        return WATCHER.dispatch(handler, self._source)


class _CatchCondition(gdb.Function):
    """$_gdbext_brkwatch(): the condition of brkwatch's syscall catchpoint (records, says 0)."""

    def __init__(self):
        super().__init__("_gdbext_brkwatch")

    def invoke(self):
        return 1 if WATCHER.dispatch(WATCHER.on_catch, "catch syscall") else 0


def _bpnum() -> Optional[int]:
    """$bpnum: the number of the breakpoint (or catchpoint) the user's last command made."""
    try:
        v = gdb.parse_and_eval("$bpnum")
        return None if v.type.code == gdb.TYPE_CODE_VOID else int(v)
    except (gdb.error, ValueError, OverflowError):
        return None


class _SyscallCatchpoint:
    """brkwatch's `catch syscall` catchpoint.  Python cannot make a catchpoint, and gdb before
    13 gives it no gdb.Breakpoint either (gdb.breakpoints() leaves it out): so it is made with
    the command, found by its number in $bpnum, and, without an object, driven by number."""

    def __init__(self, number: int, bp=None):
        self.number = number
        self._bp = bp

    @classmethod
    def create(cls, nrs, condition: str, silent: bool) -> "_SyscallCatchpoint":
        before = _bpnum()
        gdb.execute("catch syscall " + " ".join(map(str, nrs)), to_string=True)
        number = _bpnum()
        if number is None or number == before:
            raise _Unavailable("gdb made no syscall catchpoint")
        bp = next((b for b in gdb.breakpoints() or () if b.number == number), None)
        cp = cls(number, bp)
        try:
            cp._set_up(condition, silent)
        except (gdb.error, RuntimeError) as e:
            cp.delete()
            raise _Unavailable(f"cannot set up syscall catchpoint {number} ({e})") from None
        return cp

    def _set_up(self, condition: str, silent: bool):
        if self._bp is not None:
            self._bp.condition = condition
            self._bp.silent = silent
            return
        gdb.execute(f"condition {self.number} {condition}", to_string=True)
        if silent:
            gdb.execute(f"commands {self.number}\nsilent\nend", to_string=True)

    def is_valid(self) -> bool:
        if self._bp is not None:
            return self._bp.is_valid()
        try:  # says "No breakpoint or watchpoint matching 'N'." once it is deleted
            text = gdb.execute(f"info breakpoints {self.number}", to_string=True)
        except gdb.error:
            return False
        return re.search(rf"^{self.number}\s+catchpoint\b", text, re.M) is not None

    def delete(self):
        if self._bp is not None:
            if self._bp.is_valid():
                self._bp.delete()
        elif self.is_valid():
            gdb.execute(f"delete {self.number}", to_string=True)


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
        self.threshold_addr: Optional[int] = None
        self.threshold_how = ""
        self._threshold_tries = 0
        self._threshold_wait = 0


def _is_selected_progspace(progspace) -> bool:
    try:
        return progspace is None or progspace == gdb.selected_inferior().progspace
    except (gdb.error, RuntimeError, AttributeError):
        return True


def _selected_inferior_num() -> int:
    try:
        return gdb.selected_inferior().num
    except (gdb.error, RuntimeError):
        return 1


def _of_selected_inferior(name: str):
    """An attribute of the selected inferior's state: a hook's stop() and gdb's events run with
    the inferior they concern selected, and the commands show the one the user selected."""
    return property(lambda self: getattr(self.inferior_state(), name),
                    lambda self, value: setattr(self.inferior_state(), name, value))


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
    threshold_addr = _of_selected_inferior("threshold_addr")
    threshold_how = _of_selected_inferior("threshold_how")
    _threshold_tries = _of_selected_inferior("_threshold_tries")
    _threshold_wait = _of_selected_inferior("_threshold_wait")

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
        num = _selected_inferior_num() if num is None else num
        if num not in self.inferiors:
            self.inferiors[num] = _Inferior()
        return self.inferiors[num]

    def _reset_process_state(self):
        self.inferior_state().reset_process_state()

    # ---- turning on and off -----------------------------------------------------------
    def turn_on(self, options: Options) -> str:
        if not _x86_64() and _live_pid() is not None:
            raise UserError("brkwatch supports x86-64 processes only")
        self._connect()
        changed = self.on and options != self.options
        self.disarm_all()
        self.on, self.options = True, options
        self.why_not = []
        pid = _live_pid()
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
        self._function = _CatchCondition()
        self._connected = True

    # ---- arming -------------------------------------------------------------------------
    def arm(self):
        pid = _live_pid()
        if pid is None:
            self.waiting = "waiting for the program to start"
            return
        if self.armed_pid == pid and self.method is not None:
            return
        if self.log.pid is not None and self.log.pid != pid:
            n = self.log.summary.events
            note = (f"log cleared at a new run (process {pid}); {n} event(s) of process "
                    f"{self.log.pid} were dropped")
            self.log.clear(note, pid)
            self.execs = 0
            if n:
                gdb.write(f"brkwatch: {note}\n")
        self.log.pid = pid
        if self.armed_pid != pid:
            self._reset_process_state()
        if self.log.start_brk is None:
            self.log.start_brk = _start_brk(pid)
        libc, why = _find_libc(pid)
        method = self.options.method
        if libc is None and why == "libc is not loaded yet" and method != "syscall":
            self.waiting = why
            return
        if libc is not None and method != "syscall" and libc.ranges \
                and _read_u64(libc.ranges[0][0]) is None:
            # gdb 10 announces a kept fork's objfiles before it can read the child's memory:
            # the hooks could not be made (and its syscall catchpoint stops nothing there).
            self.waiting = NOT_READABLE_YET
            return
        self.libc = libc
        if libc is not None:
            self._seed(pid, libc)
        self._check_catchpoint()
        if self.catchpoint is not None:
            self.method, self.armed_pid, self.waiting = "syscall", pid, ""  # kept from the last run
            return
        order = {"auto": ("watch", "break", "syscall"), "watch": ("watch", "break", "syscall"),
                 "break": ("break", "syscall"), "syscall": ("syscall",)}[method]
        if libc is None:
            if method != "syscall":
                self.why_not.append(f"watch, break: {why}")
            order = ("syscall",)
        for m in order:
            try:
                text = getattr(self, f"_arm_{m}")()
            except (_Unavailable, gdb.error) as e:
                self.why_not.append(f"{m}: {e}")
                self.disarm()
                continue
            self.method, self.method_text, self.armed_pid = m, text, pid
            self.waiting = ""
            return
        self.waiting = "no way to watch the break: " + "; ".join(self.why_not)
        if self.execs:
            self.log.notes.append(f"the watch was lost after the exec: {self.waiting}")

    def _seed(self, pid: int, libc: LibcInfo):
        self.files = M.FileRanges((m.start, m.end) for m in _proc_maps(pid)
                                  if not m.anonymous and not m.path.startswith("["))
        cb = libc.syms.get("__curbrk")
        self.curbrk_addr = cb[0] if cb else None
        if self.cur_brk is None and self.curbrk_addr:
            v = _read_u64(self.curbrk_addr)
            self.cur_brk = v or None
        self._find_threshold(libc)

    def _need(self, name: str, *alts: str) -> Tuple[int, int]:
        for n in (name,) + alts:
            if self.libc and n in self.libc.syms and self.libc.syms[n][1]:
                return self.libc.syms[n]
        raise _Unavailable(f"no symbol {name} in {self.libc.path if self.libc else 'libc'}")

    def _post_syscall(self, name: str, *alts: str) -> List[int]:
        start, size = self._need(name, *alts)
        sites = _syscall_sites(start, size)
        if not sites:
            raise _Unavailable(f"no system call instruction in {name}")
        return [after for _, after in sites]

    def _hook(self, address: int, handler, source: str):
        self.hooks.append(_Hook(f"*{address:#x}", handler, source))

    def _arm_raw_and_maps(self) -> str:
        parts = []
        try:
            start, size = self._need("syscall")
            sites = _syscall_sites(start, size)
        except _Unavailable:
            sites = []
        for at, after in sites:
            self._hook(at, self.on_raw_pre, "syscall()")
            self._hook(after, self.on_raw_post, "syscall()")
        if sites:
            parts.append("breakpoints around the system call in syscall()")
        if self.options.mmap:
            for name, alt, handler in (("__mmap", "mmap", self.on_mmap),
                                       ("__munmap", "munmap", self.on_munmap),
                                       ("__mremap", "mremap", self.on_mremap)):
                for after in self._post_syscall(name, alt):
                    self._hook(after, handler, name.strip("_"))
            parts.append("breakpoints after the system call in mmap, munmap and mremap")
        return "; ".join(parts)

    def _arm_watch(self) -> str:
        if self.execs:
            raise _Unavailable("the process executed a new program: gdb keeps its copy of the "
                               "debug registers across an exec, which the kernel cleared, so a "
                               "watchpoint at an address watched before would never fire")
        if not self.curbrk_addr:
            raise _Unavailable("no __curbrk symbol in libc")
        start, size = self._need("__brk", "brk")
        fail = _failure_branch(start, size)
        if fail is None:
            raise _Unavailable("__brk has no failure branch brkwatch recognises")
        if any(b.type in (gdb.BP_HARDWARE_WATCHPOINT, gdb.BP_READ_WATCHPOINT, gdb.BP_ACCESS_WATCHPOINT)
               for b in gdb.breakpoints() or () if b.is_valid()):
            raise _Unavailable("the user's own hardware watchpoints may need every debug register")
        try:
            hook = _Hook(f"*(void **) {self.curbrk_addr:#x}", self.on_brk_watch, "libc __curbrk",
                         gdb.BP_WATCHPOINT, gdb.WP_WRITE)
        except (gdb.error, RuntimeError) as e:
            raise _Unavailable(f"no hardware watchpoint ({e})") from None
        self.hooks.append(hook)
        if hook.type != gdb.BP_HARDWARE_WATCHPOINT:  # a software watchpoint single-steps everything
            raise _Unavailable("gdb can only make a software watchpoint here")
        self._hook(fail, self.on_brk_refused, "libc __brk")
        extra = self._arm_raw_and_maps()
        return "hardware watchpoint on libc's __curbrk, breakpoint on __brk's failure branch" + \
            (f"; {extra}" if extra else "")

    def _arm_break(self) -> str:
        for after in self._post_syscall("__brk", "brk"):
            self._hook(after, self.on_brk_break, "libc __brk")
        extra = self._arm_raw_and_maps()
        return "breakpoint after the system call in libc's __brk" + (f"; {extra}" if extra else "")

    def _arm_syscall(self) -> str:
        nrs = [NR["brk"]] + ([NR["mmap"], NR["munmap"], NR["mremap"]] if self.options.mmap else [])
        self.catchpoint = _SyscallCatchpoint.create(nrs, "$_gdbext_brkwatch()",
                                                    silent=not self.options.stop)
        names = "brk" + (", mmap, munmap, mremap" if self.options.mmap else "")
        return (f"catchpoint {self.catchpoint.number} on the system calls {names} "
                f"(every system call of the program stops in gdb while it exists)")

    def disarm(self, state: Optional[_Inferior] = None):
        """Removes one inferior's hooks (the selected one's by default); the syscall catchpoint
        only when no other inferior is watched through it."""
        state = state or self.inferior_state()
        for h in state.hooks:
            try:
                if h.is_valid():
                    h.delete()
            except (gdb.error, RuntimeError):
                pass
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
            pid = _live_pid()
            if pid is None:
                return
            if self.armed_pid == pid and self.method is not None:
                if self.libc is None:  # the catchpoint went in before libc was loaded
                    libc, _ = _find_libc(pid)
                    if libc is not None:
                        self.libc = libc
                        self._seed(pid, libc)
                elif self.threshold_addr is None:
                    self._find_threshold(self.libc)  # libc's debug info may come after libc
                # dlopen maps files through ld.so, which the hooks do not see
                self.files = M.FileRanges((m.start, m.end) for m in _proc_maps(pid)
                                          if not m.anonymous and not m.path.startswith("["))
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
            if not _is_selected_progspace(getattr(event, "progspace", None)):
                return  # another inferior's: a fork kept under gdb gets a program space of its own
            pid = _live_pid()
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
        self.reset_process_state_after_exec()
        start = _start_brk(pid)
        where = f"; its heap starts at {start:#x}" if start else ""
        self.log.new_program(f"process {pid} executed a new program after event #{n}{where}; "
                             "brkwatch follows it in the new program's libc", start)
        self.waiting = "waiting for the new program's libc"

    def reset_process_state_after_exec(self):
        self._reset_process_state()
        self.libc = None

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
            note = (f"process {state.armed_pid} forked and gdb keeps the child (inferior "
                    f"{child.num}): gdb's syscall catchpoint may stop no more system calls of "
                    "either process, whose brk changes may be missing from here on "
                    "('brkwatch on --method break' does not depend on it)")
            state.log.notes.append(note)
            self.inferior_state(child.num).log.notes.append(note)
            gdb.write(f"brkwatch: {note}\n")
        except Exception as e:
            self._error(e)

    def _on_exited(self, event):
        try:
            inf = getattr(event, "inferior", None)
            state = self.inferior_state(inf.num if inf is not None else None)
            code = getattr(event, "exit_code", None)
            if state.log.pid is not None and self.on:
                state.log.notes.append(f"process {state.log.pid} exited"
                                       + (f" with code {code}" if code is not None else ""))
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
            gdb.write(f"brkwatch: stopped at event {ev.seq}: {event_line(ev)}\n")
            return True
        return False

    def _error(self, e):
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"

    def on_brk_break(self, frame):
        requested, result = _regs(frame, ("rdi", "rax"))
        old = self.cur_brk
        if old is None and self.curbrk_addr:
            old = _read_u64(self.curbrk_addr) or None  # libc's view, written just after this
        self.cur_brk = result
        return M.decode_brk(requested, result, old)

    def on_brk_watch(self, frame):
        requested, result = _regs(frame, ("rdi", "rax"))
        old = self.cur_brk
        self.cur_brk = result
        if requested and result != requested:
            return None  # refused: the failure-branch breakpoint records it
        return M.decode_brk(requested, result, old)

    def on_brk_refused(self, frame):
        requested, result = _regs(frame, ("rdi", "rax"))
        old = self.cur_brk
        self.cur_brk = result
        return M.decode_brk(requested, result, old if old is not None else result)

    def on_raw_pre(self, frame):
        nr, *args = _regs(frame, ("rax",) + ARGS)
        if nr == NR["brk"] or self.options.mmap and nr in (NR["mmap"], NR["munmap"], NR["mremap"]):
            self.pending[gdb.selected_thread().ptid[1]] = (nr, args)
        return None

    def on_raw_post(self, frame):
        p = self.pending.pop(gdb.selected_thread().ptid[1], None)
        if p is None:
            return None
        rax, = _regs(frame, ("rax",))
        return self._decode(p[0], p[1], rax)

    def on_mmap(self, frame):
        args = _regs(frame, ARGS + ("rax",))
        return self._decode(NR["mmap"], args[:6], args[6])

    def on_munmap(self, frame):
        args = _regs(frame, ARGS + ("rax",))
        return self._decode(NR["munmap"], args[:6], args[6])

    def on_mremap(self, frame):
        args = _regs(frame, ARGS + ("rax",))
        return self._decode(NR["mremap"], args[:6], args[6])

    def on_catch(self, frame):
        nr, rax, *args = _regs(frame, ("orig_rax", "rax") + ARGS)
        tid = gdb.selected_thread().ptid[1]
        if rax == ENOSYS_RAX and tid not in self.pending:
            if nr == NR["brk"] and self.cur_brk is None and self.curbrk_addr:
                self.cur_brk = _read_u64(self.curbrk_addr) or None
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
        if nr == NR["mmap"]:
            addr, length, prot, flags = args[0], args[1], args[2], args[3]
            ok, value, _ = M.syscall_result(rax)
            size = M.page_up(length)
            if ok and not flags & M.MAP_ANONYMOUS:
                self.files.add(value, value + size)
                return None
            if ok:
                self.files.remove(value, value + size)
            return M.decode_mmap(addr, length, prot, flags, rax)
        if nr == NR["munmap"]:
            addr, size = args[0], M.page_up(args[1])
            if self.files.covers(addr, addr + size):
                self.files.remove(addr, addr + size)
                return None
            ev = M.decode_munmap(args[0], args[1], rax)
            if ev.ok:
                self.files.remove(addr, addr + size)
            return ev
        if nr == NR["mremap"]:
            old_addr, old_len, new_len, flags = args[0], args[1], args[2], args[3]
            ok, value, _ = M.syscall_result(rax)
            old_end = old_addr + M.page_up(old_len)
            if self.files.covers(old_addr, old_end):
                if ok:
                    self.files.moved(old_addr, old_end, value, value + M.page_up(new_len))
                return None
            return M.decode_mremap(old_addr, old_len, new_len, flags, rax)
        return None

    def _complete(self, ev: M.BrkEvent, frame):
        t = gdb.selected_thread()
        ev.thread, ev.tid = t.num, t.ptid[1] or t.ptid[2] or _live_pid()
        ev.mmap_threshold = self._threshold()
        self._context(ev, frame)

    # ---- who caused it ----------------------------------------------------------------
    def _in_libc(self, frame, pc: int) -> bool:
        lib = self.libc
        if lib is None:
            so = gdb.solib_name(pc)
            return bool(so and (looks_like_libc(so) or is_loader(so)))
        if lib.static:
            try:
                return frame.find_sal().symtab is None
            except gdb.error:
                return True
        return any(lo <= pc < hi for lo, hi in lib.system)

    def _in_libc_proper(self, pc: int) -> bool:
        """libc itself, not the dynamic loader (whose minimal malloc is not the program's)."""
        lib = self.libc
        if lib is None or lib.static:
            so = gdb.solib_name(pc) if lib is None else None
            return lib is not None or bool(so and looks_like_libc(so))
        return any(lo <= pc < hi for lo, hi in lib.ranges)

    def _context(self, ev: M.BrkEvent, f):
        via, alloc_frame, n, libc_frames = [], None, 0, []
        while f is not None and n < MAX_LIBC_FRAMES:
            pc = f.pc()
            if not self._in_libc(f, pc):
                break
            libc_frames.append(f)
            name = f.name()
            if name and (not via or via[-1] != name):
                via.append(name)
            if M.alloc_name(name) and self._in_libc_proper(pc):
                alloc_frame = f
            try:
                f = f.older()
            except gdb.error:
                f = None
            n += 1
        ev.via = via
        if f is not None and n < MAX_LIBC_FRAMES and f.pc() >= 0x10000:  # not past the outermost
            ev.caller = _describe(f)
            if self.options.bt:
                bt, g = [], f
                while g is not None and len(bt) < self.options.bt:
                    bt.append(_describe(g))
                    try:
                        g = g.older()
                    except gdb.error:
                        break
                ev.backtrace = bt
        if alloc_frame is not None:
            ev.alloc = _alloc_request(alloc_frame, libc_frames)

    # ---- mp_.mmap_threshold -----------------------------------------------------------
    def _find_threshold(self, libc: LibcInfo):
        self.threshold_addr, self.threshold_how = None, ""
        try:
            syms = gdb.lookup_static_symbols("mp_") if hasattr(gdb, "lookup_static_symbols") \
                else [s for s in (gdb.lookup_static_symbol("mp_"),) if s]
        except (gdb.error, RuntimeError):
            syms = []
        for s in syms:
            try:
                addr = int(s.value().address)
                t = s.type.strip_typedefs()
                off = next((f.bitpos // 8 for f in t.fields() if f.name == "mmap_threshold"), None)
            except (gdb.error, RuntimeError, AttributeError):
                continue
            if off is not None and any(lo <= addr < hi for lo, hi in libc.ranges):
                self.threshold_addr, self.threshold_how = addr + off, "mp_ from libc's debug info"
                return
        if "mp_" in libc.syms:  # a symbol table without debug types: offsets from glibc's version
            try:
                from ..model.ptmalloc.layout import Layout
                from .libc import glibc_version
                from .process import Target

                target = Target()
                version = glibc_version(target)  # unknown in a static program without the banner;
                # mmap_threshold has been malloc_par's third word in every glibc with a tcache
                layout = Layout.for_version(version, target.pointer_size)
                self.threshold_addr = libc.syms["mp_"][0] + layout.malloc_par.offset("mmap_threshold")
                self.threshold_how = (f"mp_ from the symbol table of {libc.path}, laid out as "
                                      + (f"glibc {version[0]}.{version[1]}" if version
                                         else "every glibc since 2.26"))
            except (ImportError, KeyError, UserError, gdb.error):
                pass

    def _find_threshold_without_symbols(self):
        """mp_ found by its shape (the ptmalloc model) once the main heap exists."""
        lib = self.libc
        if lib is None or self.log.start_brk is None or self._threshold_tries >= 40:
            return
        if self.cur_brk is None or self.cur_brk <= self.log.start_brk:
            return
        self._threshold_tries += 1
        try:
            from ..model.ptmalloc.layout import Layout
            from ..model.ptmalloc.locate import find_mp
            from .libc import glibc_version
            from .process import Target
        except ImportError:
            self._threshold_tries = 99
            return
        target = Target()
        layout = Layout.for_version(glibc_version(target), target.pointer_size)
        cands = [m for m in _proc_maps(target.pid)
                 if m.writable and (m.path == lib.path or (m.anonymous and any(
                     m.start == hi for _, hi in lib.ranges)))]
        found = None
        # mp_.sbrk_base: the kernel's start of the heap, or the break malloc found when it first
        # grew the heap (a static program's start-up may have moved the break before that)
        starts = [self.log.start_brk] + [e.old_brk for e in list(self.log.events)[:8]
                                         if e.kind == "brk" and e.old_brk and e.alloc]
        for start in dict.fromkeys(starts):
            found = find_mp(_UncachedMemory(), layout, cands, start)
            if found is not None:
                break
        if found is not None:
            self.threshold_addr = found.address + layout.malloc_par.offset("mmap_threshold")
            self.threshold_how = "mp_ found without symbols (" + found.how + ")"

    def _threshold(self) -> Optional[int]:
        if self.threshold_addr is None:
            self._threshold_wait -= 1
            if self._threshold_wait <= 0:
                self._threshold_wait = 1 if self._threshold_tries < 8 else THRESHOLD_RETRY
                try:
                    self._find_threshold_without_symbols()
                except Exception as e:
                    self._error(e)
            if self.threshold_addr is None:
                return None
        return _read_u64(self.threshold_addr)

    # ---- status -------------------------------------------------------------------------
    def status(self) -> dict:
        self._check_catchpoint()
        return {"on": self.on, "options": self.options.to_json(), "method": self.method,
                "hooks": self.method_text or None, "waiting": self.waiting or None,
                "not_used": list(self.why_not), "events": self.log.summary.events,
                "kept": len(self.log), "pid": self.log.pid, "inferior": _selected_inferior_num(),
                "notes": list(self.log.notes),
                "threshold_source": self.threshold_how or None, "errors": self.errors,
                "last_error": self.last_error or None}


class _Unavailable(Exception):
    pass


class _UncachedMemory:
    """Reads straight from the inferior: gdb's per-stop cache is not dropped when a hook lets
    the program go on, so within a run of events it would answer with old bytes."""

    def read(self, address: int, size: int) -> bytes:
        from ..model.memory import MemoryReadError

        try:
            return bytes(gdb.selected_inferior().read_memory(address, size))
        except (gdb.MemoryError, gdb.error, ValueError, OverflowError) as e:
            raise MemoryReadError(address, size, str(e)) from None


def _describe(frame) -> dict:
    try:
        sal = frame.find_sal()
        symtab = sal.symtab
        return {"function": frame.name(), "file": symtab.filename if symtab else None,
                "line": (sal.line or None) if symtab else None, "pc": frame.pc()}
    except gdb.error:
        return {"function": None, "file": None, "line": None, "pc": None}


_ALLOC_ARGS = {"malloc": ("bytes",), "realloc": ("bytes",), "memalign": ("bytes",),
               "aligned_alloc": ("bytes",), "valloc": ("bytes",), "pvalloc": ("bytes",),
               "posix_memalign": ("size",), "calloc": ("n", "elem_size")}


def _read_ints(frame, names) -> Optional[List[int]]:
    try:
        vals = []
        for n in names:
            v = frame.read_var(n)
            if v.is_optimized_out:
                return None
            vals.append(int(v))
        return vals
    except (gdb.error, ValueError, RuntimeError):
        return None


# Where the request is still readable when the entry point's own argument is optimized out.
_INNER_REQUEST = {"malloc": ("_int_malloc", "bytes"), "calloc": ("_int_malloc", "bytes"),
                  "memalign": ("_int_memalign", "bytes"), "aligned_alloc": ("_int_memalign", "bytes"),
                  "posix_memalign": ("_int_memalign", "bytes"), "valloc": ("_int_memalign", "bytes"),
                  "pvalloc": ("_int_memalign", "bytes")}


def _alloc_request(frame, libc_frames=()) -> dict:
    name = M.alloc_name(frame.name())
    out = {"function": name, "size": None}
    names = _ALLOC_ARGS.get(name)
    if names:
        vals = _read_ints(frame, names)
        if vals is None and name in _INNER_REQUEST:
            inner, var = _INNER_REQUEST[name]
            for f in libc_frames:
                if f.name() == inner:
                    vals = _read_ints(f, (var,))
                    if vals is not None:
                        break
        if vals is not None:
            size = 1
            for v in vals:
                size *= v
            out["size"] = size
    elif name == "free":
        vals = _read_ints(frame, ("mem",))
        if vals is not None:
            out["pointer"] = vals[0]
        else:  # the chunk the inner functions hold, 2 words below the user's pointer
            for f in libc_frames:
                if f.name() in ("munmap_chunk", "_int_free"):
                    p = _read_ints(f, ("p",))
                    if p is not None:
                        out["pointer"] = p[0] + 2 * 8
                        break
    return out


def event_line(e: M.BrkEvent) -> str:
    """One line for a stop with --stop."""
    return f"{e.kind} {what_text(e)} {delta_text(e.delta)} {e.result}" + \
        (f" in {e.caller['function']}" if e.caller and e.caller.get("function") else "")


def what_text(e: M.BrkEvent) -> str:
    if e.kind == "brk":
        old = f"{e.old_brk:#x}" if e.old_brk is not None else "?"
        new = f"{e.new_brk:#x}" if e.new_brk is not None else "?"
        if not e.ok and e.requested is not None:
            return f"{old} (asked {e.requested:#x})"
        return f"{old} -> {new}"
    if e.kind == "mremap":
        new = f"{e.address:#x}" if e.address is not None else "?"
        return f"{e.old_address:#x}+{e.old_length:#x} -> {new}+{e.length:#x}"
    addr = f"{e.address:#x}" if e.address is not None else "?"
    prot = f" {M.prot_text(e.prot)}" if e.prot is not None else ""
    return f"{addr}+{e.length:#x}{prot}"


def delta_text(d: Optional[int]) -> str:
    if d is None:
        return "?"
    if d == 0:
        return "0"
    return f"{'+' if d >= 0 else '-'}{abs(d):#x}"


WATCHER = Watcher()
