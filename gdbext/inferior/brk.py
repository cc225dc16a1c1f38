"""The program break: where the kernel started the brk heap and where libc's break is now.

vmmap's [heap] region, the heap model's main heap and brkwatch all start from here."""

import os
from typing import Optional

from ..model.memory import MemoryReadError
from .libc import libc_symbol_address
from .process import Target


def proc_start_brk(proc: str) -> Optional[int]:
    """Where the kernel started the heap of the process at `proc` (/proc/PID), from its stat,
    or None.  The process's stat shows 0 once the main thread has exited (a zombie leader has
    no mm): then a living thread's."""
    pid = os.path.basename(proc)
    try:
        tasks = sorted(os.listdir(f"{proc}/task"), key=lambda t: t != pid)
    except OSError:
        tasks = []
    for stat in [f"{proc}/stat"] + [f"{proc}/task/{t}/stat" for t in tasks]:
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            start = int(fields[47 - 3]) or None  # field 47 (start_brk), after "pid (comm)"
        except (OSError, IndexError, ValueError):
            start = None
        if start:
            return start
    return None


def program_break(target: Target, maps) -> Optional[tuple]:
    """(start_brk, brk): from /proc stat and libc's __curbrk when they can be read."""
    proc = target.local_proc
    start = proc_start_brk(proc) if proc else None
    cur = None
    addr = libc_symbol_address(target, "__curbrk")  # libc's, not ld.so's
    if addr:
        try:
            cur = int.from_bytes(target.memory.read(addr, target.pointer_size), "little")
        except MemoryReadError:
            cur = None
    if start is None:
        heap = next((m for m in maps if m.path == "[heap]"), None)
        if heap is None and cur:
            # No [heap] label (a core file): the anonymous mapping that ends at the break.
            heap = next((m for m in maps if m.start < cur <= m.end and m.anonymous and m.writable), None)
        start = heap.start if heap else None
    if start is None or cur is None or cur < start:
        return None
    return (start, cur)


def current_break(target: Target, maps) -> Optional[int]:
    """The break the next sbrk() starts from: program_break's, or, while libc's __curbrk is
    still 0 (no sbrk yet: malloc has not run), where the kernel started the heap; None when
    neither can be read."""
    got = program_break(target, maps)
    if got:
        return got[1]
    addr = libc_symbol_address(target, "__curbrk")
    proc = target.local_proc
    if not addr or not proc:
        return None
    try:
        cur = int.from_bytes(target.memory.read(addr, target.pointer_size), "little")
    except MemoryReadError:
        return None
    return proc_start_brk(proc) if cur == 0 else None


def brk_heap_in(target: Target, maps, m) -> Optional[tuple]:
    """[start, end) of the brk heap when mapping `m` holds it ([heap], unnamed in a core)."""
    if m.path == "[heap]":
        return (m.start, m.end)
    if not m.anonymous:
        return None
    brk = program_break(target, maps)
    if brk is None or not m.start <= brk[0] < m.end:
        return None
    return (brk[0], min(m.end, (brk[1] + 0xFFF) & ~0xFFF))
