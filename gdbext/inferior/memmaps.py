"""The mappings of a local process whose /proc/PID/maps gdb may not read (a non-dumpable
process, or another user's), rebuilt from its memory and symbols: see model/memmaps.py.

Not a memory map to show (mmapped chunks, other anonymous memory and file mappings the loader
did not make are missing): vmmap refuses; the heap and stack commands use it.
"""

import os
from typing import List, Optional

import gdb

from ..model import memmaps as M
from ..model.libcsyms import libc_symbols
from ..model.memory import MemoryReadError
from ..model.regions import Mapping

STACK_PAGES = 1 << 14  # 64 MiB up from the main thread's stack pointer
TLS_SPAN = 0x2000  # libc's TLS variables lie this close below a thread pointer
TLS_LABEL = "[thread pointer]"


def proc_maps_error(proc: str) -> Optional[str]:
    """Why /proc/PID/maps cannot be read, in words, or None when it can (or the process is
    gone, which is the caller's usual message)."""
    try:
        with open(f"{proc}/maps"):
            return None
    except PermissionError:
        pass
    except OSError:
        return None
    me = os.geteuid()
    owner = None
    try:
        with open(f"{proc}/status") as f:  # readable by anyone, unlike maps
            owner = next((int(line.split()[1]) for line in f if line.startswith("Uid:")), None)
    except (OSError, ValueError, IndexError):
        pass
    cause = (
        f"the process belongs to uid {owner}"
        if owner is not None and owner != me
        else "the process is not dumpable (PR_SET_DUMPABLE 0, or a set-user-ID program)"
    )
    return f"cannot read {proc}/maps: {cause} and gdb (uid {me}) lacks CAP_SYS_PTRACE"


class _Probe:
    """Reads the inferior one byte or word at a time: each probe is one gdb read."""

    def __init__(self, memory, pointer_size: int = 8):
        self.memory = memory
        self.pointer_size = pointer_size

    def readable(self, address: int) -> bool:
        try:
            self.memory.read(address, 1)
            return True
        except MemoryReadError:
            return False

    def word(self, address: int) -> Optional[int]:
        try:
            return int.from_bytes(self.memory.read(address, self.pointer_size), "little")
        except MemoryReadError:
            return None

    def string(self, address: int) -> Optional[str]:
        try:
            return self.memory.read(address, 512).split(b"\0", 1)[0].decode("utf-8", "replace")
        except MemoryReadError:
            return None


def _address_of(name: str) -> Optional[int]:
    try:
        return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'"))
    except gdb.error:
        return None


def _object_header(path: str, probe: _Probe, l_addr: int) -> Optional[bytes]:
    """The first page of the object: from its file, else (the vDSO) from memory."""
    if path and os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                return f.read(M.PAGE)
        except OSError:
            return None
    try:
        return probe.memory.read(l_addr, M.PAGE)
    except MemoryReadError:
        return None


def object_mappings(target, probe: _Probe) -> List[Mapping]:
    """Each loaded object's segments, from the loader's link_map (ld.so's _r_debug)."""
    r_debug = _address_of("_r_debug")
    if not r_debug:
        return []
    out = []
    main = gdb.selected_inferior().progspace.filename or ""
    entries = M.link_map_entries(probe.word, probe.string, r_debug, probe.pointer_size)
    for i, (l_addr, name) in enumerate(entries):
        path = name or (main if i == 0 else "")
        real = os.path.realpath(path) if path and os.path.isfile(path) else ""
        header = _object_header(real, probe, l_addr)
        phdrs = M.program_headers(header) if header else None
        if not phdrs:
            continue
        base = M.load_base(phdrs, l_addr)
        try:
            if base is None or probe.memory.read(base, 4) != b"\x7fELF":
                continue  # not where the headers say: leave it out rather than guess
        except MemoryReadError:
            continue
        inode = os.stat(real).st_ino if real else 0
        label = real or ("[vdso]" if name.startswith(("linux-vdso", "linux-gate")) else f"[{name}]")
        out.extend(M.object_mappings(phdrs, l_addr, label, inode))
    return out


def brk_heap(target, probe: _Probe, objects: List[Mapping]) -> List[Mapping]:
    """[heap]: from the page above the program's bss up to libc's __curbrk."""

    def read(address, size):
        try:
            return target.memory.read(address, size)
        except MemoryReadError:
            return None

    lib, _ = libc_symbols(objects, ("__curbrk",), read, local=True)
    curbrk = lib.address("__curbrk") if lib is not None else None
    cur = probe.word(curbrk) if curbrk else None
    main = gdb.selected_inferior().progspace.filename
    main = os.path.realpath(main) if main else None
    exe_end = max((m.end for m in objects if main and m.path == main), default=None)
    if not cur or exe_end is None:
        return []
    # The bss tail after the program's last file page is anonymous and belongs to it.
    tail = next((m for m in objects if m.start == exe_end and m.anonymous), None)
    floor = tail.end if tail else exe_end
    start = M.lowest_readable(probe.readable, floor, M.page_up(cur))
    return [Mapping(start, M.page_up(cur), "rw-p", 0, "[heap]")] if start is not None else []


def stack_mappings(threads, known: List[Mapping], probe: _Probe, pthread_block) -> List[Mapping]:
    """Each thread's stack (and guard) where libc's types give it, the main thread's from its
    SP up, and the memory just below each thread pointer (libc's TLS variables).  Without the
    types another thread's stack has no bounds: ptrace reads no-access guard pages too, so
    probing cannot tell where one stack ends and the next begins."""
    out = []
    taken = list(known)

    def covered(address):
        return any(m.start <= address < m.end for m in taken)

    def free_and_readable(address):
        return not covered(address) and probe.readable(address)

    for t in threads:
        if t.sp is None or covered(t.sp):
            continue
        block = None if t.is_main else pthread_block(t.fs_base)
        if block is not None and block[0] < t.sp < block[0] + block[1]:
            lo, size, guard = block
            got = ([Mapping(lo, lo + guard, "---p", 0, "")] if guard else []) + [
                Mapping(lo + guard, lo + size, "rw-p", 0, "")
            ]
        elif t.is_main:
            # Only upwards: a read below the main thread's SP could grow its stack mapping.
            lo, hi = M.readable_run(free_and_readable, t.sp, STACK_PAGES, down=False)
            got = [Mapping(lo, hi, "rw-p", 0, "[stack]")]
        else:
            continue
        out.extend(got)
        taken.extend(got)
    for t in threads:
        if not t.fs_base:
            continue
        low = M.page_down(t.fs_base - TLS_SPAN)
        pages = [p for p in range(low, M.page_up(t.fs_base + 8), M.PAGE) if free_and_readable(p)]
        if pages:
            # Named, not anonymous: a piece around a thread pointer is not that thread's stack.
            m = Mapping(pages[0], pages[-1] + M.PAGE, "rw-p", 0, TLS_LABEL)
            out.append(m)
            taken.append(m)
    return out


def mappings_from_memory(target) -> List[Mapping]:
    from .threads import list_threads, pthread_block

    probe = _Probe(target.memory, target.pointer_size)
    objects = object_mappings(target, probe)
    heap = brk_heap(target, probe, objects)
    stacks = stack_mappings(list_threads(), objects + heap, probe, pthread_block)
    return sorted(objects + heap + stacks, key=lambda m: m.start)
