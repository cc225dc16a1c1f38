"""A memory map rebuilt from the process's memory when /proc/PID/maps cannot be read.

A debugger running as another user, attached to a process that made itself non-dumpable, can
still read its memory and registers, but the kernel hides /proc/PID/maps.  The pieces the heap
and stack commands need are then rebuilt: each loaded object's segments from its program
headers (the dynamic loader's link_map names the objects and their load bias), the brk heap
below libc's __curbrk, and each thread's stack around its stack pointer.  Only the probes that
find where readable memory ends go to the target; everything here is plain Python.
"""

from typing import Callable, List, Optional, Tuple

from .elfheader import elf_header, program_header
from .regions import Mapping

PAGE = 4096
PT_LOAD, PT_GNU_RELRO = 1, 0x6474E552
PF_X, PF_W, PF_R = 1, 2, 4
MAX_OBJECTS = 4096


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def link_map_entries(
    read_word: Callable[[int], Optional[int]],
    read_string: Callable[[int], Optional[str]],
    r_debug: int,
    word: int = 8,
) -> List[tuple]:
    """(l_addr, l_name) of each object in the loader's list, from r_debug.r_map on; bounded,
    and stopped at a loop or an unreadable entry. `word`: the inferior's pointer size."""
    out: list = []
    seen: set = set()
    node = read_word(r_debug + word)  # r_version is an int, padded: r_map is the second word
    while node and node not in seen and len(out) < MAX_OBJECTS:
        seen.add(node)
        l_addr, l_name = read_word(node), read_word(node + word)
        if l_addr is None:
            break
        out.append((l_addr, (read_string(l_name) if l_name else "") or ""))
        node = read_word(node + 3 * word)  # l_next
    return out


def program_headers(header: bytes) -> Optional[List[tuple]]:
    """(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz) of a little-endian ELF (64-bit
    or 32-bit) whose first bytes (ELF header and program headers) are `header`."""
    h = elf_header(header)
    if h is None or h.phentsize < h.phdr_size or not 0 < h.phnum <= 256:
        return None
    if h.phoff + h.phnum * h.phentsize > len(header):
        return None
    return [program_header(header, h.phoff + i * h.phentsize, h.word) for i in range(h.phnum)]


def load_base(phdrs: List[tuple], bias: int) -> Optional[int]:
    """Where the object's first page is mapped: its lowest PT_LOAD, biased."""
    loads = [p for p in phdrs if p[0] == PT_LOAD]
    return page_down(bias + min(p[3] for p in loads)) if loads else None


def _perms(flags: int) -> str:
    return (
        ("r" if flags & PF_R else "-") + ("w" if flags & PF_W else "-") + ("x" if flags & PF_X else "-") + "p"
    )


def object_mappings(phdrs: List[tuple], bias: int, path: str, inode: int = 0) -> List[Mapping]:
    """The mappings the kernel and the loader make for an object, as /proc/PID/maps would show
    them: one per PT_LOAD, the RELRO part read-only, and the bss beyond the file's last page
    anonymous."""
    relro = next(((bias + p[3], bias + p[3] + p[5]) for p in phdrs if p[0] == PT_GNU_RELRO), None)
    out = []
    for p_type, flags, offset, vaddr, filesz, memsz in phdrs:
        if p_type != PT_LOAD or memsz == 0:
            continue
        start, file_end, end = (
            page_down(bias + vaddr),
            page_up(bias + vaddr + filesz),
            page_up(bias + vaddr + memsz),
        )
        off = page_down(offset)
        cut = start
        if relro and flags & PF_W and page_down(relro[0]) <= start < page_down(relro[1]):
            cut = min(page_down(relro[1]), file_end)
            out.append(Mapping(start, cut, _perms(flags & ~PF_W), off, path, inode))
        if cut < file_end:
            out.append(Mapping(cut, file_end, _perms(flags), off + (cut - start), path, inode))
        if file_end < end:
            out.append(Mapping(file_end, end, _perms(flags), 0, ""))
    return out


def readable_run(
    readable: Callable[[int], bool], address: int, limit_pages: int, down: bool = True
) -> Tuple[int, int]:
    """[low, high) of the pages around `address` that can be read without a gap, probing one
    page at a time (a neighbour mapping past an unreadable page is never taken in), at most
    `limit_pages` each way; only upwards unless `down`."""
    low = page_down(address)
    for _ in range(limit_pages if down else 0):
        if low == 0 or not readable(low - PAGE):
            break
        low -= PAGE
    high = page_down(address) + PAGE
    for _ in range(limit_pages):
        if not readable(high):
            break
        high += PAGE
    return low, high


def lowest_readable(readable: Callable[[int], bool], floor: int, top: int) -> Optional[int]:
    """The lowest page p in [floor, top) such that every page from p to top is readable, by
    bisection: for the brk heap, which lies alone in the gap above the program's bss."""
    floor, top = page_up(floor), page_down(top)
    if top <= floor or not readable(top - PAGE):
        return None
    lo, hi = floor, top - PAGE  # hi is readable
    while lo < hi:
        mid = page_down((lo + hi) // 2)
        if readable(mid):
            hi = mid
        else:
            lo = mid + PAGE
    return hi
