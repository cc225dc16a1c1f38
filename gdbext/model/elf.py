"""Just enough ELF to tell code, rodata, relro, data and bss apart in a loaded object.

Parsed from the bytes of the object's first mapping (ELF header + program headers), which are in
memory for a live process and in the usual core dump too, so no file on disk is needed.
"""

import struct
from dataclasses import dataclass
from typing import List, Optional

from .elfheader import elf_header, program_header

PT_LOAD = 1
ET_CORE = 4
PT_GNU_RELRO = 0x6474E552
PT_GNU_EH_FRAME = 0x6474E550
PF_X, PF_W, PF_R = 1, 2, 4


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment at its run-time address (load bias applied)."""

    start: int
    file_end: int  # start + p_filesz: beyond it, up to end, lies bss
    end: int  # start + p_memsz
    flags: int


@dataclass(frozen=True)
class LoadedObject:
    path: str
    bias: int
    segments: tuple
    relro: Optional[tuple]  # (start, end) made read-only after relocation
    eh_frame_hdr: Optional[tuple] = None  # (start, size) of the unwind search table


def is_core_header(header: bytes) -> bool:
    """Whether these first bytes of a file are a little-endian ELF core file's header."""
    return (
        len(header) >= 18
        and header[:4] == b"\x7fELF"
        and header[5] == 1
        and struct.unpack_from("<H", header, 16)[0] == ET_CORE
    )


def parse_program_headers(header: bytes, mapping_start: int, path: str = "") -> Optional[LoadedObject]:
    """`header` holds the first bytes of the object's offset-0 mapping at `mapping_start`
    (a 64-bit or 32-bit little-endian ELF)."""
    try:
        h = elf_header(header)
    except struct.error:
        return None
    if h is None or h.phentsize < h.phdr_size or h.phnum == 0 or h.phnum > 256:
        return None
    phdrs = []
    for i in range(h.phnum):
        off = h.phoff + i * h.phentsize
        if off + h.phdr_size > len(header):
            return None
        phdrs.append(program_header(header, off, h.word))
    loads = [p for p in phdrs if p[0] == PT_LOAD]
    if not loads:
        return None
    first = min(loads, key=lambda p: p[3])
    # The offset-0 mapping starts at the page holding the first PT_LOAD's file offset 0.
    bias = mapping_start - ((first[3] - first[2]) & ~0xFFF)
    segs = tuple(Segment(bias + v, bias + v + fs, bias + v + ms, fl) for _, fl, _, v, fs, ms in loads)
    relro = next(((bias + v, bias + v + ms) for t, _, _, v, _, ms in phdrs if t == PT_GNU_RELRO), None)
    eh = next(((bias + v, ms) for t, _, _, v, _, ms in phdrs if t == PT_GNU_EH_FRAME), None)
    return LoadedObject(path, bias, segs, relro, eh)


def pieces(obj: LoadedObject) -> List[tuple]:
    """(start, end, kind, label) claims for an object's segments, bss and relro told apart."""
    out = []
    page = 0x1000
    for s in obj.segments:
        start = s.start & ~(page - 1)  # the kernel maps whole pages: claim from the page start
        if s.flags & PF_X:
            out.append((start, s.end, "code", ""))
        elif s.flags & PF_W:
            lo = start
            if obj.relro and obj.relro[0] <= s.start < obj.relro[1]:
                out.append((lo, obj.relro[1], "data", "relro"))
                lo = obj.relro[1]
            if lo < s.file_end:
                out.append((lo, s.file_end, "data", ""))
            # bss: the rest of the segment, to the end of its last page (the kernel maps whole pages)
            end = (s.end + page - 1) & ~(page - 1)
            if s.file_end < end:
                out.append((max(lo, s.file_end), end, "bss", ""))
        else:
            out.append((start, s.end, "rodata", ""))
    return out
