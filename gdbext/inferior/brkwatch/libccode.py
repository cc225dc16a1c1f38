"""Where in the process's libc brkwatch can hook: libc's mappings and the symbols the hooks
need (read from libc's file, not gdb's look-up), the instructions of __brk, syscall(),
mmap, munmap and mremap that matter (the system call, __brk's failure branch), and which of
libc's code runs for which allocator entry point (model/allocentries.py)."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import gdb

from ...model.allocentries import START_HOOKS, AllocatorCode, allocator_code, tail_calls
from ...model.brkcode import brk_failure_branch
from ...model.brklog import ALLOC_FUNCTIONS
from ...model.ehframe import function_starts
from ...model.libcsyms import is_loader, libc_symbols
from .running import proc_maps, read_memory, read_u64

LIBC_FUNCS = (
    "__brk",
    "brk",
    "__curbrk",
    "syscall",
    "__mmap",
    "mmap",
    "__munmap",
    "munmap",
    "__mremap",
    "mremap",
    "mp_",
    *ALLOC_FUNCTIONS,
    *START_HOOKS,
)  # mp_: in .symtab when not stripped (static programs); the hooks: exported before 2.34
MAX_EH_FRAME_HDR = 4 << 20


class Unavailable(Exception):
    """A way of watching the break that cannot be used in this process; the text says why."""


@dataclass
class LibcInfo:
    path: str
    static: bool
    ranges: List[Tuple[int, int]]  # the object's mappings
    syms: Dict[str, Tuple[int, int]]  # name -> (run-time address, size)
    system: List[Tuple[int, int]]  # libc's and ld.so's mappings: frames in them are not the caller
    eh_frame_hdr: Optional[Tuple[int, int]] = None  # (address, size): where functions start
    _allocators: Optional[AllocatorCode] = None
    call_sites: Dict[int, Optional[str]] = field(default_factory=dict)  # return address -> entry

    @property
    def allocators(self) -> AllocatorCode:
        """libc's allocator entry points and the functions they tail-call, found once (before
        the first malloc when allocwatch arms at libc's load: see START_HOOKS)."""
        if self._allocators is None:
            self._allocators = _allocator_code(self)
        return self._allocators

    def need(self, name: str, *alts: str) -> Tuple[int, int]:
        """(address, size) of the first of the functions named that libc defines with a size."""
        for n in (name,) + alts:
            if n in self.syms and self.syms[n][1]:
                return self.syms[n]
        raise Unavailable(f"no symbol {name} in {self.path}")


def find_libc(pid: int) -> Tuple[Optional[LibcInfo], str]:
    """libc's path, mappings and the symbols the hooks need; (None, why) if absent."""
    maps = proc_maps(pid)
    if not maps:
        return None, "cannot read the process's mappings (brkwatch needs a local live process)"
    lib, why = libc_symbols(maps, LIBC_FUNCS, read_memory, local=True)
    if lib is None:
        return None, why
    system = lib.ranges + [(m.start, m.end) for m in maps if is_loader(m.path)]
    return LibcInfo(lib.path, lib.static, lib.ranges, lib.syms, system, lib.eh_frame_hdr), ""


def _allocator_code(libc: LibcInfo) -> AllocatorCode:
    entries = {n: libc.syms[n] for n in ALLOC_FUNCTIONS if n in libc.syms}
    functions = None
    if libc.eh_frame_hdr and 0 < libc.eh_frame_hdr[1] <= MAX_EH_FRAME_HDR:
        hdr = read_memory(*libc.eh_frame_hdr)
        if hdr:
            ptr = gdb.selected_inferior().architecture().name()
            functions = function_starts(hdr, libc.eh_frame_hdr[0], 4 if ptr == "i386" else 8)
    jumps: Dict[str, List[int]] = {}
    if functions is not None:
        for name, (start, size) in entries.items():
            if size:
                try:
                    code = [(i["addr"], i["length"], i["asm"]) for i in _instructions(start, size)]
                except gdb.error:
                    continue
                jumps[name] = tail_calls(code, start, start + size)
    return allocator_code(entries, jumps, functions, _start_hooks(libc))


def _start_hooks(libc: LibcInfo) -> Dict[str, int]:
    """Entry point -> the libc function its hook variable holds now (before 2.34, malloc_hook_ini
    and the like until the first call; after it, or once called, nothing)."""
    out: Dict[str, int] = {}
    for var, entry in START_HOOKS.items():
        addr = libc.syms.get(var, (0, 0))[0]
        target = read_u64(addr) if addr else None
        if target and any(lo <= target < hi for lo, hi in libc.ranges):
            out[entry] = target
    return out


def _instructions(start: int, size: int):
    arch = gdb.selected_inferior().architecture()
    return arch.disassemble(start, start + max(size, 1) - 1)


def syscall_sites(start: int, size: int) -> List[Tuple[int, int]]:
    """(address of each `syscall` instruction, address of the instruction after it)."""
    out = []
    for insn in _instructions(start, size):
        if insn["asm"].split()[:1] == ["syscall"]:
            out.append((insn["addr"], insn["addr"] + insn["length"]))
    return out


def after_syscalls(libc: Optional[LibcInfo], name: str, *alts: str) -> List[int]:
    """The addresses just after the system calls in libc's function `name` (or an alias)."""
    if libc is None:
        raise Unavailable(f"no symbol {name} in libc")
    start, size = libc.need(name, *alts)
    sites = syscall_sites(start, size)
    if not sites:
        raise Unavailable(f"no system call instruction in {name}")
    return [after for _, after in sites]


def failure_branch(start: int, size: int) -> Optional[int]:
    """__brk's branch for a refused break (see model.brkcode), or None."""
    return brk_failure_branch((i["addr"], i["length"], i["asm"]) for i in _instructions(start, size))
