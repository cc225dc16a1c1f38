"""The x86-64 system calls brkwatch watches, and what a finished mmap, munmap or mremap means
for the log: an event for anonymous memory, nothing for file mappings (kept in FileRanges so
that their munmap and mremap are recognised later).  Plain Python, tested without gdb."""

from typing import Optional, Sequence

from . import brklog as M

NR = {"brk": 12, "mmap": 9, "munmap": 11, "mremap": 25}  # x86-64 system call numbers
MAPPING_CALLS = (NR["mmap"], NR["munmap"], NR["mremap"])
ENOSYS_RAX = (1 << 64) - 38  # rax at a syscall-entry stop on x86-64


def decode_mapping_call(nr: int, args: Sequence[int], rax: int, files: M.FileRanges) -> Optional[M.BrkEvent]:
    """The event for a finished mmap/munmap/mremap (args: the six system call arguments, rax:
    its result), or None when it concerns file mappings; `files` follows the file mappings."""
    if nr == NR["mmap"]:
        addr, length, prot, flags = args[0], args[1], args[2], args[3]
        ok, value, _ = M.syscall_result(rax)
        size = M.page_up(length)
        if ok and not flags & M.MAP_ANONYMOUS:
            files.add(value, value + size)
            return None
        if ok:
            files.remove(value, value + size)
        return M.decode_mmap(addr, length, prot, flags, rax)
    if nr == NR["munmap"]:
        addr, size = args[0], M.page_up(args[1])
        if files.covers(addr, addr + size):
            files.remove(addr, addr + size)
            return None
        ev = M.decode_munmap(args[0], args[1], rax)
        if ev.ok:
            files.remove(addr, addr + size)
        return ev
    if nr == NR["mremap"]:
        old_addr, old_len, new_len, flags = args[0], args[1], args[2], args[3]
        ok, value, _ = M.syscall_result(rax)
        old_end = old_addr + M.page_up(old_len)
        if files.covers(old_addr, old_end):
            if ok:
                files.moved(old_addr, old_end, value, value + M.page_up(new_len))
            return None
        return M.decode_mremap(old_addr, old_len, new_len, flags, rax)
    return None
