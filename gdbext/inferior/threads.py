"""Threads of the inferior as plain records: number, TID, name, registers of the newest frame."""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional

import gdb


@dataclass
class ThreadInfo:
    num: int
    global_num: int
    tid: int
    name: str
    sp: Optional[int]
    pc: Optional[int]
    fs_base: Optional[int]  # the thread pointer: see _thread_pointer
    function: Optional[str] = None
    frames: Optional[int] = None
    is_main: bool = False


def _register(frame, name: str) -> Optional[int]:
    try:
        return int(frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF
    except (gdb.error, ValueError):
        return None


def _thread_pointer(thread, frame) -> Optional[int]:
    """The thread pointer, which on x86 is the thread's struct pthread with its static TLS
    below: x86-64's fs_base register; i386 reaches it through %gs, whose base gdb does not
    show, so there it is the thread's pthread_t (the same address) that libthread_db or
    gdbserver hands gdb."""
    tp = _register(frame, "fs_base")
    if tp:
        return tp
    try:
        handle = thread.handle()  # gdb 8.3+; None without libthread_db
    except (gdb.error, AttributeError, RuntimeError):
        return None
    if not handle:
        return None
    return int.from_bytes(bytes(handle), "little") or None


def _frame_count(frame, limit: int = 100000) -> int:
    n = 0
    try:
        while frame is not None and n < limit:
            n += 1
            frame = frame.older()
    except gdb.error:
        pass
    return n


def list_threads(with_frames: bool = False, wanted=None) -> List[ThreadInfo]:
    """Visits each thread (only those whose number is `in wanted`, when given) to read its
    registers, then puts the user's selection back."""
    inf = gdb.selected_inferior()
    out = []
    pid = inf.pid
    with selection_kept():
        for t in sorted(inf.threads(), key=lambda t: t.num):
            if not t.is_valid() or t.is_exited() or (wanted and t.num not in wanted):
                continue
            tid = t.ptid[1] or t.ptid[2] or pid
            info = ThreadInfo(t.num, t.global_num, tid, t.name or "", None, None, None, is_main=(tid == pid))
            try:
                t.switch()
                frame = gdb.newest_frame()
                info.sp = _register(frame, "sp")
                info.pc = _register(frame, "pc")
                info.fs_base = _thread_pointer(t, frame)
                if with_frames:
                    info.function = _function_name(frame)
                    info.frames = _frame_count(frame)
            except gdb.error:
                pass
            out.append(info)
    return out


@contextmanager
def selection_kept() -> Iterator[None]:
    """The block may switch between threads and frames: the thread and frame the user had
    selected are selected again after it, however it ends."""
    try:
        old_thread = gdb.selected_thread()
        old_frame = gdb.selected_frame() if old_thread else None
    except gdb.error:
        old_thread, old_frame = None, None
    try:
        yield
    finally:
        try:
            if old_thread is not None and old_thread.is_valid():
                old_thread.switch()
                if old_frame is not None and old_frame.is_valid():
                    old_frame.select()
        except gdb.error:
            pass


def _function_name(frame) -> Optional[str]:
    try:
        name = frame.name()
        if name:
            return name
        return None
    except gdb.error:
        return None


def pthread_block(fs_base: Optional[int]):
    """(stackblock, stackblock_size, guardsize) through libc's debug type of struct pthread."""
    if not fs_base:
        return None
    try:
        t = gdb.lookup_type("struct pthread")
        pd = gdb.Value(fs_base).cast(t.pointer()).dereference()
        return (int(pd["stackblock"]), int(pd["stackblock_size"]), int(pd["guardsize"]))
    except (gdb.error, RuntimeError):
        return None


# x86-64's general registers, for a gdb without Architecture.registers() (before gdb 12).
_GENERAL = (
    ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp") + tuple(f"r{n}" for n in range(8, 16)) + ("rip",)
)


def thread_registers() -> List[tuple]:
    """(thread number, register name, value) of every general register of every thread's newest
    frame, then the user's selection put back: roots of the leak scan."""
    inf = gdb.selected_inferior()
    out = []
    with selection_kept():
        for t in sorted(inf.threads(), key=lambda t: t.num):
            if not t.is_valid() or t.is_exited():
                continue
            try:
                t.switch()
                frame = gdb.newest_frame()
                names = _general_names(frame)
            except gdb.error:
                continue
            for name in names:
                value = _register(frame, name)
                if value is not None:
                    out.append((t.num, name, value))
    return out


def _general_names(frame) -> tuple:
    try:
        return tuple(r.name for r in frame.architecture().registers("general"))
    except (AttributeError, ValueError, gdb.error):
        return _GENERAL
