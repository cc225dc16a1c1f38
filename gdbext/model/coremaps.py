"""The mappings of a core file, from its own program headers and NT_FILE note.

gdb's `info proc mappings` on a core lists only file-backed mappings and no permissions; the core's
PT_LOAD headers hold every mapping with its exact permissions, the NT_FILE note names the files.
"""

import struct
from typing import Callable, List, Optional

from .elfheader import elf_header, program_header
from .regions import Mapping, maps_path

PT_LOAD, PT_NOTE = 1, 4
NT_FILE = 0x46494C45
PF_X, PF_W, PF_R = 1, 2, 4


def _notes(data: bytes):
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        name_end = pos + ((namesz + 3) & ~3)
        desc = data[name_end : name_end + descsz]
        yield ntype, desc
        pos = name_end + ((descsz + 3) & ~3)


def parse_nt_file(desc: bytes, word: int = 8) -> List[tuple]:
    """(start, end, file offset, path) for each file mapping the note lists; its numbers are
    the core's longs (`word` bytes: 4 in an i386 core)."""
    w = "Q" if word == 8 else "I"
    if len(desc) < 2 * word:
        return []
    count, page_size = struct.unpack_from("<" + 2 * w, desc, 0)
    if count > 1 << 20:
        return []
    entries = []
    pos = 2 * word
    for _ in range(count):
        if pos + 3 * word > len(desc):
            return []
        entries.append(struct.unpack_from("<" + 3 * w, desc, pos))
        pos += 3 * word
    names = desc[pos:].split(b"\0")
    return [
        (s, e, off * page_size, maps_path(names[i].decode("utf-8", "replace")) if i < len(names) else "")
        for i, (s, e, off) in enumerate(entries)
    ]


def core_mappings(read: Callable[[int, int], bytes]) -> Optional[List[Mapping]]:
    """`read(offset, size)` reads the core file. None when it is not a little-endian ELF core
    (64-bit or 32-bit)."""
    h = elf_header(read(0, 64))
    if h is None or h.e_type != 4:  # ET_CORE
        return None
    if h.phnum == 0xFFFF or h.phentsize < h.phdr_size:
        return None  # extended numbering: not produced by the kernel or gcore for our sizes
    table = read(h.phoff, h.phentsize * h.phnum)
    if len(table) < h.phentsize * h.phnum:
        return None
    loads, files = [], []
    for i in range(h.phnum):
        p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz = program_header(table, i * h.phentsize, h.word)
        if p_type == PT_LOAD and p_memsz:
            loads.append((p_vaddr, p_vaddr + p_memsz, p_flags))
        elif p_type == PT_NOTE and p_filesz < (64 << 20):
            for ntype, desc in _notes(read(p_offset, p_filesz)):
                if ntype == NT_FILE:
                    files = parse_nt_file(desc, h.word)
    out = []
    for start, end, flags in loads:
        perms = (
            ("r" if flags & PF_R else "-")
            + ("w" if flags & PF_W else "-")
            + ("x" if flags & PF_X else "-")
            + "p"
        )
        f = next((f for f in files if f[0] <= start < f[1]), None)
        if f:
            out.append(Mapping(start, end, perms, f[2] + (start - f[0]), f[3]))
        else:
            out.append(Mapping(start, end, perms, 0, ""))
    # File mappings that were not dumped at all still belong in the map.
    for s, e, off, path in files:
        if not any(m.start < e and s < m.end for m in out):
            out.append(Mapping(s, e, "r--p", off, path))
    return sorted(out, key=lambda m: m.start)
