"""Symbol values from an ELF file's .symtab and .dynsym, reading only what it needs.

gdb's own look-up of a global variable defined in two objects (ld.so and libc both define
`__curbrk`) may answer with the wrong object's copy; reading the object's own table does not.
"""

import struct
from typing import Callable, Dict, Iterable, Optional, Tuple

SHT_SYMTAB = 2
SHT_DYNSYM = 11
STT_OBJECT, STT_FUNC, STT_FILE = 1, 2, 4
MAX_TABLE = 64 << 20

Reader = Callable[[int, int], bytes]  # (file offset, size) -> bytes


def symbols(read: Reader, wanted: Iterable[str], source: Optional[str] = None) -> Dict[str, Tuple[int, int]]:
    """{name: (st_value, st_size)} for the wanted names defined in the file (64-bit LE only).

    .symtab first (it has local symbols too), then .dynsym; the first definition wins, except
    that with `source` (a file name such as "malloc.c") a local definition listed under that
    source file's STT_FILE entry wins over the others: a static program links its own objects
    before libc's, and may define a variable of the same name as a static in libc.
    """
    wanted = set(wanted)
    out: Dict[str, Tuple[int, int]] = {}
    head = read(0, 64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return out
    (e_shoff,) = struct.unpack_from("<Q", head, 0x28)
    e_shentsize, e_shnum, _ = struct.unpack_from("<HHH", head, 0x3A)
    if e_shoff == 0 or e_shentsize < 64 or not 0 < e_shnum < 4096:
        return out
    table = read(e_shoff, e_shentsize * e_shnum)
    if len(table) < e_shentsize * e_shnum:
        return out
    sections = []
    for i in range(e_shnum):
        (_, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize) = struct.unpack_from(
            "<IIQQQQIIQQ", table, i * e_shentsize
        )
        sections.append((sh_type, sh_offset, sh_size, sh_link, sh_entsize))
    for kind in (SHT_SYMTAB, SHT_DYNSYM):
        for sh_type, off, size, link, entsize in sections:
            if sh_type != kind or not 0 <= link < len(sections) or size > MAX_TABLE:
                continue
            entsize = entsize or 24
            strtab = sections[link]
            if strtab[2] > MAX_TABLE:
                continue
            syms = read(off, size)
            strs = read(strtab[1], strtab[2])
            _scan(syms, strs, entsize, wanted, out, source)
        if wanted <= set(out):
            break
    return out


def _scan(syms: bytes, strs: bytes, entsize: int, wanted, out, source: Optional[str] = None):
    current_file, preferred = None, {}
    for pos in range(0, len(syms) - 23, entsize):
        st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", syms, pos)
        if st_name >= len(strs):
            continue
        kind = st_info & 0xF
        if kind == STT_FILE:
            current_file = _name_at(strs, st_name) if source else None
            continue
        if st_shndx == 0 or kind not in (STT_OBJECT, STT_FUNC):
            continue
        name = _name_at(strs, st_name)
        if name not in wanted:
            continue
        if source and st_info >> 4 == 0 and current_file == source and name not in preferred:
            preferred[name] = (st_value, st_size)
        if name not in out:
            out[name] = (st_value, st_size)
    out.update(preferred)


def _name_at(strs: bytes, offset: int) -> str:
    end = strs.find(b"\0", offset)
    return strs[offset : end if end >= 0 else len(strs)].decode("ascii", "replace")


def file_reader(path: str) -> Optional[Reader]:
    """A reader over a file on this machine, or None when it cannot be opened."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (kept open for the reader; closed by read.close)
    except OSError:
        return None

    def read(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    read.close = f.close  # type: ignore[attr-defined]
    return read
