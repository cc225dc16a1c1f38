"""Gathers what the classifier needs from the target and returns classified regions.

One place computes regions so that vmmap, threadstacks and the heap commands agree.
"""

import os
import re
from typing import List, Optional

import gdb

from ..model import elf
from ..model.malloc_regions import malloc_claims, mmapped_chunks_in
from ..model.memory import MemoryReadError
from ..model.regions import Claim, Facts, Region, classify
from ..model.stacks import StackBounds, bounds_from_mappings, heap_chunk_holding, stack_in_block
from .libc import libc_symbol_address
from .mappings import mappings
from .process import Target, cached
from .threads import list_threads


def loaded_objects(target: Target, maps) -> list:
    objs, seen = [], set()
    for m in maps:
        if m.anonymous or m.path.startswith("[") or m.offset != 0 or m.path in seen:
            continue
        seen.add(m.path)
        try:
            header = target.memory.read(m.start, min(m.size, 0x1000))
        except MemoryReadError:
            continue
        obj = elf.parse_program_headers(header, m.start, m.path)
        if obj is not None:
            objs.append(obj)
    return objs


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


def _brk_heap_in(target: Target, maps, m) -> Optional[tuple]:
    """[start, end) of the brk heap when mapping `m` holds it ([heap], unnamed in a core)."""
    if m.path == "[heap]":
        return (m.start, m.end)
    if not m.anonymous:
        return None
    brk = program_break(target, maps)
    if brk is None or not m.start <= brk[0] < m.end:
        return None
    return (brk[0], min(m.end, (brk[1] + 0xFFF) & ~0xFFF))


def malloc_block_stack(target: Target, maps, t) -> Optional[StackBounds]:
    """Without struct pthread: a stack the program took from malloc is the chunk holding the
    thread pointer (glibc puts struct pthread at the top of the block it was given), in the
    [heap] or an mmapped chunk of its own."""
    tp = t.fs_base or t.sp
    m = next((m for m in maps if m.start <= tp < m.end), None) if tp else None
    if m is None or not m.writable:
        return None
    block = None
    heap = _brk_heap_in(target, maps, m)
    if heap is not None:
        block = heap_chunk_holding(target.memory, heap[0], heap[1], tp)
    elif m.anonymous:
        for chunk, size, _ in mmapped_chunks_in(target.memory, m, limit=16):
            if chunk + 16 <= tp < chunk + size:
                block = (chunk + 16, chunk + size)
    if block is None or not block[0] <= (t.sp or block[0]) < block[1]:
        return None
    return stack_in_block(t.num, t.tid, block)


def thread_stacks(target: Target, maps, threads=None) -> List[StackBounds]:
    def compute():
        out = []
        for t in threads if threads is not None else list_threads():
            if t.sp is None:
                continue
            block = None if t.is_main else pthread_block(t.fs_base)
            b = bounds_from_mappings(t.num, t.tid, t.sp, maps, t.is_main, block, t.fs_base)
            if block is None and not t.is_main and (b is None or b.source == "mapping"):
                b = malloc_block_stack(target, maps, t) or b
            if b is not None:
                out.append(b)
        return out

    return compute() if threads is not None else cached("stacks", compute)


def regions(target: Target) -> List[Region]:
    return cached("regions", lambda: _regions(target))


def _regions(target: Target) -> List[Region]:
    maps = mappings(target)
    facts = Facts()
    facts.objects = loaded_objects(target, maps)
    facts.brk = program_break(target, maps)
    for s in thread_stacks(target, maps):
        facts.claims.extend(s.claims())
        if s.main:
            facts.main_thread, facts.main_tid = s.thread, s.tid
    from .heap import malloc_claims_from_model  # heap uses thread_stacks from here

    claims = malloc_claims_from_model(target)
    if claims is None:  # no glibc heap model: the quick check of each mapping's start
        claims = malloc_claims(target.memory, maps, loose_perms=target.kind == "core")
    facts.claims.extend(claims)
    facts.claims.extend(kernel_claims(maps))
    return classify(maps, facts)


VSYSCALL = 0xFFFFFFFFFF600000


def kernel_claims(maps) -> list:
    """The vDSO (from the auxiliary vector) and vsyscall page, which a core file leaves unnamed."""
    if any(m.path == "[vdso]" for m in maps):
        return []
    out = []
    try:
        text = gdb.execute("info auxv", to_string=True)
        m = re.search(r"AT_SYSINFO_EHDR\s.*?(0x[0-9a-f]+)\s*$", text, re.M)
        vdso = int(m.group(1), 16) if m else None
    except gdb.error:
        vdso = None
    for mp in maps:
        if vdso is not None and mp.start == vdso:
            out.append(Claim(mp.start, mp.end, "vdso"))
        elif mp.start == VSYSCALL:
            out.append(Claim(mp.start, mp.end, "vsyscall"))
    return out
